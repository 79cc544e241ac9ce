//! Required-claims expressions compiled to Rust: the `claims = "…"`
//! argument of `#[function]`/`#[web]` and the `claims_check!` macro. The
//! literal is parsed with `buswarden_claims` when the service is compiled (a
//! malformed expression is a compile error at the literal, with the byte
//! offset and how to fix it), and the tree becomes plain boolean Rust over
//! the leaf tests of `buswarden::claims::Claims`: `||`, `&&` and `!` are
//! Rust's own, each comparison one call, each regular expression compiled
//! once per process. Nothing is interpreted per request.

use buswarden_claims::{CmpOp, Expr, Operand};
use proc_macro2::TokenStream;
use quote::quote;
use syn::LitStr;

/// Parses the literal, pointing any error at it.
pub fn parse(lit: &LitStr) -> syn::Result<Expr> {
    buswarden_claims::parse(&lit.value()).map_err(|e| {
        syn::Error::new(
            lit.span(),
            format!("invalid required-claims expression: {e}"),
        )
    })
}

/// A `fn(&Claims) -> bool` item named `name` that evaluates `expr`.
pub fn check_fn(name: &syn::Ident, expr: &Expr) -> TokenStream {
    let body = compile(expr);
    quote! {
        #[allow(clippy::all)]
        fn #name(__claims: &::buswarden::claims::Claims) -> bool {
            #body
        }
    }
}

fn op_tokens(op: CmpOp) -> TokenStream {
    match op {
        CmpOp::Eq => quote!(::buswarden::claims::CmpOp::Eq),
        CmpOp::Ne => quote!(::buswarden::claims::CmpOp::Ne),
        CmpOp::Lt => quote!(::buswarden::claims::CmpOp::Lt),
        CmpOp::Le => quote!(::buswarden::claims::CmpOp::Le),
        CmpOp::Gt => quote!(::buswarden::claims::CmpOp::Gt),
        CmpOp::Ge => quote!(::buswarden::claims::CmpOp::Ge),
    }
}

fn compare(claim: &str, op: CmpOp, other: &Operand) -> TokenStream {
    let o = op_tokens(op);
    match other {
        Operand::Claim(c) => quote!(__claims.cmp_claims(#claim, #o, #c)),
        Operand::Str(s) => quote!(__claims.cmp_str(#claim, #o, #s)),
        Operand::Num(n) => {
            let abs = n.abs();
            let n = if n.is_sign_negative() {
                quote!(-#abs)
            } else {
                quote!(#abs)
            };
            quote!(__claims.cmp_num(#claim, #o, #n))
        }
        Operand::Bool(b) => quote!(__claims.cmp_bool(#claim, #o, #b)),
    }
}

fn compile(expr: &Expr) -> TokenStream {
    match expr {
        Expr::Or(a, b) => {
            let (a, b) = (compile(a), compile(b));
            quote!((#a || #b))
        }
        Expr::And(a, b) => {
            let (a, b) = (compile(a), compile(b));
            quote!((#a && #b))
        }
        Expr::Not(a) => {
            let a = compile(a);
            quote!((!#a))
        }
        Expr::Claim(c) => quote!(__claims.is_true(#c)),
        Expr::Bool(b) => quote!(#b),
        Expr::Cmp(Operand::Claim(c), op, other) => compare(c, *op, other),
        Expr::Cmp(lit, op, Operand::Claim(c)) => compare(c, op.flip(), lit),
        // The parser never builds a comparison of two literals.
        Expr::Cmp(..) => quote!(false),
        Expr::Match {
            claim,
            pattern,
            negated,
        } => quote! {{
            static __PATTERN: ::std::sync::LazyLock<::buswarden::claims::Regex> =
                ::std::sync::LazyLock::new(|| {
                    ::buswarden::claims::compile_pattern(#pattern)
                        .expect("checked when the service was compiled")
                });
            __claims.matches(#claim, &__PATTERN, #negated)
        }},
    }
}
