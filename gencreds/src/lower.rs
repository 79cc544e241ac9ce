//! Lowering of one parsed file (syn's tree) into the analyzer's compact
//! form ([`crate::ir`]), applying the exclusions on the way: items and
//! statements under `#[cfg(test)]` / `#[cfg(all(test, …))]` (also as an
//! inner `#![cfg(test)]` at the top of a file or module) and `#[test]`
//! functions (any attribute whose last segment is `test`) never reach the IR,
//! so they can never grant.
//!
//! Macro arguments are lowered too: as comma-separated expressions, else as
//! statements, else chunk by chunk (split at top-level `,` `;` `=>`, a
//! `pat = expr` chunk keeps `expr`), which covers `join!`, `try_join!`,
//! `select!` branches, `vec!` and `format!`. Identifiers of token runs that
//! parse in no way are kept so that a client named there is reported.

use crate::diagnostic::Code;
use crate::ir::*;
use compact_str::ToCompactString as _;
use proc_macro2::{Delimiter, Spacing, Span, TokenStream, TokenTree};
use std::path::Path;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;

/// Deepest expression nesting lowered; deeper code is reported, not analysed.
pub const MAX_EXPR_DEPTH: usize = 1_000;

/// Lowers a parsed file. `file_dir` is the directory of the file (for `include!`).
pub fn lower_file(file: &syn::File, file_dir: &Path) -> FileIr {
    lower_file_sized(file, file_dir, 0)
}

/// [`lower_file`] for a file of `source_bytes` bytes: the expression arena
/// is sized for it up front (about one expression per 16 bytes of source
/// in ordinary code), so it is not copied as it grows.
pub fn lower_file_sized(file: &syn::File, file_dir: &Path, source_bytes: usize) -> FileIr {
    let mut cx = Lowerer {
        depth: 0,
        too_deep: false,
        volatile: false,
        diags: vec![],
        file_dir,
        arena: Vec::with_capacity(source_bytes / 16),
        scratch: Vec::new(),
        lets: Vec::with_capacity(source_bytes / 256),
        arms: Vec::with_capacity(source_bytes / 512),
        macros: Vec::with_capacity(source_bytes / 512),
        params: Vec::with_capacity(source_bytes / 512),
        field_names: Vec::new(),
    };
    // `#![cfg(test)]` at the top of a file excludes the whole file.
    let items = if is_excluded(&file.attrs) {
        vec![]
    } else {
        cx.items(&file.items)
    };
    FileIr {
        items,
        exprs: cx.arena,
        lets: cx.lets,
        arms: cx.arms,
        macros: cx.macros,
        params: cx.params,
        field_names: cx.field_names,
        diags: cx.diags,
        volatile: cx.volatile,
    }
}

/// A span's start as a 1-based line and column.
pub fn loc(span: Span) -> Loc {
    let lc = span.start();
    Loc {
        line: lc.line as u32,
        col: lc.column as u32 + 1,
    }
}

/// Whether the attributes exclude an item from granting.
pub fn is_excluded(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let p = a.path();
        if p.is_ident("cfg") {
            return a.parse_args::<syn::Meta>().is_ok_and(|m| cfg_is_test(&m));
        }
        p.segments
            .last()
            .is_some_and(|s| s.ident == "test" || s.ident == "bench")
    })
}

fn cfg_is_test(meta: &syn::Meta) -> bool {
    match meta {
        syn::Meta::Path(p) => p.is_ident("test"),
        syn::Meta::List(l) if l.path.is_ident("all") => l
            .parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
            .is_ok_and(|v| v.iter().any(cfg_is_test)),
        _ => false,
    }
}

/// The attributes of an item (empty for items that carry none here).
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item as I;
    match item {
        I::Const(i) => &i.attrs,
        I::Enum(i) => &i.attrs,
        I::ExternCrate(i) => &i.attrs,
        I::Fn(i) => &i.attrs,
        I::ForeignMod(i) => &i.attrs,
        I::Impl(i) => &i.attrs,
        I::Macro(i) => &i.attrs,
        I::Mod(i) => &i.attrs,
        I::Static(i) => &i.attrs,
        I::Struct(i) => &i.attrs,
        I::Trait(i) => &i.attrs,
        I::TraitAlias(i) => &i.attrs,
        I::Type(i) => &i.attrs,
        I::Union(i) => &i.attrs,
        I::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Every use of the runtime's `__private` module (the internals of the code
/// `#[buswarden::api]` generates: a `Caller` publishes to any host, the raw
/// NATS client to any subject) in code that is not test-only: each is an
/// error, since the analyzer cannot know what it publishes. `text` is the
/// file's source; only files that mention `__private` are tokenized again.
pub fn private_runtime_uses(file: &syn::File, text: &str) -> Vec<LocalDiag> {
    const NAME: &str = "__private";
    if memchr::memmem::find(text.as_bytes(), NAME.as_bytes()).is_none() || is_excluded(&file.attrs)
    {
        return vec![];
    }
    let excluded: Vec<(usize, usize)> = file
        .items
        .iter()
        .filter(|i| is_excluded(item_attrs(i)))
        .map(|i| {
            let sp = i.span();
            (sp.start().line, sp.end().line)
        })
        .collect();
    let Ok(tokens) = text.parse::<TokenStream>() else {
        return vec![];
    };
    let mut out = vec![];
    let mut stack = vec![tokens.into_iter()];
    while let Some(top) = stack.last_mut() {
        let Some(t) = top.next() else {
            stack.pop();
            continue;
        };
        match t {
            TokenTree::Group(g) => stack.push(g.stream().into_iter()),
            TokenTree::Ident(i) if i == NAME => {
                let l = loc(i.span());
                let line = l.line as usize;
                if !excluded.iter().any(|&(a, b)| a <= line && line <= b) {
                    out.push(LocalDiag {
                        code: Code::PrivateRuntimeApi,
                        loc: l,
                        message: "buswarden::__private is the runtime's internals for the code #[buswarden::api] generates; what it publishes or subscribes cannot be analysed. Call the generated clients, triggers and hooks or the Connector's raw calls instead".to_string(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// Where a path starts. (`Spanned::span` on a whole expression prints its
/// tokens to find the ends: quadratic on nested code, so never used here.)
fn path_loc(p: &syn::Path) -> Loc {
    match (&p.leading_colon, p.segments.first()) {
        (Some(c), _) => loc(c.spans[0]),
        (None, Some(s)) => loc(s.ident.span()),
        (None, None) => Loc::default(),
    }
}

/// Where a call starts: its function path, else its opening parenthesis.
fn call_loc(c: &syn::ExprCall) -> Loc {
    match &*c.func {
        syn::Expr::Path(p) => path_loc(&p.path),
        _ => loc(c.paren_token.span.open()),
    }
}

fn path_ref(p: &syn::Path) -> PathRef {
    let segs = if p.segments.len() == 1 {
        Segs::One(p.segments[0].ident.to_compact_string())
    } else {
        Segs::from(
            p.segments
                .iter()
                .map(|s| s.ident.to_compact_string())
                .collect::<Vec<_>>(),
        )
    };
    PathRef {
        global: p.leading_colon.is_some(),
        segs,
    }
}

/// Wrapper types whose value is, for the analyzer, the wrapped value.
pub const WRAPPERS: &[&str] = &[
    "Arc", "Rc", "Box", "Option", "Result", "Mutex", "RwLock", "RefCell", "Cow", "Pin", "OnceCell",
    "OnceLock", "LazyLock", "Lazy",
];

/// The marker segment a wrapper type leaves in front of the path it wraps
/// (`Option<Mutex<X>>` is `<opt>::<lock>::X`), `None` for a wrapper the
/// value is reached through by auto-deref (`Arc`, `Box`, `LazyLock`…).
pub fn wrapper_marker(wrapper: &str) -> Option<&'static str> {
    match wrapper {
        "Option" | "Result" => Some(WRAP_OPT),
        "Mutex" | "RwLock" => Some(WRAP_LOCK),
        "RefCell" | "OnceCell" | "OnceLock" => Some(WRAP_CELL),
        _ => None,
    }
}

/// The marker of an `Option`/`Result` layer (unwrapped by `?`, `unwrap`,
/// `expect`, `Some(x)`/`Ok(x)` patterns).
pub const WRAP_OPT: &str = "<opt>";
/// The marker of a `Mutex`/`RwLock` layer (`lock`, `read`, `write`).
pub const WRAP_LOCK: &str = "<lock>";
/// The marker of a `RefCell`/`OnceCell`/`OnceLock` layer (`borrow`, `get`, `get_or_init`).
pub const WRAP_CELL: &str = "<cell>";

/// The path a type names, references stripped, each wrapper as a marker
/// segment in front ([`wrapper_marker`]).
pub fn type_ref(ty: &syn::Type) -> Option<PathRef> {
    let mut markers: Vec<Name> = Vec::new();
    let inner = type_ref_in(ty, &mut markers)?;
    if markers.is_empty() {
        return Some(inner);
    }
    markers.extend(inner.segs.iter().cloned());
    Some(PathRef {
        global: inner.global,
        segs: Segs::from(markers),
    })
}

fn type_ref_in(ty: &syn::Type, markers: &mut Vec<Name>) -> Option<PathRef> {
    match ty {
        syn::Type::Reference(r) => type_ref_in(&r.elem, markers),
        syn::Type::Paren(p) => type_ref_in(&p.elem, markers),
        syn::Type::Group(g) => type_ref_in(&g.elem, markers),
        syn::Type::Path(tp) if tp.qself.is_none() => {
            let last = tp.path.segments.last()?;
            if WRAPPERS.iter().any(|w| last.ident == w)
                && let syn::PathArguments::AngleBracketed(args) = &last.arguments
            {
                for a in &args.args {
                    if let syn::GenericArgument::Type(t) = a {
                        if let Some(m) = wrapper_marker(&last.ident.to_string()) {
                            markers.push(Name::from(m));
                        }
                        return type_ref_in(t, markers);
                    }
                }
            }
            Some(path_ref(&tp.path))
        }
        // A trait object or `impl Trait`: a type the analyzer cannot
        // name (a Connector or a client may be behind it).
        syn::Type::TraitObject(_) | syn::Type::ImplTrait(_) => Some(PathRef::single(DYN_TYPE)),
        // A tuple, an array, a slice, a fn pointer: declared, and no type a
        // client value can be followed into.
        _ => Some(PathRef::single(OPAQUE_TYPE)),
    }
}

/// The name [`type_ref`] gives a trait object, an `impl Trait` and a
/// generic type parameter: a value of unknown type.
pub const DYN_TYPE: &str = "<dyn>";

/// The names of the type parameters `g` declares.
fn type_params(g: &syn::Generics) -> Vec<Name> {
    g.type_params()
        .map(|p| p.ident.to_compact_string())
        .collect()
}

/// [`type_ref`], with a type parameter of `generics` (alone or inside
/// wrappers: `C`, `&C`, `Option<C>`) as [`DYN_TYPE`].
fn type_ref_generic(ty: &syn::Type, generics: &[Name]) -> Option<PathRef> {
    let mut t = type_ref(ty)?;
    if generics.is_empty() {
        return Some(t);
    }
    let n = t.segs.len();
    let wrapped = t.segs[..n - 1]
        .iter()
        .all(|s| s.starts_with('<') && s.as_str() != OPAQUE_TYPE && s.as_str() != DYN_TYPE);
    if !t.global && wrapped && generics.contains(&t.segs[n - 1]) {
        let mut segs: Vec<Name> = t.segs[..n - 1].to_vec();
        segs.push(Name::from(DYN_TYPE));
        t.segs = Segs::from(segs);
    }
    Some(t)
}

/// The name [`type_ref`] gives a declared type that is not a path; it
/// resolves to nothing.
pub const OPAQUE_TYPE: &str = "<opaque>";

fn pat(p: &syn::Pat) -> Pat {
    match p {
        syn::Pat::Ident(i) if i.subpat.is_none() => Pat::Ident(i.ident.to_compact_string()),
        syn::Pat::Type(t) => pat(&t.pat),
        syn::Pat::Paren(pp) => pat(&pp.pat),
        other => {
            let mut names = vec![];
            binds(other, &mut names);
            Pat::Binds(names)
        }
    }
}

fn binds(p: &syn::Pat, out: &mut Vec<Name>) {
    match p {
        syn::Pat::Ident(i) => {
            out.push(i.ident.to_compact_string());
            if let Some((_, sp)) = &i.subpat {
                binds(sp, out);
            }
        }
        syn::Pat::Or(o) => o.cases.iter().for_each(|c| binds(c, out)),
        syn::Pat::Paren(pp) => binds(&pp.pat, out),
        syn::Pat::Reference(r) => binds(&r.pat, out),
        syn::Pat::Slice(s) => s.elems.iter().for_each(|c| binds(c, out)),
        syn::Pat::Struct(s) => s.fields.iter().for_each(|f| binds(&f.pat, out)),
        syn::Pat::Tuple(t) => t.elems.iter().for_each(|c| binds(c, out)),
        syn::Pat::TupleStruct(t) => t.elems.iter().for_each(|c| binds(c, out)),
        syn::Pat::Type(t) => binds(&t.pat, out),
        _ => {}
    }
}

/// The idents of a token stream, deduplicated and sorted.
pub fn idents_of(tokens: TokenStream) -> Vec<Name> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![tokens];
    while let Some(ts) = stack.pop() {
        for tt in ts {
            match tt {
                TokenTree::Ident(i) => {
                    out.insert(i.to_compact_string());
                }
                TokenTree::Group(g) => stack.push(g.stream()),
                _ => {}
            }
        }
    }
    out.into_iter().collect()
}

fn lit_str(e: &syn::Expr) -> Option<String> {
    match e {
        syn::Expr::Lit(l) => match &l.lit {
            syn::Lit::Str(s) => Some(s.value()),
            _ => None,
        },
        syn::Expr::Group(g) => lit_str(&g.expr),
        syn::Expr::Paren(p) => lit_str(&p.expr),
        _ => None,
    }
}

/// Parses `(METHOD, "literal")` attribute arguments: the method as an
/// identifier or string literal.
fn method_and_literal(attr: &syn::Attribute) -> (Result<String, String>, Result<String, String>) {
    let (method, lit, _) = endpoint_args(attr, false);
    (method, lit)
}

/// The arguments of an endpoint attribute: `(METHOD, "route")` and, where
/// `with_claims`, an optional `claims = "expression"` (parsed here too, so a
/// malformed expression is a finding at the attribute).
#[allow(clippy::type_complexity)]
fn endpoint_args(
    attr: &syn::Attribute,
    with_claims: bool,
) -> (
    Result<String, String>,
    Result<String, String>,
    Result<Option<String>, String>,
) {
    let args = match attr.parse_args_with(Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated)
    {
        Ok(a) => a,
        Err(e) => {
            let msg = format!("cannot read the arguments: {e}");
            return (Err(msg.clone()), Err(msg.clone()), Err(msg));
        }
    };
    let mut it = args.iter();
    let method = match it.next() {
        Some(syn::Expr::Path(p)) => p
            .path
            .get_ident()
            .map(|i| i.to_string())
            .ok_or_else(|| "the method must be one identifier such as GET".to_string()),
        Some(e) => lit_str(e).ok_or_else(|| "the method must be an identifier such as GET".into()),
        None => Err("missing the method, as in (GET, \"…\")".into()),
    };
    let lit = match it.next() {
        Some(e) => lit_str(e).ok_or_else(|| "the second argument must be a string literal".into()),
        None => Err("missing the string literal, as in (GET, \"…\")".into()),
    };
    let claims = match it.next() {
        None => Ok(None),
        Some(syn::Expr::Assign(a))
            if with_claims
                && matches!(&*a.left, syn::Expr::Path(p) if p.path.is_ident("claims")) =>
        {
            match lit_str(&a.right) {
                Some(text) => buswarden_claims::parse(&text)
                    .map(|_| Some(text))
                    .map_err(|e| format!("invalid required-claims expression: {e}")),
                None => Err("claims = takes a string literal".into()),
            }
        }
        Some(_) if with_claims => {
            Err("takes (METHOD, \"…\") and optionally claims = \"expression\"".into())
        }
        Some(_) => Err("takes exactly two arguments: (METHOD, \"…\")".into()),
    };
    let claims = if claims.is_ok() && it.next().is_some() {
        Err("nothing may follow claims = \"…\"".into())
    } else {
        claims
    };
    (method, lit, claims)
}

fn attr_is(attr: &syn::Attribute, name: &str) -> bool {
    let segs: Vec<Name> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_compact_string())
        .collect();
    match segs.as_slice() {
        [one] => one == name,
        [krate, one] => krate == "buswarden" && one == name,
        _ => false,
    }
}

fn grants(attrs: &[syn::Attribute]) -> Vec<GrantAttr> {
    attrs
        .iter()
        .filter(|a| attr_is(a, "grant"))
        .map(|a| {
            let (method, url) = method_and_literal(a);
            GrantAttr {
                method,
                url,
                loc: loc(a.span()),
            }
        })
        .collect()
}

fn api_attr(attrs: &[syn::Attribute]) -> Option<(Result<String, String>, Loc)> {
    let a = attrs.iter().find(|a| attr_is(a, "api"))?;
    let host = a
        .parse_args_with(Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated)
        .map_err(|e| format!("cannot read the arguments: {e}"))
        .and_then(|args| {
            let hv = args
                .iter()
                .find(|nv| nv.path.is_ident("host"))
                .ok_or_else(|| "missing `host = \"…\"`".to_string())?;
            lit_str(&hv.value).ok_or_else(|| "`host` must be a string literal".to_string())
        });
    Some((host, loc(a.span())))
}

struct Lowerer<'a> {
    depth: usize,
    too_deep: bool,
    volatile: bool,
    diags: Vec<LocalDiag>,
    file_dir: &'a Path,
    /// The file's expression arena.
    arena: Vec<Expr>,
    /// Lowered list elements waiting to be moved into the arena together
    /// (a stack: nested lists push and take their own part above a mark).
    scratch: Vec<Expr>,
    /// The file's `let` statements.
    lets: Vec<Let>,
    /// The file's match arms and loop bindings.
    arms: Vec<Arm>,
    /// The file's macro calls.
    macros: Vec<MacroCall>,
    /// The file's closure parameters.
    params: Vec<Param>,
    /// The file's struct literal field names.
    field_names: Vec<Name>,
}

impl Lowerer<'_> {
    /// Puts a sub-expression in the arena.
    fn id(&mut self, e: Expr) -> ExprId {
        self.arena.push(e);
        ExprId((self.arena.len() - 1) as u32)
    }

    fn sub(&mut self, e: &syn::Expr) -> ExprId {
        let x = self.expr(e);
        self.id(x)
    }

    /// Lowers `es` onto the scratch stack; returns where they start there.
    fn gather<'e>(&mut self, es: impl IntoIterator<Item = &'e syn::Expr>) -> usize {
        let mark = self.scratch.len();
        for e in es {
            let x = self.expr(e);
            self.scratch.push(x);
        }
        mark
    }

    /// Moves the scratch stack above `mark` into the arena as one run,
    /// without the inert values when `drop_inert`.
    fn settle(&mut self, mark: usize, drop_inert: bool) -> ExprList {
        let Lowerer { arena, scratch, .. } = self;
        if drop_inert {
            let mut kept = mark;
            for i in mark..scratch.len() {
                if !inert_in(arena, &scratch[i]) {
                    scratch.swap(kept, i);
                    kept += 1;
                }
            }
            scratch.truncate(kept);
        }
        let start = arena.len() as u32;
        let len = (scratch.len() - mark) as u32;
        arena.extend(scratch.drain(mark..));
        ExprList { start, len }
    }

    /// The lowered `es` as one run in the arena.
    fn sub_list<'e>(&mut self, es: impl IntoIterator<Item = &'e syn::Expr>) -> ExprList {
        let mark = self.gather(es);
        self.settle(mark, false)
    }

    /// `Other` of the lowered `es`: the operands whose values are discarded
    /// and inert are dropped, so ordinary arithmetic and comparisons cost
    /// nothing later (and in the cache).
    fn other_of<'e>(&mut self, es: impl IntoIterator<Item = &'e syn::Expr>) -> Expr {
        let mark = self.gather(es);
        Expr::Other(self.settle(mark, true))
    }

    /// `Other` of the lowered `es`, every operand kept (a value that
    /// moves somewhere: a tuple or array element, an assigned value).
    fn other_keep<'e>(&mut self, es: impl IntoIterator<Item = &'e syn::Expr>) -> Expr {
        let mark = self.gather(es);
        Expr::Other(self.settle(mark, false))
    }

    /// Whether a value can do nothing the analyzer sees.
    fn inert(&self, e: &Expr) -> bool {
        inert_in(&self.arena, e)
    }

    /// A macro call as an expression.
    fn macro_expr(&mut self, call: MacroCall) -> Expr {
        self.macros.push(call);
        Expr::Macro((self.macros.len() - 1) as u32)
    }

    /// A block of one expression.
    fn block_of(&mut self, e: Expr) -> Block {
        let id = self.id(e);
        ExprList {
            start: id.0,
            len: 1,
        }
    }

    fn items(&mut self, items: &[syn::Item]) -> Vec<Item> {
        let mut out = Vec::with_capacity(items.len());
        for it in items {
            self.item(it, &mut out);
        }
        out
    }

    fn item(&mut self, it: &syn::Item, out: &mut Vec<Item>) {
        match it {
            syn::Item::Fn(f) if !is_excluded(&f.attrs) => {
                let def = self.fn_def(&f.attrs, &f.sig, Some(&f.block), &[]);
                out.push(Item::Fn(def));
            }
            syn::Item::Mod(m) if !is_excluded(&m.attrs) => {
                let path_attr = m.attrs.iter().find_map(|a| match &a.meta {
                    syn::Meta::NameValue(nv) if nv.path.is_ident("path") => lit_str(&nv.value),
                    _ => None,
                });
                out.push(Item::Mod {
                    name: m.ident.to_compact_string(),
                    loc: loc(m.ident.span()),
                    body: m.content.as_ref().map(|(_, items)| self.items(items)),
                    path_attr,
                });
            }
            syn::Item::Use(u) if !is_excluded(&u.attrs) => {
                let mut entries = vec![];
                use_tree(
                    &u.tree,
                    PathRef {
                        global: u.leading_colon.is_some(),
                        segs: Segs::default(),
                    },
                    &mut entries,
                );
                out.push(Item::Use(entries));
            }
            syn::Item::ExternCrate(e) if !is_excluded(&e.attrs) => {
                let alias = e
                    .rename
                    .as_ref()
                    .map_or(&e.ident, |(_, i)| i)
                    .to_compact_string();
                out.push(Item::Use(vec![UseEntry {
                    path: PathRef {
                        global: true,
                        segs: Segs::One(e.ident.to_compact_string()),
                    },
                    alias: Some(alias),
                    glob: false,
                }]));
            }
            syn::Item::Struct(s) if !is_excluded(&s.attrs) => {
                let generics = type_params(&s.generics);
                let fields = s
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let name = f
                            .ident
                            .as_ref()
                            .map_or_else(|| i.to_compact_string(), |id| id.to_compact_string());
                        (name, type_ref_generic(&f.ty, &generics))
                    })
                    .collect();
                out.push(Item::Struct(StructDef {
                    name: s.ident.to_compact_string(),
                    fields,
                }));
            }
            syn::Item::Trait(t) if !is_excluded(&t.attrs) => {
                out.push(Item::Trait(self.trait_def(t)))
            }
            syn::Item::Impl(i) if !is_excluded(&i.attrs) => {
                let generics = type_params(&i.generics);
                let methods: Vec<FnDef> = i
                    .items
                    .iter()
                    .filter_map(|ii| match ii {
                        syn::ImplItem::Fn(f) if !is_excluded(&f.attrs) => {
                            Some(self.fn_def(&f.attrs, &f.sig, Some(&f.block), &generics))
                        }
                        _ => None,
                    })
                    .collect();
                let mut consts = vec![];
                for ii in &i.items {
                    if let syn::ImplItem::Const(c) = ii
                        && !is_excluded(&c.attrs)
                    {
                        consts.push(self.const_body(&c.ident, &c.expr));
                    }
                }
                out.push(Item::Impl(ImplDef {
                    // `impl<T: …> Tr for T`: a blanket impl's `self` is of unknown type.
                    self_ty: type_ref_generic(&i.self_ty, &generics),
                    trait_path: i.trait_.as_ref().map(|(_, p, _)| path_ref(p)),
                    loc: loc(i.impl_token.span),
                    methods: consts.into_iter().map(|c| c.body).chain(methods).collect(),
                }));
            }
            syn::Item::Const(c) if !is_excluded(&c.attrs) => {
                out.push(Item::Const(self.const_body(&c.ident, &c.expr)));
            }
            syn::Item::Static(s) if !is_excluded(&s.attrs) => {
                out.push(Item::Const(self.const_body(&s.ident, &s.expr)));
            }
            syn::Item::Macro(m) if !is_excluded(&m.attrs) => {
                if m.mac.path.is_ident("macro_rules") {
                    let name = m
                        .ident
                        .as_ref()
                        .map(|i| i.to_compact_string())
                        .unwrap_or_default();
                    out.push(Item::MacroRules {
                        name,
                        loc: path_loc(&m.mac.path),
                        idents: idents_of(m.mac.tokens.clone()),
                    });
                } else {
                    let call = self.macro_call(&m.mac);
                    let l = call.loc;
                    let name =
                        compact_str::format_compact!("{}!", call.path.last().unwrap_or_default());
                    let e = self.macro_expr(call);
                    let body = self.block_of(e);
                    out.push(Item::Code(FnDef {
                        name,
                        loc: l,
                        grants: vec![],
                        edge_proxy: None,
                        has_self: false,
                        params: vec![],
                        ret: None,
                        body: Some(body),
                        span: body,
                    }));
                }
            }
            _ => {}
        }
    }

    fn const_body(&mut self, ident: &syn::Ident, expr: &syn::Expr) -> ConstDef {
        let start = self.arena.len();
        let body = self.expr(expr);
        let body = self.block_of(body);
        let span = self.span_from(start);
        ConstDef {
            name: ident.to_compact_string(),
            lit: lit_str(expr),
            body: FnDef {
                name: ident.to_compact_string(),
                loc: loc(ident.span()),
                grants: vec![],
                edge_proxy: None,
                has_self: false,
                params: vec![],
                ret: None,
                body: Some(body),
                span,
            },
        }
    }

    fn trait_def(&mut self, t: &syn::ItemTrait) -> TraitDef {
        let api = api_attr(&t.attrs).map(|(host, l)| {
            let mut methods = vec![];
            let mut malformed = vec![];
            for ti in &t.items {
                let syn::TraitItem::Fn(f) = ti else { continue };
                let mut found = false;
                for a in &f.attrs {
                    let kind = match a
                        .path()
                        .get_ident()
                        .map(|i| i.to_compact_string())
                        .as_deref()
                    {
                        Some("function") => EndpointKind::Function,
                        Some("web") => EndpointKind::Web,
                        Some("event") => EndpointKind::Event,
                        _ => continue,
                    };
                    found = true;
                    match endpoint_args(a, kind != EndpointKind::Event) {
                        (Ok(method), Ok(route), Ok(claims)) => methods.push(ApiMethod {
                            name: f.sig.ident.to_compact_string(),
                            kind,
                            method,
                            route,
                            claims,
                            loc: loc(a.span()),
                        }),
                        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => malformed.push((
                            loc(a.span()),
                            format!("endpoint attribute on `{}`: {e}", f.sig.ident),
                        )),
                    }
                }
                if !found {
                    malformed.push((
                        loc(f.sig.ident.span()),
                        format!(
                            "trait method `{}` has no #[function], #[web] or #[event] attribute",
                            f.sig.ident
                        ),
                    ));
                }
            }
            ApiAttr {
                host,
                loc: l,
                methods,
                malformed,
            }
        });
        let generics = type_params(&t.generics);
        let methods = t
            .items
            .iter()
            .filter_map(|ti| match ti {
                syn::TraitItem::Fn(f) if !is_excluded(&f.attrs) && f.default.is_some() => {
                    Some(self.fn_def(&f.attrs, &f.sig, f.default.as_ref(), &generics))
                }
                _ => None,
            })
            .collect();
        TraitDef {
            name: t.ident.to_compact_string(),
            loc: loc(t.ident.span()),
            api,
            methods,
        }
    }

    fn fn_def(
        &mut self,
        attrs: &[syn::Attribute],
        sig: &syn::Signature,
        body: Option<&syn::Block>,
        outer_generics: &[Name],
    ) -> FnDef {
        let mut generics = type_params(&sig.generics);
        generics.extend(outer_generics.iter().cloned());
        let mut has_self = false;
        let mut params = vec![];
        for a in &sig.inputs {
            match a {
                syn::FnArg::Receiver(_) => has_self = true,
                syn::FnArg::Typed(pt) => {
                    params.push((pat(&pt.pat), type_ref_generic(&pt.ty, &generics)))
                }
            }
        }
        let ret = match &sig.output {
            syn::ReturnType::Type(_, t) => type_ref_generic(t, &generics),
            syn::ReturnType::Default => None,
        };
        let start = self.arena.len();
        let body = body.map(|b| self.block(&b.stmts));
        FnDef {
            name: sig.ident.to_compact_string(),
            loc: loc(sig.ident.span()),
            grants: grants(attrs),
            edge_proxy: attrs
                .iter()
                .find(|a| attr_is(a, "edge_proxy"))
                .map(|a| loc(a.span())),
            has_self,
            params,
            ret,
            body,
            span: self.span_from(start),
        }
    }

    /// The run of the arena from `start` to its end.
    fn span_from(&self, start: usize) -> ExprList {
        ExprList {
            start: start as u32,
            len: (self.arena.len() - start) as u32,
        }
    }

    fn block(&mut self, stmts: &[syn::Stmt]) -> Block {
        let mark = self.scratch.len();
        for s in stmts {
            match s {
                syn::Stmt::Local(l) if !is_excluded(&l.attrs) => {
                    let (p, ty) = match &l.pat {
                        syn::Pat::Type(pt) => (pat(&pt.pat), type_ref(&pt.ty)),
                        other => (pat(other), None),
                    };
                    let init = l.init.as_ref().map(|i| self.sub(&i.expr));
                    let els = match l.init.as_ref().and_then(|i| i.diverge.as_ref()) {
                        Some((_, e)) => {
                            let x = self.expr(e);
                            Some(self.block_of(x))
                        }
                        None => None,
                    };
                    self.lets.push(Let {
                        pat: p,
                        ty,
                        init,
                        els,
                    });
                    self.scratch.push(Expr::Local((self.lets.len() - 1) as u32));
                }
                syn::Stmt::Expr(e, semi) if !expr_excluded(e) => {
                    let x = self.expr(e);
                    // A discarded inert value (`x;`) can do nothing the analyzer sees.
                    if semi.is_none() || !self.inert(&x) {
                        self.scratch.push(x);
                    }
                }
                syn::Stmt::Macro(m) if !is_excluded(&m.attrs) => {
                    let call = self.macro_call(&m.mac);
                    let x = self.macro_expr(call);
                    self.scratch.push(x);
                }
                // Items inside a body (nested fns, structs, impls) are
                // lowered in place as a block of their own code so their
                // calls still count; name resolution treats them as local.
                syn::Stmt::Item(it) => {
                    let mut items = vec![];
                    self.item(it, &mut items);
                    for item in items {
                        for body in item_bodies(item) {
                            self.scratch.push(Expr::Block(body));
                        }
                    }
                }
                _ => {}
            }
        }
        self.settle(mark, false)
    }

    fn expr(&mut self, e: &syn::Expr) -> Expr {
        if self.depth >= MAX_EXPR_DEPTH {
            if !self.too_deep {
                self.too_deep = true;
                self.diags.push(LocalDiag {
                    code: Code::NestingTooDeep,
                    loc: loc(e.span()),
                    message: format!(
                        "expressions nest deeper than {MAX_EXPR_DEPTH} levels here; the rest of this expression is not analysed. Split it into smaller expressions or functions"
                    ),
                });
            }
            return Expr::Unknown;
        }
        self.depth += 1;
        let out = self.expr_inner(e);
        self.depth -= 1;
        out
    }

    fn expr_inner(&mut self, e: &syn::Expr) -> Expr {
        use syn::Expr as E;
        match e {
            E::Path(p) if p.qself.is_none() => Expr::Path(path_ref(&p.path), path_loc(&p.path)),
            E::Path(_) => Expr::Other(ExprList::default()),
            E::Lit(l) => Expr::Lit(match &l.lit {
                syn::Lit::Str(s) => Some(Name::from(s.value())),
                _ => None,
            }),
            E::Call(c) => {
                let func = self.expr(&c.func);
                // A path callee's location is the call's: computed once.
                let at = match (&func, &*c.func) {
                    (Expr::Path(_, l), syn::Expr::Path(p)) if p.qself.is_none() => *l,
                    _ => call_loc(c),
                };
                let func = self.id(func);
                Expr::Call(func, self.sub_list(&c.args), at)
            }
            E::MethodCall(m) => Expr::Method(
                self.sub(&m.receiver),
                m.method.to_compact_string(),
                self.sub_list(&m.args),
                loc(m.method.span()),
            ),
            E::Field(f) => Expr::Field(
                self.sub(&f.base),
                match &f.member {
                    syn::Member::Named(i) => i.to_compact_string(),
                    syn::Member::Unnamed(i) => i.index.to_compact_string(),
                },
            ),
            E::Reference(r) => self.expr(&r.expr),
            E::Paren(p) => self.expr(&p.expr),
            E::Group(g) => self.expr(&g.expr),
            E::Try(t) => Expr::Try(self.sub(&t.expr)),
            E::Await(a) => self.expr(&a.base),
            E::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => self.expr(&u.expr),
            E::Unary(u) => self.other_of([&*u.expr]),
            E::Block(b) => Expr::Block(self.block(&b.block.stmts)),
            E::Async(b) => Expr::Block(self.block(&b.block.stmts)),
            E::Unsafe(b) => Expr::Block(self.block(&b.block.stmts)),
            E::Const(b) => Expr::Block(self.block(&b.block.stmts)),
            E::TryBlock(b) => Expr::Block(self.block(&b.block.stmts)),
            E::Loop(l) => Expr::Block(self.block(&l.body.stmts)),
            E::Closure(c) => {
                let start = self.params.len() as u32;
                self.params.extend(c.inputs.iter().map(|p| match p {
                    syn::Pat::Type(pt) => (pat(&pt.pat), type_ref(&pt.ty)),
                    other => (pat(other), None),
                }));
                let params = ExprList {
                    start,
                    len: self.params.len() as u32 - start,
                };
                Expr::Closure(params, self.sub(&c.body))
            }
            E::Match(m) => {
                let scrut = self.sub(&m.expr);
                // Arms are lowered first (their bodies may hold matches of
                // their own), then put in the arena as one run.
                let arms: Vec<Arm> = m
                    .arms
                    .iter()
                    .filter(|a| !is_excluded(&a.attrs))
                    .map(|a| Arm {
                        pat: pat(&a.pat),
                        guard: a.guard.as_ref().map(|(_, g)| self.sub(g)),
                        body: self.sub(&a.body),
                    })
                    .collect();
                let start = self.arms.len() as u32;
                let len = arms.len() as u32;
                self.arms.extend(arms);
                Expr::Match(scrut, ExprList { start, len })
            }
            E::If(i) => Expr::If(
                self.sub(&i.cond),
                self.block(&i.then_branch.stmts),
                i.else_branch.as_ref().map(|(_, e)| self.sub(e)),
            ),
            E::Let(l) => Expr::Let(pat(&l.pat), self.sub(&l.expr)),
            E::ForLoop(f) => {
                let body = Expr::Block(self.block(&f.body.stmts));
                let arm = Arm {
                    pat: pat(&f.pat),
                    guard: None,
                    body: self.id(body),
                };
                self.arms.push(arm);
                let arm = (self.arms.len() - 1) as u32;
                Expr::Loop(arm, self.sub(&f.expr))
            }
            E::While(w) => {
                let cond = self.sub(&w.cond);
                Expr::If(cond, self.block(&w.body.stmts), None)
            }
            E::Struct(s) => {
                let names = self.field_names.len() as u32;
                self.field_names
                    .extend(s.fields.iter().map(|f| match &f.member {
                        syn::Member::Named(i) => i.to_compact_string(),
                        syn::Member::Unnamed(i) => i.index.to_compact_string(),
                    }));
                // `..base` has the empty name.
                self.field_names
                    .extend(s.rest.iter().map(|_| Name::default()));
                let fields = s.fields.iter().map(|f| &f.expr).chain(s.rest.as_deref());
                Expr::StructLit(path_ref(&s.path), self.sub_list(fields), names)
            }
            E::Macro(m) if !is_excluded(&m.attrs) => {
                let call = self.macro_call(&m.mac);
                self.macro_expr(call)
            }
            E::Macro(_) => Expr::Other(ExprList::default()),
            // A client named in a collection, a tuple or an assignment
            // leaves what the analyzer follows: those operands are kept.
            E::Array(a) => self.other_keep(&a.elems),
            E::Tuple(t) => self.other_keep(&t.elems),
            // The assigned place (`x = …`, `self.f = …`) goes nowhere: only
            // a place with calls in it is kept.
            E::Assign(a) => {
                let mark = self.scratch.len();
                let place = self.expr(&a.left);
                if !self.inert(&place) {
                    self.scratch.push(place);
                }
                let value = self.expr(&a.right);
                self.scratch.push(value);
                Expr::Other(self.settle(mark, false))
            }
            E::Binary(b) => self.other_of([&*b.left, &*b.right]),
            E::Cast(c) => self.other_of([&*c.expr]),
            E::Index(i) => self.other_of([&*i.expr, &*i.index]),
            E::Range(r) => self.other_of(r.start.iter().chain(r.end.iter()).map(|b| &**b)),
            E::Repeat(r) => self.other_of([&*r.expr, &*r.len]),
            E::Return(r) => Expr::Return(r.expr.as_ref().map(|e| self.sub(e))),
            E::Break(b) => self.other_keep(b.expr.iter().map(|b| &**b)),
            E::Yield(y) => self.other_keep(y.expr.iter().map(|b| &**b)),
            E::RawAddr(r) => self.other_of([&*r.expr]),
            _ => Expr::Other(ExprList::default()),
        }
    }

    fn macro_call(&mut self, mac: &syn::Macro) -> MacroCall {
        let path = path_ref(&mac.path);
        let l = path_loc(&mac.path);
        let name = path.last().unwrap_or_default().to_string();
        let mut call = MacroCall {
            path,
            loc: l,
            body: ExprList::default(),
            unparsed_idents: vec![],
            include: None,
        };
        if name == "include" {
            self.volatile = true;
            call.include = Some(self.include(mac));
            return call;
        }
        // Most macro arguments are a comma-separated run of single literals
        // and names (`format!("…", a, b)`, `vec![x]`): those are lowered
        // exactly as syn would parse them, without building a token buffer.
        if let Some(args) = simple_args(&mac.tokens) {
            call.body = self.sub_list(&args);
            return call;
        }
        let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = parser.parse2(mac.tokens.clone()) {
            call.body = self.sub_list(&args);
            return call;
        }
        if let Ok(stmts) = syn::Block::parse_within.parse2(mac.tokens.clone()) {
            call.body = self.block(&stmts);
            return call;
        }
        let mut unparsed = vec![];
        let mark = self.scratch.len();
        self.chunks(mac.tokens.clone(), &mut unparsed);
        call.body = self.settle(mark, false);
        call.unparsed_idents = idents_of(unparsed.into_iter().collect());
        call
    }

    /// Splits a token stream at top-level `,`, `;` and `=>`, keeps the
    /// expression after a lone `=` (`pat = expr`), and lowers each chunk
    /// that parses onto the scratch stack; a chunk that does not is
    /// searched group by group, and the tokens that parse in no way go to
    /// `unparsed`.
    fn chunks(&mut self, tokens: TokenStream, unparsed: &mut Vec<TokenTree>) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut chunk: Vec<TokenTree> = vec![];
        let mut i = 0;
        while i <= tts.len() {
            let sep = match tts.get(i) {
                None => 1,
                Some(TokenTree::Punct(p)) if (p.as_char() == ',' || p.as_char() == ';') => 1,
                Some(TokenTree::Punct(p))
                    if p.as_char() == '='
                        && p.spacing() == Spacing::Joint
                        && matches!(tts.get(i + 1), Some(TokenTree::Punct(q)) if q.as_char() == '>') =>
                {
                    2
                }
                _ => 0,
            };
            if sep == 0 {
                if let Some(t) = tts.get(i) {
                    chunk.push(t.clone());
                }
                i += 1;
                continue;
            }
            self.chunk(std::mem::take(&mut chunk), unparsed);
            i += sep;
        }
    }

    fn chunk(&mut self, chunk: Vec<TokenTree>, unparsed: &mut Vec<TokenTree>) {
        if chunk.is_empty() {
            return;
        }
        // `pat = expr`: a lone `=` not preceded by a joint punctuation.
        let assign = chunk.iter().enumerate().position(|(k, t)| {
            matches!(t, TokenTree::Punct(p) if p.as_char() == '=' && p.spacing() == Spacing::Alone)
                && !matches!(k.checked_sub(1).and_then(|j| chunk.get(j)), Some(TokenTree::Punct(q)) if q.spacing() == Spacing::Joint)
        });
        let body: Vec<TokenTree> = match assign {
            Some(k) => chunk[k + 1..].to_vec(),
            None => chunk.clone(),
        };
        let ts: TokenStream = body.iter().cloned().collect();
        if let Ok(e) = syn::parse2::<syn::Expr>(ts) {
            let x = self.expr(&e);
            self.scratch.push(x);
            return;
        }
        for t in chunk {
            match t {
                TokenTree::Group(g)
                    if g.delimiter() != Delimiter::None || !g.stream().is_empty() =>
                {
                    let stream = g.stream();
                    let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
                    if let Ok(args) = parser.parse2(stream.clone()) {
                        for e in &args {
                            let x = self.expr(e);
                            self.scratch.push(x);
                        }
                    } else if let Ok(stmts) = syn::Block::parse_within.parse2(stream.clone()) {
                        let b = self.block(&stmts);
                        self.scratch.push(Expr::Block(b));
                    } else {
                        self.chunks(stream, unparsed);
                    }
                }
                other => unparsed.push(other),
            }
        }
    }

    fn include(&mut self, mac: &syn::Macro) -> Result<Vec<Name>, String> {
        let lit: syn::LitStr = mac.parse_body().map_err(|_| {
            "include! of a computed path cannot be read by the analyzer".to_string()
        })?;
        let path = self.file_dir.join(lit.value());
        // Never read through `include!` outside the project: the target must
        // resolve inside the outermost folder above this file that holds a
        // Cargo.toml (a link or an absolute path out is refused).
        let project = self
            .file_dir
            .ancestors()
            .filter(|a| a.join("Cargo.toml").is_file())
            .last()
            .and_then(|a| std::fs::canonicalize(a).ok());
        let inside =
            project.is_some_and(|p| std::fs::canonicalize(&path).is_ok_and(|t| t.starts_with(p)));
        if !inside {
            return Err(format!(
                "include!({:?}) leads outside the project; it is not read. Keep included files in the tree",
                lit.value()
            ));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("include!({:?}) cannot be read: {e}", lit.value()))?;
        let ts: TokenStream = text
            .parse()
            .map_err(|_| format!("include!({:?}) does not tokenize", lit.value()))?;
        Ok(idents_of(ts))
    }
}

/// Whether a value can do nothing the analyzer sees (`arena`: its file's).
fn inert_in(arena: &[Expr], e: &Expr) -> bool {
    match e {
        Expr::Path(..) | Expr::Lit(..) | Expr::Unknown => true,
        Expr::Other(c) => c.len == 0,
        Expr::Field(b, _) => arena.get(b.0 as usize).is_none_or(|e| inert_in(arena, e)),
        _ => false,
    }
}

/// Words that parse as something other than a path when alone.
const KEYWORDS: &[&str] = &[
    "_", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
    "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
    "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Macro arguments that are one literal or one (non-keyword) name each,
/// separated by commas (a trailing comma allowed), as the expressions syn
/// parses them into: `None` for anything else.
fn simple_args(tokens: &TokenStream) -> Option<Vec<syn::Expr>> {
    let mut out = vec![];
    let mut want_item = true;
    for tt in tokens.clone() {
        match tt {
            TokenTree::Literal(l) if want_item => {
                out.push(syn::Expr::Lit(syn::ExprLit {
                    attrs: vec![],
                    lit: syn::Lit::new(l),
                }));
                want_item = false;
            }
            TokenTree::Ident(i) if want_item => {
                if KEYWORDS.iter().any(|k| i == k) {
                    return None;
                }
                out.push(syn::Expr::Path(syn::ExprPath {
                    attrs: vec![],
                    qself: None,
                    path: syn::Path::from(i),
                }));
                want_item = false;
            }
            TokenTree::Punct(p) if !want_item && p.as_char() == ',' => want_item = true,
            _ => return None,
        }
    }
    Some(out)
}

fn expr_excluded(e: &syn::Expr) -> bool {
    let attrs: &[syn::Attribute] = match e {
        syn::Expr::Block(b) => &b.attrs,
        syn::Expr::Call(c) => &c.attrs,
        syn::Expr::MethodCall(m) => &m.attrs,
        syn::Expr::Macro(m) => &m.attrs,
        syn::Expr::Async(a) => &a.attrs,
        syn::Expr::Unsafe(u) => &u.attrs,
        syn::Expr::If(i) => &i.attrs,
        syn::Expr::Match(m) => &m.attrs,
        _ => return false,
    };
    is_excluded(attrs)
}

/// The bodies an item nested in a fn contributes to that fn.
fn item_bodies(item: Item) -> Vec<Block> {
    let fn_body = |f: FnDef| f.body.unwrap_or_default();
    match item {
        Item::Fn(f) | Item::Code(f) => vec![fn_body(f)],
        Item::Const(c) => vec![fn_body(c.body)],
        Item::Impl(i) => i.methods.into_iter().map(fn_body).collect(),
        Item::Trait(t) => t.methods.into_iter().map(fn_body).collect(),
        Item::Mod {
            body: Some(items), ..
        } => items.into_iter().flat_map(item_bodies).collect(),
        _ => vec![],
    }
}

fn use_tree(t: &syn::UseTree, prefix: PathRef, out: &mut Vec<UseEntry>) {
    match t {
        syn::UseTree::Path(p) => {
            let mut next = prefix;
            next.segs.push(p.ident.to_compact_string());
            use_tree(&p.tree, next, out);
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_compact_string();
            let mut path = prefix;
            // `use a::b::{self}` imports the module `b` itself.
            if name == "self" {
                let alias = path.last().map(Name::from);
                out.push(UseEntry {
                    path,
                    alias,
                    glob: false,
                });
                return;
            }
            path.segs.push(name.clone());
            out.push(UseEntry {
                path,
                alias: Some(name),
                glob: false,
            });
        }
        syn::UseTree::Rename(r) => {
            let alias = r.rename.to_compact_string();
            if alias == "_" {
                return;
            }
            let mut path = prefix;
            if r.ident != "self" {
                path.segs.push(r.ident.to_compact_string());
            }
            out.push(UseEntry {
                path,
                alias: Some(alias),
                glob: false,
            });
        }
        syn::UseTree::Glob(_) => out.push(UseEntry {
            path: prefix,
            alias: None,
            glob: true,
        }),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_tree(t, prefix.clone(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lowerer(dir: &Path) -> Lowerer<'_> {
        Lowerer {
            depth: 0,
            too_deep: false,
            volatile: false,
            diags: vec![],
            file_dir: dir,
            arena: Vec::new(),
            scratch: Vec::new(),
            lets: Vec::new(),
            arms: Vec::new(),
            macros: Vec::new(),
            params: Vec::new(),
            field_names: Vec::new(),
        }
    }

    /// The shortcut for simple macro arguments lowers exactly what syn's
    /// comma-separated expression parse would, and declines the rest.
    #[test]
    fn simple_macro_args_lower_as_syn_parses_them() {
        let dir = Path::new(".");
        for src in [
            "",
            "a",
            "\"block-{}-28\", id",
            "1, 2.5, 'c', b\"y\", \"s\"",
            "a, b,",
            "r#type, x",
            "\"esc\\n\\u{e9}\"",
        ] {
            let tokens: TokenStream = src.parse().unwrap();
            let fast = simple_args(&tokens).expect(src);
            let parser = Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated;
            let slow = parser.parse2(tokens).unwrap();
            let (mut a, mut b) = (lowerer(dir), lowerer(dir));
            let fa: Vec<Expr> = fast.iter().map(|e| a.expr(e)).collect();
            let fb: Vec<Expr> = slow.iter().map(|e| b.expr(e)).collect();
            assert_eq!(fa, fb, "{src}");
            assert_eq!(a.arena, b.arena, "{src}");
        }
        for src in [
            "a + b", "x.y", "f(a)", "true", "self", "_", ", a", "a,, b", "-1", "a; b", "x => y",
        ] {
            let tokens: TokenStream = src.parse().unwrap();
            assert!(simple_args(&tokens).is_none(), "{src}");
        }
    }
}
