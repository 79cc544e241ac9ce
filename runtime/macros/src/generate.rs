//! The code generated for an API trait: the rewritten trait, the hostname
//! constant, the endpoint specs, the clients, trigger, hook and server.

use crate::model::{Api, Endpoint, Kind};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, TraitItem};

pub fn api(api: &Api) -> TokenStream {
    let name = &api.item.ident;
    let vis = &api.item.vis;
    let snake = buswarden_rules::naming::screaming_snake(&name.to_string());
    let host_const = format_ident!("{}", buswarden_rules::naming::host_const(&name.to_string()));
    let spec_mod = format_ident!("__buswarden_spec_{}", snake.to_lowercase());
    let host = &api.host;
    let client = format_ident!("{}Client", name);
    let multicast = format_ident!("{}MulticastClient", name);
    let trigger = format_ident!("{}Trigger", name);
    let hook = format_ident!("{}Hook", name);
    let server = format_ident!("{}Server", name);

    let trait_item = rewrite_trait(api);
    let specs = api.endpoints.iter().map(|ep| {
        let id = &ep.sig_ident;
        let (m, r) = (&ep.method, &ep.route);
        match &ep.claims {
            None => quote! { pub(super) static #id: ::buswarden::__private::Spec = ::buswarden::__private::Spec::new(#m, #r); },
            Some((text, expr)) => {
                let check = format_ident!("__claims_{}", id);
                let check_fn = crate::claims::check_fn(&check, expr);
                quote! {
                    #check_fn
                    pub(super) static #id: ::buswarden::__private::Spec =
                        ::buswarden::__private::Spec::new(#m, #r).with_claims(#text, #check);
                }
            }
        }
    });
    let calls: Vec<&Endpoint> = api
        .endpoints
        .iter()
        .filter(|e| e.kind != Kind::Event)
        .collect();
    let events: Vec<&Endpoint> = api
        .endpoints
        .iter()
        .filter(|e| e.kind == Kind::Event)
        .collect();
    let client_methods = calls
        .iter()
        .map(|ep| client_method(ep, &spec_mod, &host_const, false));
    let multicast_methods = calls
        .iter()
        .map(|ep| client_method(ep, &spec_mod, &host_const, true));
    let trigger_methods = events
        .iter()
        .map(|ep| trigger_method(ep, &spec_mod, &host_const));
    let hook_methods = events
        .iter()
        .map(|ep| hook_method(ep, &spec_mod, &host_const));
    let serve_endpoints = calls.iter().map(|ep| serve_endpoint(ep, &spec_mod));
    let doc_client = format!("Unicast client of `{host}`: one replica answers each call.");
    let doc_multicast = format!("Multicast client of `{host}`: every responder answers.");
    let doc_trigger = format!("Fires the outbound events of `{host}` (used by `{host}` itself).");
    let doc_hook = format!("Subscribes sinks to the events of `{host}`.");
    let for_host = quote! {
        /// Addresses another host that serves this API (`id-….host`
        /// addresses one instance).
        pub fn for_host(self, host: &str) -> Self {
            Self { caller: self.caller.for_host(host), _lifetime: ::core::marker::PhantomData }
        }
    };
    let client_struct = handle_struct(vis, &client, &doc_client, &for_host, client_methods);
    let multicast_struct = handle_struct(
        vis,
        &multicast,
        &doc_multicast,
        &for_host,
        multicast_methods,
    );
    let trigger_struct = handle_struct(vis, &trigger, &doc_trigger, &quote!(), trigger_methods);
    let hook_struct = handle_struct(vis, &hook, &doc_hook, &quote!(), hook_methods);
    let doc_server =
        format!("Serves an implementation of [`{name}`]: `svc.serve({server}::new(imp)).await`.");
    let doc_host = format!("The hostname of the `{name}` API.");

    quote! {
        #trait_item

        #[doc = #doc_host]
        #vis const #host_const: &str = #host;

        #[doc(hidden)]
        #[allow(non_upper_case_globals, non_snake_case)]
        mod #spec_mod {
            #(#specs)*
        }

        #client_struct
        #multicast_struct
        #trigger_struct
        #hook_struct

        #[doc = #doc_server]
        #vis struct #server<T: ?::core::marker::Sized>(::std::sync::Arc<T>);

        impl<T: #name> #server<T> {
            /// Wraps an implementation.
            pub fn new(imp: T) -> Self {
                Self(::std::sync::Arc::new(imp))
            }

            /// Wraps a shared implementation.
            pub fn from_arc(imp: ::std::sync::Arc<T>) -> Self {
                Self(imp)
            }
        }

        #[allow(clippy::needless_question_mark, clippy::useless_conversion)]
        impl<T: #name> ::buswarden::__private::Serve for #server<T> {
            fn host(&self) -> &'static str {
                #host_const
            }

            fn endpoints(&self) -> ::std::vec::Vec<::buswarden::__private::Endpoint> {
                ::std::vec![#(#serve_endpoints),*]
            }
        }
    }
}

/// One generated handle type (client, multicast client, trigger or hook):
/// a connector handle, a constructor, optionally `for_host`, and methods.
fn handle_struct(
    vis: &syn::Visibility,
    name: &Ident,
    doc: &str,
    for_host: &TokenStream,
    methods: impl Iterator<Item = TokenStream>,
) -> TokenStream {
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone)]
        #vis struct #name<'a> {
            caller: ::buswarden::__private::Caller,
            _lifetime: ::buswarden::__private::Lifetime<'a>,
        }

        #[allow(clippy::needless_question_mark, clippy::useless_conversion)]
        impl<'a> #name<'a> {
            /// A handle on `svc` (`&Connector`, `&Arc<Connector>`, …).
            pub fn new<C: ::core::convert::AsRef<::buswarden::Connector> + ?::core::marker::Sized>(svc: &C) -> Self {
                Self {
                    caller: ::buswarden::__private::Caller::new(::buswarden::__private::connector_of(svc)),
                    _lifetime: ::core::marker::PhantomData,
                }
            }

            #for_host

            #(#methods)*
        }
    }
}

/// The trait: helper attributes stripped (done while parsing), events
/// removed, `async fn` rewritten to return a `Send` future, `Send + Sync +
/// 'static` added as supertraits.
fn rewrite_trait(api: &Api) -> TokenStream {
    let mut item = api.item.clone();
    let events: Vec<String> = api
        .endpoints
        .iter()
        .filter(|e| e.kind == Kind::Event)
        .map(|e| e.sig_ident.to_string())
        .collect();
    item.items
        .retain(|ti| !matches!(ti, TraitItem::Fn(f) if events.contains(&f.sig.ident.to_string())));
    for ti in &mut item.items {
        if let TraitItem::Fn(f) = ti {
            f.sig.asyncness = None;
            let ret = match &f.sig.output {
                syn::ReturnType::Type(_, ty) => quote!(#ty),
                syn::ReturnType::Default => quote!(()),
            };
            f.sig.output = syn::parse_quote! {
                -> impl ::core::future::Future<Output = #ret> + ::core::marker::Send
            };
            if let Some(body) = &f.default {
                f.default = Some(syn::parse_quote!({ async move #body }));
            }
        }
    }
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Send));
    item.supertraits
        .push(syn::parse_quote!(::core::marker::Sync));
    item.supertraits.push(syn::parse_quote!('static));
    if item.colon_token.is_none() {
        item.colon_token = Some(Default::default());
    }
    quote!(#item)
}

/// Encodes the arguments: non-path ones into the query string or the JSON
/// body (as Microbus does for the method), path ones into the path.
fn encode_args(ep: &Endpoint, spec_mod: &Ident) -> TokenStream {
    let id = &ep.sig_ident;
    let puts = ep.args.iter().filter(|a| !a.in_path).map(|a| {
        let n = &a.name;
        let s = &a.wire;
        quote! { __args.put(#s, &#n)?; }
    });
    let paths = ep.args.iter().filter(|a| a.in_path).map(|a| {
        let n = &a.name;
        let s = n.to_string();
        quote! { (#s, ::buswarden::__private::path_value(&#n)) }
    });
    quote! {
        let mut __args = ::buswarden::__private::Args::for_call(&#spec_mod::#id)?;
        #(#puts)*
        let __path: ::std::vec::Vec<(&str, ::std::string::String)> = ::std::vec![#(#paths),*];
        let __body = __args.finish()?;
    }
}

fn params(ep: &Endpoint) -> TokenStream {
    let ps = ep.args.iter().map(|a| {
        let (n, t) = (&a.name, &a.ty);
        quote!(#n: #t)
    });
    quote!(#(#ps),*)
}

/// A method whose future owns what it needs (`use<>`): it can be spawned or
/// joined straight from a temporary client.
fn owned_future(
    docs: &[syn::Attribute],
    id: &Ident,
    params: &TokenStream,
    output: TokenStream,
    body: TokenStream,
) -> TokenStream {
    quote! {
        #(#docs)*
        pub fn #id(&self, #params) -> impl ::core::future::Future<Output = #output> + ::core::marker::Send + use<> {
            let __caller = ::core::clone::Clone::clone(&self.caller);
            async move { #body }
        }
    }
}

fn client_method(ep: &Endpoint, spec_mod: &Ident, host_const: &Ident, many: bool) -> TokenStream {
    let id = &ep.sig_ident;
    let ret = &ep.ret;
    let params = params(ep);
    let many_ret = quote!(::core::result::Result<::std::vec::Vec<#ret>, ::buswarden::Error>);
    if ep.kind == Kind::Web {
        let req = &ep.args[0].name;
        return if many {
            owned_future(
                &ep.docs,
                id,
                &params,
                many_ret,
                quote! {
                    let __all = __caller.multicast_web(#host_const, &#spec_mod::#id, #req).await?;
                    ::core::result::Result::Ok(__all.into_iter().map(|__r| -> #ret { ::core::result::Result::Ok(__r?) }).collect())
                },
            )
        } else {
            owned_future(
                &ep.docs,
                id,
                &params,
                quote!(#ret),
                quote! {
                    ::core::result::Result::Ok(__caller.call_web(#host_const, &#spec_mod::#id, #req).await?)
                },
            )
        };
    }
    let encode = encode_args(ep, spec_mod);
    let output = &ep.output;
    if many {
        owned_future(
            &ep.docs,
            id,
            &params,
            many_ret,
            quote! {
                #encode
                let __all = __caller.multicast(#host_const, &#spec_mod::#id, &__path, __body).await?;
                ::core::result::Result::Ok(__all.into_iter().map(|__r| -> #ret {
                    ::core::result::Result::Ok(::buswarden::__private::decode_result(__r?, #output)?)
                }).collect())
            },
        )
    } else {
        owned_future(
            &ep.docs,
            id,
            &params,
            quote!(#ret),
            quote! {
                #encode
                let __resp = __caller.call(#host_const, &#spec_mod::#id, &__path, __body).await?;
                ::core::result::Result::Ok(::buswarden::__private::decode_result(__resp, #output)?)
            },
        )
    }
}

fn trigger_method(ep: &Endpoint, spec_mod: &Ident, host_const: &Ident) -> TokenStream {
    let id = &ep.sig_ident;
    let ret = &ep.ret;
    let params = params(ep);
    let encode = encode_args(ep, spec_mod);
    let output = &ep.output;
    owned_future(
        &ep.docs,
        id,
        &params,
        quote!(::core::result::Result<::std::vec::Vec<#ret>, ::buswarden::Error>),
        quote! {
            #encode
            let __all = __caller.trigger(#host_const, &#spec_mod::#id, &__path, __body).await?;
            ::core::result::Result::Ok(__all.into_iter().map(|__r| -> #ret {
                ::core::result::Result::Ok(::buswarden::__private::decode_result(__r?, #output)?)
            }).collect())
        },
    )
}

fn hook_method(ep: &Endpoint, spec_mod: &Ident, host_const: &Ident) -> TokenStream {
    let id = &ep.sig_ident;
    let output = &ep.output;
    let ret = &ep.ret;
    let docs = &ep.docs;
    let tys = ep.args.iter().map(|a| &a.ty);
    let names: Vec<&Ident> = ep.args.iter().map(|a| &a.name).collect();
    let takes = ep.args.iter().map(|a| {
        let (n, t) = (&a.name, &a.ty);
        let s = &a.wire;
        quote! { let #n: #t = __args.take(#s)?; }
    });
    quote! {
        #(#docs)*
        pub async fn #id<__F, __Fut>(&self, handler: __F) -> ::core::result::Result<(), ::buswarden::Error>
        where
            __F: ::core::ops::Fn(#(#tys),*) -> __Fut + ::core::marker::Send + ::core::marker::Sync + 'static,
            __Fut: ::core::future::Future<Output = #ret> + ::core::marker::Send + 'static,
        {
            let handler = ::std::sync::Arc::new(handler);
            let __h = ::buswarden::__private::handler(move |__req: ::buswarden::Request| {
                let handler = ::std::sync::Arc::clone(&handler);
                async move {
                    let mut __args = ::buswarden::__private::Args::from_request(&__req, &#spec_mod::#id)?;
                    #(#takes)*
                    let __out: #ret = handler(#(#names),*).await;
                    ::buswarden::__private::encode_result(__out.map_err(::core::convert::Into::into), #output)
                }
            });
            self.caller.hook(#host_const, &#spec_mod::#id, __h).await
        }
    }
}

fn serve_endpoint(ep: &Endpoint, spec_mod: &Ident) -> TokenStream {
    let id = &ep.sig_ident;
    let output = &ep.output;
    let ret = &ep.ret;
    let name = id.to_string();
    let body = if ep.kind == Kind::Web {
        quote! {
            let __out: #ret = __imp.#id(__req).await;
            __out.map_err(::core::convert::Into::into)
        }
    } else {
        let names: Vec<&Ident> = ep.args.iter().map(|a| &a.name).collect();
        let takes = ep.args.iter().map(|a| {
            let (n, t) = (&a.name, &a.ty);
            let s = &a.wire;
            quote! { let #n: #t = __args.take(#s)?; }
        });
        quote! {
            let mut __args = ::buswarden::__private::Args::from_request(&__req, &#spec_mod::#id)?;
            #(#takes)*
            let __out: #ret = __imp.#id(#(#names),*).await;
            ::buswarden::__private::encode_result(__out.map_err(::core::convert::Into::into), #output)
        }
    };
    let imp = Ident::new("__imp", Span::call_site());
    quote! {
        {
            let #imp = ::std::sync::Arc::clone(&self.0);
            #spec_mod::#id.endpoint(#name, move |__req: ::buswarden::Request| {
                let #imp = ::std::sync::Arc::clone(&#imp);
                async move { #body }
            })
        }
    }
}
