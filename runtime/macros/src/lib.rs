//! `buswarden-macros`: the `#[buswarden::api]` and `#[buswarden::grant]`
//! attributes (re-exported by the `buswarden` crate; users never depend on
//! this crate directly).
//!
//! - [`api`] reads an API trait (its `#[function]`, `#[web]` and `#[event]`
//!   methods), checks every method token and route with `buswarden_rules`
//!   (errors point at the bad literal), and generates the typed clients,
//!   trigger, hook, hostname constant and serving glue (module `generate`);
//! - [`grant`] validates an explicit grant and leaves its item untouched.

#![forbid(unsafe_code)]

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
