//! `buswarden-macros`: the `#[buswarden::api]` and `#[buswarden::grant]`
//! attributes (re-exported by the `buswarden` crate; users never depend on
//! this crate directly).
//!
//! - [`api`] reads an API trait (its `#[function]`, `#[web]` and `#[event]`
//!   methods), checks every method token and route with `buswarden_rules`
//!   (errors point at the bad literal), and generates the typed clients,
//!   trigger, hook, hostname constant and serving glue (module `generate`);
//! - [`grant`] validates an explicit grant and leaves its item untouched;
//! - [`edge_proxy`] marks the ingress's forwarding fn (checked, untouched);
//! - [`claims_check`] compiles a required-claims expression into a
//!   `fn(&Claims) -> bool` (module `claims`, which `api` uses for the
//!   `claims = "…"` argument of an endpoint).

#![forbid(unsafe_code)]

mod claims;
mod generate;
mod model;

use proc_macro::TokenStream;

/// `#[buswarden::api(host = "calculator.example")]` on an API trait.
///
/// Generates, next to the trait (named after it): `<Trait>Client<'a>`,
/// `<Trait>MulticastClient<'a>`, `<Trait>Trigger<'a>`, `<Trait>Hook<'a>`,
/// `<TRAIT>_HOST` and `<Trait>Server<T>` (serve with
/// `svc.serve(<Trait>Server::new(imp)).await`). Each method becomes one
/// returning a `Send` future; `#[event]` methods leave the trait.
#[proc_macro_attribute]
pub fn api(attr: TokenStream, item: TokenStream) -> TokenStream {
    match model::Api::parse(attr.into(), item.into()) {
        Ok(api) => generate::api(&api).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// `#[buswarden::grant(GET, "https://files.example:444/blobs/{key}")]`: an
/// explicit, reviewable grant for a dynamic raw call inside the annotated
/// function. Checked here (method token, URL pattern with `{arg}` / final
/// `{arg...}` segments, host `*` allowed); the analyzer turns it into a PUB
/// rule. It changes nothing in the code.
#[proc_macro_attribute]
pub fn grant(attr: TokenStream, item: TokenStream) -> TokenStream {
    match model::Grant::parse(attr.into()) {
        Ok(_) => item,
        Err(e) => {
            let mut out: TokenStream = e.to_compile_error().into();
            out.extend(item);
            out
        }
    }
}

/// `#[buswarden::edge_proxy]` on the one function of the HTTP ingress that
/// forwards external requests to the bus: the reviewable form of "this fn
/// calls the edge's open ports". The analyzer grants it one
/// `PUB {{plane}}.safe.<port>.<self>.*.*.*.>` rule per port the `[edge]`
/// table of `buswarden.toml` opens (never 666 or 888, never a `*` port),
/// and lets the computed raw calls inside it stand. It takes no arguments
/// and changes nothing in the code.
#[proc_macro_attribute]
pub fn edge_proxy(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let span = proc_macro2::TokenStream::from(attr)
            .into_iter()
            .next()
            .map(|t| t.span())
            .unwrap_or_else(proc_macro2::Span::call_site);
        let mut out: TokenStream = syn::Error::new(
            span,
            "#[buswarden::edge_proxy] takes no arguments: the ports come from the [edge] table of buswarden.toml",
        )
        .to_compile_error()
        .into();
        out.extend(item);
        return out;
    }
    item
}

/// `buswarden::claims_check!("roles.admin || level > 5")`: a required-claims
/// expression compiled into a `fn(&buswarden::claims::Claims) -> bool` (the
/// same code an endpoint's `claims = "…"` compiles to). A malformed
/// expression fails the build at the literal.
#[proc_macro]
pub fn claims_check(input: TokenStream) -> TokenStream {
    let lit = match syn::parse::<syn::LitStr>(input) {
        Ok(lit) => lit,
        Err(e) => return e.to_compile_error().into(),
    };
    match claims::parse(&lit) {
        Ok(expr) => {
            let name = syn::Ident::new("__claims_check", lit.span());
            let f = claims::check_fn(&name, &expr);
            quote::quote!({
                #f
                #name as ::buswarden::claims::Check
            })
            .into()
        }
        Err(e) => e.to_compile_error().into(),
    }
}
