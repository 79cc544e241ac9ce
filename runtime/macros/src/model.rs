//! The parsed and checked form of an API trait and of a grant.

use buswarden_rules::route::{EVENT_PORT, Segment};
use buswarden_rules::{Hostname, Method, Route};
use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemTrait, LitStr, Pat, ReturnType, Token, TraitItem, TraitItemFn, Type};

/// What kind of endpoint a method declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `#[function]`: typed arguments and result.
    Function,
    /// `#[web]`: one `Request` argument, returns a `Response`.
    Web,
    /// `#[event]`: an outbound event of this service.
    Event,
}

/// One argument of a method.
pub struct Arg {
    pub name: Ident,
    pub ty: Type,
    /// Whether the route names it (`{name}` or `{name...}`).
    pub in_path: bool,
    /// Its name on the wire (JSON field or query argument): the Rust name,
    /// or the one given by `#[json("goName")]`.
    pub wire: String,
}

/// The name in a `#[json("name")]` / `#[output("name")]` attribute.
fn wire_name(attr: &syn::Attribute) -> syn::Result<String> {
    let lit: LitStr = attr.parse_args()?;
    let name = lit.value();
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == '"') {
        return Err(syn::Error::new(
            lit.span(),
            "a wire name is a non-empty JSON field name without quotes or control characters",
        ));
    }
    Ok(name)
}

/// One endpoint method.
pub struct Endpoint {
    pub kind: Kind,
    pub method: String,
    pub route: String,
    pub sig_ident: Ident,
    pub args: Vec<Arg>,
    pub ret: Type,
    /// The name of the output in the response's JSON object: `result`, or
    /// the one given by `#[output("goName")]`.
    pub output: String,
    pub docs: Vec<syn::Attribute>,
    /// The required claims: the expression as written, and its tree.
    pub claims: Option<(String, buswarden_claims::Expr)>,
}

/// The whole API.
pub struct Api {
    pub host: String,
    pub item: ItemTrait,
    pub endpoints: Vec<Endpoint>,
}

/// `METHOD, "route"` as written in a helper attribute or a grant.
pub struct MethodAndRoute {
    pub method: String,
    pub method_span: Span,
    pub route: LitStr,
    /// `claims = "…"`: the required claims, parsed.
    pub claims: Option<(LitStr, buswarden_claims::Expr)>,
}

impl Parse for MethodAndRoute {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let (method, method_span) = if input.peek(LitStr) {
            let lit: LitStr = input.parse()?;
            (lit.value(), lit.span())
        } else {
            let id: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            (id.to_string(), id.span())
        };
        input.parse::<Token![,]>()?;
        let route: LitStr = input.parse()?;
        let mut claims = None;
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
            if !input.is_empty() {
                let key: Ident = input.parse()?;
                if key != "claims" {
                    return Err(syn::Error::new(
                        key.span(),
                        "expected METHOD, \"route\" and optionally claims = \"expression\"",
                    ));
                }
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                let expr = crate::claims::parse(&lit)?;
                claims = Some((lit, expr));
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                    if !input.is_empty() {
                        return Err(input.error("nothing may follow claims = \"…\""));
                    }
                }
            }
        }
        Method::parse(&method).map_err(|e| syn::Error::new(method_span, e.to_string()))?;
        Ok(MethodAndRoute {
            method,
            method_span,
            route,
            claims,
        })
    }
}

/// An explicit grant: method and URL pattern.
pub struct Grant;

impl Grant {
    pub fn parse(attr: TokenStream) -> syn::Result<Self> {
        let mr: MethodAndRoute = syn::parse2(attr)?;
        if let Some((lit, _)) = &mr.claims {
            return Err(syn::Error::new(
                lit.span(),
                "a grant takes no claims: claims belong on the endpoint",
            ));
        }
        let url = mr.route.value();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| {
                syn::Error::new(mr.route.span(), "a grant names an http:// or https:// URL")
            })?;
        // Host `*` is a wildcard grant: check the rest with a stand-in host.
        let checked = match rest.strip_prefix('*') {
            Some(tail) if tail.is_empty() || tail.starts_with([':', '/']) => {
                format!("https://wildcard.invalid{tail}")
            }
            _ => url.clone(),
        };
        if checked.contains(['?', '#']) {
            return Err(syn::Error::new(
                mr.route.span(),
                "a grant URL names a path only, without query or fragment",
            ));
        }
        Route::parse(&checked).map_err(|e| syn::Error::new(mr.route.span(), e.to_string()))?;
        let _ = mr.method_span;
        Ok(Grant)
    }
}

fn parse_host(attr: TokenStream) -> syn::Result<String> {
    let mut host: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("host") {
            host = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown argument; expected host = \"…\""))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    let host = host.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "missing host: write #[buswarden::api(host = \"calculator.example\")]",
        )
    })?;
    let parsed =
        Hostname::parse(&host.value()).map_err(|e| syn::Error::new(host.span(), e.to_string()))?;
    Ok(parsed.as_str().to_string())
}

impl Api {
    pub fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Self> {
        let host = parse_host(attr)?;
        let mut item: ItemTrait = syn::parse2(item)?;
        let mut endpoints = Vec::new();
        let mut errors: Option<syn::Error> = None;
        let mut push_err = |e: syn::Error| match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        };
        for ti in &mut item.items {
            if let TraitItem::Fn(f) = ti {
                match endpoint(f) {
                    Ok(ep) => endpoints.push(ep),
                    Err(e) => push_err(e),
                }
            }
        }
        if let Some(e) = errors {
            return Err(e);
        }
        Ok(Api {
            host,
            item,
            endpoints,
        })
    }
}

/// Reads one method, removing its helper attribute.
fn endpoint(f: &mut TraitItemFn) -> syn::Result<Endpoint> {
    let mut found = None;
    let mut keep = Vec::new();
    let mut output = None;
    for attr in f.attrs.drain(..) {
        if attr.path().is_ident("output") {
            if output.is_some() {
                return Err(syn::Error::new(attr.span(), "one #[output] per method"));
            }
            output = Some(wire_name(&attr)?);
            continue;
        }
        let kind = ["function", "web", "event"]
            .iter()
            .zip([Kind::Function, Kind::Web, Kind::Event])
            .find(|(name, _)| attr.path().is_ident(name))
            .map(|(_, k)| k);
        match (kind, &found) {
            (Some(_), Some(_)) => {
                return Err(syn::Error::new(
                    attr.span(),
                    "one of #[function], #[web] or #[event] per method",
                ));
            }
            (Some(k), None) => found = Some((k, attr)),
            (None, _) => keep.push(attr),
        }
    }
    f.attrs = keep;
    let name = &f.sig.ident;
    let (kind, attr) = found.ok_or_else(|| {
        syn::Error::new(
            name.span(),
            format!(
                "method `{name}` needs #[function(METHOD, \"route\")], #[web(…)] or #[event(…)]"
            ),
        )
    })?;
    let mr: MethodAndRoute = attr.parse_args()?;
    if let (Kind::Event, Some((lit, _))) = (kind, &mr.claims) {
        return Err(syn::Error::new(
            lit.span(),
            "an event declares no required claims: put them on the sink's endpoint",
        ));
    }
    let route = Route::parse(&mr.route.value())
        .map_err(|e| syn::Error::new(mr.route.span(), e.to_string()))?;
    if kind == Kind::Event && route.port != EVENT_PORT {
        return Err(syn::Error::new(
            mr.route.span(),
            format!(
                "events travel on :{EVENT_PORT}; write \":{EVENT_PORT}{}\"",
                route.path()
            ),
        ));
    }
    if kind == Kind::Event && route.host.is_some() {
        return Err(syn::Error::new(
            mr.route.span(),
            "an event is fired under its source's own hostname; remove the //host",
        ));
    }
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            f.sig.fn_token.span(),
            format!("`{name}` must be an `async fn`"),
        ));
    }
    if !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            f.sig.generics.span(),
            "endpoint methods cannot be generic",
        ));
    }
    let mut inputs = f.sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {}
        _ => {
            return Err(syn::Error::new(
                f.sig.span(),
                format!("`{name}` must take `&self`"),
            ));
        }
    }
    let path_names: Vec<String> = route
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Arg(n) | Segment::Greedy(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let mut args = Vec::new();
    let inputs: Vec<&mut FnArg> = f.sig.inputs.iter_mut().skip(1).collect();
    for input in inputs {
        let FnArg::Typed(pt) = input else {
            return Err(syn::Error::new(input.span(), "unexpected receiver"));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new(
                pt.pat.span(),
                "arguments must be plain names",
            ));
        };
        let in_path = path_names.contains(&pi.ident.to_string());
        let mut wire = pi.ident.to_string();
        let mut named = false;
        let mut kept = Vec::new();
        for attr in pt.attrs.drain(..) {
            if attr.path().is_ident("json") {
                if named || in_path {
                    return Err(syn::Error::new(
                        attr.span(),
                        "one #[json] per argument, and none on a path argument (the route names it)",
                    ));
                }
                wire = wire_name(&attr)?;
                named = true;
            } else {
                kept.push(attr);
            }
        }
        pt.attrs = kept;
        args.push(Arg {
            name: pi.ident.clone(),
            ty: (*pt.ty).clone(),
            in_path,
            wire,
        });
    }
    if route.segments.contains(&Segment::Star) {
        return Err(syn::Error::new(
            mr.route.span(),
            "a bare `*` segment cannot be filled by a typed call; name it {arg}",
        ));
    }
    match kind {
        Kind::Web => {
            if args.len() != 1 {
                return Err(syn::Error::new(
                    f.sig.inputs.span(),
                    format!(
                        "web endpoint `{name}` takes exactly one argument: `req: buswarden::Request`"
                    ),
                ));
            }
        }
        Kind::Function | Kind::Event => {
            for p in &path_names {
                if !args.iter().any(|a| a.name == p.as_str()) {
                    return Err(syn::Error::new(
                        mr.route.span(),
                        format!("path argument {{{p}}} has no method argument named `{p}`"),
                    ));
                }
            }
        }
    }
    let ret = match &f.sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => (**ty).clone(),
        other => {
            return Err(syn::Error::new(
                other.span(),
                format!("`{name}` must return `Result<T, buswarden::Error>`"),
            ));
        }
    };
    let docs = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    Ok(Endpoint {
        kind,
        method: Method::parse(&mr.method)
            .map_err(|e| syn::Error::new(mr.method_span, e.to_string()))?
            .as_str()
            .to_string(),
        route: mr.route.value(),
        claims: mr.claims.map(|(lit, expr)| (lit.value(), expr)),
        sig_ident: name.clone(),
        args,
        ret,
        output: output.unwrap_or_else(|| "result".to_string()),
        docs,
    })
}

fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn api_error(attr: TokenStream, item: TokenStream) -> String {
        match Api::parse(attr, item) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn host() -> TokenStream {
        quote!(host = "calc.example")
    }

    #[test]
    fn a_valid_api_parses_with_its_endpoints() {
        let api = Api::parse(
            host(),
            quote! {
                pub trait Calc {
                    #[function(GET, ":443/items/{id}")]
                    async fn item(&self, id: String) -> Result<u32, Error>;
                    #[web("POST", ":444/files/{path...}")]
                    async fn files(&self, req: Request) -> Result<Response, Error>;
                    #[event(POST, ":417/on-x")]
                    async fn on_x(&self, x: i64) -> Result<(), Error>;
                }
            },
        )
        .unwrap();
        assert_eq!(api.host, "calc.example");
        let kinds: Vec<Kind> = api.endpoints.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [Kind::Function, Kind::Web, Kind::Event]);
        assert!(api.endpoints[0].args[0].in_path);
        assert_eq!(api.endpoints[1].method, "POST");
    }

    #[test]
    fn wire_names_come_from_json_and_output_attributes() {
        let mut api = Api::parse(
            host(),
            quote! {
                pub trait Calc {
                    #[function(GET, ":443/square/{id}")]
                    #[output("xSquared")]
                    async fn square(&self, id: String, #[json("x")] value: i64, y: i64) -> Result<i64, Error>;
                    #[function(POST, "/plain")]
                    async fn plain(&self) -> Result<(), Error>;
                }
            },
        )
        .unwrap();
        let ep = &api.endpoints[0];
        assert_eq!(ep.output, "xSquared");
        let wires: Vec<&str> = ep.args.iter().map(|a| a.wire.as_str()).collect();
        assert_eq!(wires, ["id", "x", "y"]);
        assert_eq!(api.endpoints[1].output, "result");
        // The helper attributes leave the trait.
        let item = &mut api.item;
        let printed = quote::quote!(#item).to_string();
        assert!(
            !printed.contains("json") && !printed.contains("output"),
            "{printed}"
        );
        for (item, needle) in [
            (
                quote!(
                    trait C {
                        #[function(GET, "/x/{id}")]
                        async fn f(&self, #[json("i")] id: String) -> Result<(), E>;
                    }
                ),
                "none on a path argument",
            ),
            (
                quote!(
                    trait C {
                        #[function(GET, "/x")]
                        #[output("a")]
                        #[output("b")]
                        async fn f(&self) -> Result<(), E>;
                    }
                ),
                "one #[output] per method",
            ),
            (
                quote!(
                    trait C {
                        #[function(GET, "/x")]
                        async fn f(&self, #[json("")] a: u8) -> Result<(), E>;
                    }
                ),
                "a wire name is a non-empty JSON field name",
            ),
        ] {
            let e = api_error(host(), item);
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn bad_routes_methods_and_hosts_are_named() {
        let e = api_error(
            host(),
            quote!(
                trait C {
                    #[function(GET, ":99999/x")]
                    async fn f(&self) -> Result<(), E>;
                }
            ),
        );
        assert!(e.contains("port"), "{e}");
        let e = api_error(
            host(),
            quote!(
                trait C {
                    #[function(G3T, "/x")]
                    async fn f(&self) -> Result<(), E>;
                }
            ),
        );
        assert!(e.contains("method"), "{e}");
        let e = api_error(
            host(),
            quote!(
                trait C {
                    #[function(GET, "/x/{a...}/y")]
                    async fn f(&self, a: String) -> Result<(), E>;
                }
            ),
        );
        assert!(e.contains("last path segment"), "{e}");
        let e = api_error(
            quote!(host = "bad_host.example"),
            quote!(
                trait C {}
            ),
        );
        assert!(e.contains("'_'"), "{e}");
        let e = api_error(
            quote!(),
            quote!(
                trait C {}
            ),
        );
        assert!(e.contains("missing host"), "{e}");
    }

    #[test]
    fn methods_that_cannot_be_endpoints_are_refused() {
        let cases = [
            (
                quote!(
                    trait C {
                        #[function(GET, "/x/{id}")]
                        async fn f(&self) -> Result<(), E>;
                    }
                ),
                "no method argument named `id`",
            ),
            (
                quote!(
                    trait C {
                        #[event(POST, ":443/on-x")]
                        async fn f(&self) -> Result<(), E>;
                    }
                ),
                "events travel on :417",
            ),
            (
                quote!(
                    trait C {
                        #[web(GET, "/x")]
                        async fn f(&self, a: Request, b: u8) -> Result<Response, E>;
                    }
                ),
                "exactly one argument",
            ),
            (
                quote!(
                    trait C {
                        #[function(GET, "/x")]
                        fn f(&self) -> Result<(), E>;
                    }
                ),
                "async fn",
            ),
            (
                quote!(
                    trait C {
                        #[function(GET, "/x")]
                        async fn f(&self) -> u32;
                    }
                ),
                "must return `Result",
            ),
            (
                quote!(
                    trait C {
                        async fn f(&self) -> Result<(), E>;
                    }
                ),
                "needs #[function",
            ),
            (
                quote!(
                    trait C {
                        #[function(GET, "/x")]
                        async fn f(self) -> Result<(), E>;
                    }
                ),
                "&self",
            ),
            (
                quote!(
                    trait C {
                        #[function(GET, "/x")]
                        #[web(GET, "/y")]
                        async fn f(&self) -> Result<(), E>;
                    }
                ),
                "one of #[function]",
            ),
        ];
        for (item, expected) in cases {
            let e = api_error(host(), item);
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
        }
    }

    #[test]
    fn grants_are_checked() {
        assert!(Grant::parse(quote!(GET, "https://files.example:444/blobs/{key}")).is_ok());
        assert!(Grant::parse(quote!(POST, "https://*:444/webhook")).is_ok());
        assert!(Grant::parse(quote!("GET", "http://files.example/{rest...}")).is_ok());
        let err = |t: TokenStream| {
            Grant::parse(t)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(quote!(GET, "files.example/x")).contains("http"));
        assert!(err(quote!(GET, "https://files.example/x?q=1")).contains("query"));
        assert!(err(quote!(GET, "https://files.example/{a...}/b")).contains("last"));
        assert!(err(quote!(G3T, "https://files.example/x")).contains("method"));
        assert!(err(quote!(GET, "https://bad_host/x")).contains("'_'"));
        assert!(err(quote!(GET)).contains("expected"));
    }
}
