//! The compact intermediate form of one source file: the items and the
//! expression skeleton the analyzer needs, lowered from syn's tree in the
//! parallel parse phase so the (large) syn tree can be dropped right away.
//!
//! Nothing here is resolved: paths are still written as in the source, and
//! types are the paths the source names (with `&`, `Arc<…>` and similar
//! auto-deref wrappers stripped, and `Option`/`Result`, `Mutex`/`RwLock`,
//! `RefCell`/`OnceCell`/`OnceLock` as marker segments in front:
//! [`crate::lower::wrapper_marker`]). Excluded code (`#[cfg(test)]`, `#[test]`)
//! never reaches this form.

use serde::{Deserialize, Serialize};

/// An identifier or path segment: names up to 24 bytes are stored inline,
/// so lowering, caching, cloning and freeing most names allocates nothing.
pub type Name = compact_str::CompactString;

/// A 1-based line and column in a file.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Loc {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub col: u32,
}

/// A path as written: `crate::a::B`, `::x::y`, `Self::new`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PathRef {
    /// A leading `::`.
    pub global: bool,
    /// The segments, without generic arguments.
    pub segs: Segs,
}

/// The segments of a path. Most paths in code are one name (a local
/// variable, `self`, a function), kept inline without an allocation.
/// Equality and hashing are those of the segment list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Segs {
    /// One segment.
    One(Name),
    /// Any other number of segments.
    Many(Vec<Name>),
}

impl PartialEq for Segs {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Segs {}

impl std::hash::Hash for Segs {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl Default for Segs {
    fn default() -> Self {
        Segs::Many(Vec::new())
    }
}

impl Segs {
    /// Appends a segment.
    pub fn push(&mut self, name: Name) {
        match self {
            Segs::One(first) => {
                let first = std::mem::take(first);
                *self = Segs::Many(vec![first, name]);
            }
            Segs::Many(v) if v.is_empty() => *self = Segs::One(name),
            Segs::Many(v) => v.push(name),
        }
    }
}

impl std::ops::Deref for Segs {
    type Target = [Name];
    fn deref(&self) -> &[Name] {
        match self {
            Segs::One(n) => std::slice::from_ref(n),
            Segs::Many(v) => v,
        }
    }
}

impl From<Vec<Name>> for Segs {
    fn from(mut v: Vec<Name>) -> Self {
        if v.len() == 1 {
            Segs::One(v.pop().unwrap_or_default())
        } else {
            Segs::Many(v)
        }
    }
}

impl Extend<Name> for Segs {
    fn extend<I: IntoIterator<Item = Name>>(&mut self, iter: I) {
        for n in iter {
            self.push(n);
        }
    }
}

impl PathRef {
    /// A one-segment path.
    pub fn single(name: &str) -> Self {
        PathRef {
            global: false,
            segs: Segs::One(Name::from(name)),
        }
    }

    /// The last segment, if any.
    pub fn last(&self) -> Option<&str> {
        self.segs.last().map(Name::as_str)
    }
}

/// One `use` import, flattened from a use tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseEntry {
    /// The imported path (for a glob: the path the glob is on).
    pub path: PathRef,
    /// The name it is bound to (`None` for a glob; `_` imports are dropped).
    pub alias: Option<Name>,
    /// `use a::*`.
    pub glob: bool,
}

/// What an API trait method declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EndpointKind {
    /// `#[function(METHOD, "route")]`.
    Function,
    /// `#[web(METHOD, "route")]`.
    Web,
    /// `#[event(METHOD, "route")]`.
    Event,
}

/// One endpoint declared in an API trait, unvalidated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMethod {
    /// The trait method's name.
    pub name: Name,
    /// Function, web or event.
    pub kind: EndpointKind,
    /// The method token as written.
    pub method: String,
    /// The route string as written.
    pub route: String,
    /// `claims = "…"`: the required-claims expression as written.
    pub claims: Option<String>,
    /// Where the attribute is.
    pub loc: Loc,
}

/// `#[buswarden::api(host = "…")]` on a trait.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiAttr {
    /// The host literal, or why it could not be read.
    pub host: Result<String, String>,
    /// Where the attribute is.
    pub loc: Loc,
    /// The endpoints declared by the trait's methods.
    pub methods: Vec<ApiMethod>,
    /// Trait methods carrying no endpoint attribute (or a malformed one).
    pub malformed: Vec<(Loc, String)>,
}

/// `#[buswarden::grant(METHOD, "URL")]` on a fn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantAttr {
    /// The method token, or why it could not be read.
    pub method: Result<String, String>,
    /// The URL pattern literal.
    pub url: Result<String, String>,
    /// Where the attribute is.
    pub loc: Loc,
}

/// A function, method or other body owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FnDef {
    /// Its name (`const X`, `static Y` bodies use the item name).
    pub name: Name,
    /// Where its name is.
    pub loc: Loc,
    /// Explicit grants on it.
    pub grants: Vec<GrantAttr>,
    /// Where its `#[buswarden::edge_proxy]` attribute is, if it has one.
    pub edge_proxy: Option<Loc>,
    /// Whether it takes `self`.
    pub has_self: bool,
    /// Parameters: bound names and declared type.
    pub params: Vec<(Pat, Option<PathRef>)>,
    /// The declared return type.
    pub ret: Option<PathRef>,
    /// The body (`None` for a declaration without one).
    pub body: Option<Block>,
    /// The run of the expression arena the body's expressions occupy
    /// (nested ones included): read in address order before the body is
    /// evaluated, so its cache misses overlap instead of coming one at a
    /// time down the tree.
    pub span: ExprList,
}

/// A struct and the declared types of its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructDef {
    /// Its name.
    pub name: Name,
    /// Field name (`0`, `1`… for tuple structs) and type.
    pub fields: Vec<(Name, Option<PathRef>)>,
}

/// A trait (API or not) and its default method bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitDef {
    /// Its name.
    pub name: Name,
    /// Where its name is.
    pub loc: Loc,
    /// The API attribute, when it is an API trait.
    pub api: Option<ApiAttr>,
    /// Methods with default bodies.
    pub methods: Vec<FnDef>,
}

/// An `impl` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImplDef {
    /// The implementing type.
    pub self_ty: Option<PathRef>,
    /// The implemented trait.
    pub trait_path: Option<PathRef>,
    /// Where the impl starts.
    pub loc: Loc,
    /// Its methods.
    pub methods: Vec<FnDef>,
}

/// A `const` or `static`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstDef {
    /// Its name.
    pub name: Name,
    /// The value when it is a string literal.
    pub lit: Option<String>,
    /// The initializer as a body (calls in it grant like any code).
    pub body: FnDef,
}

/// A module item the analyzer keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// `mod x;` (`body: None`) or `mod x { … }`.
    Mod {
        /// The module name.
        name: Name,
        /// Where it is declared.
        loc: Loc,
        /// Inline items.
        body: Option<Vec<Item>>,
        /// `#[path = "…"]`.
        path_attr: Option<String>,
    },
    /// `use …;` entries.
    Use(Vec<UseEntry>),
    /// A free function.
    Fn(FnDef),
    /// A struct.
    Struct(StructDef),
    /// A trait.
    Trait(TraitDef),
    /// An impl block.
    Impl(ImplDef),
    /// A const or static.
    Const(ConstDef),
    /// `macro_rules! name { … }`: the identifiers its body mentions.
    MacroRules {
        /// The macro's name.
        name: Name,
        /// Where it is.
        loc: Loc,
        /// Identifiers in its body.
        idents: Vec<Name>,
    },
    /// Code outside any fn (an item-position macro call): a body of its own.
    Code(FnDef),
}

/// A pattern, reduced to the names it binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pat {
    /// `x`, `mut x`, `ref x`.
    Ident(Name),
    /// Any other pattern: the names it binds.
    Binds(Vec<Name>),
}

/// `let pat: ty = init else { … };` (in its file's [`FileIr::lets`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Let {
    /// The pattern.
    pub pat: Pat,
    /// The annotated type.
    pub ty: Option<PathRef>,
    /// The initializer.
    pub init: Option<ExprId>,
    /// The `else` block.
    pub els: Option<Block>,
}

/// A block: its statements, a run of the file's expression arena (a `let`
/// is an [`Expr::Local`] there), its own scope.
pub type Block = ExprList;

/// A match arm or an `if let`/`while let`/`for` binding scope (in its
/// file's [`FileIr::arms`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// The names the pattern binds.
    pub pat: Pat,
    /// The guard.
    pub guard: Option<ExprId>,
    /// The arm's body.
    pub body: ExprId,
}

/// A closure parameter: bound names and declared type (in its file's
/// [`FileIr::params`]).
pub type Param = (Pat, Option<PathRef>);

/// A macro invocation in expression, statement or item position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MacroCall {
    /// The macro's path.
    pub path: PathRef,
    /// Where it is.
    pub loc: Loc,
    /// The arguments that parsed as expressions or statements.
    pub body: Block,
    /// Identifiers in token runs that did not parse (checked for client names).
    pub unparsed_idents: Vec<Name>,
    /// For `include!`: the included file's identifiers, or why it could not be read.
    pub include: Option<Result<Vec<Name>, String>>,
}

/// An expression in its file's arena ([`FileIr::exprs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExprId(pub u32);

/// A run of consecutive entries of one of its file's arenas (expressions,
/// arms, closure parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExprList {
    /// The first one's index.
    pub start: u32,
    /// How many.
    pub len: u32,
}

/// A run of a file's [`FileIr::arms`].
pub type ArmList = ExprList;

/// A run of a file's [`FileIr::params`].
pub type ParamList = ExprList;

/// The expression skeleton. Sub-expressions, statements, `let`s, arms,
/// macro calls and closure parameters live in the file's arenas
/// ([`FileIr`]) and are named by index: lowering, keeping, reading and
/// freeing a file's code then costs a few growing vectors instead of an
/// allocation per node, and a file's lowered form needs no packing to sit
/// together in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A path used as a value.
    Path(PathRef, Loc),
    /// A literal: `Some(text)` for a string literal.
    Lit(Option<Name>),
    /// `f(args)`.
    Call(ExprId, ExprList, Loc),
    /// `recv.method(args)`.
    Method(ExprId, Name, ExprList, Loc),
    /// `base.field`.
    Field(ExprId, Name),
    /// A block (also `async`, `unsafe`, `loop`).
    Block(Block),
    /// A `let` statement ([`FileIr::lets`]): binds into the rest of its block.
    Local(u32),
    /// `|params| body`.
    Closure(ParamList, ExprId),
    /// `match e { arms }`.
    Match(ExprId, ArmList),
    /// `if cond { then } else { els }` (an `if let` binds into `then`).
    If(ExprId, Block, Option<ExprId>),
    /// `let pat = e` inside a condition.
    Let(Pat, ExprId),
    /// `for pat in iter { body }` (the arm, in [`FileIr::arms`], binds the
    /// pattern into the body).
    Loop(u32, ExprId),
    /// `S { field: e, ..base }`: the field values (then the `..base`, if
    /// any), and where their names start in [`FileIr::field_names`] (one
    /// name a value; the empty name for `..base`).
    StructLit(PathRef, ExprList, u32),
    /// `return e`.
    Return(Option<ExprId>),
    /// `e?`.
    Try(ExprId),
    /// A macro call ([`FileIr::macros`]).
    Macro(u32),
    /// Any other expression: its operands; its value's type is known but
    /// not bus-related (an arithmetic result, a tuple, a literal array…).
    Other(ExprList),
    /// Lowering stopped here (nesting too deep).
    Unknown,
}

/// A file's arenas, read by index; an index out of range (a damaged cache
/// entry) reads as nothing rather than panicking.
impl FileIr {
    /// One expression.
    pub fn expr(&self, id: ExprId) -> &Expr {
        self.exprs.get(id.0 as usize).unwrap_or(&Expr::Unknown)
    }

    /// A run of expressions (a block's statements, a call's arguments…).
    pub fn run(&self, list: ExprList) -> &[Expr] {
        run_of(&self.exprs, list)
    }

    /// A `let` statement.
    pub fn local(&self, i: u32) -> Option<&Let> {
        self.lets.get(i as usize)
    }

    /// One arm.
    pub fn arm(&self, i: u32) -> Option<&Arm> {
        self.arms.get(i as usize)
    }

    /// A run of arms.
    pub fn arm_run(&self, list: ArmList) -> &[Arm] {
        run_of(&self.arms, list)
    }

    /// A macro call.
    pub fn mac(&self, i: u32) -> Option<&MacroCall> {
        self.macros.get(i as usize)
    }

    /// The `i`th field name of the struct literal whose names start at `start`.
    pub fn field_name(&self, start: u32, i: usize) -> Option<&Name> {
        self.field_names.get(start as usize + i)
    }

    /// A run of closure parameters.
    pub fn param_run(&self, list: ParamList) -> &[Param] {
        run_of(&self.params, list)
    }
}

/// The run `list` of `arena` (empty when out of range).
fn run_of<T>(arena: &[T], list: ExprList) -> &[T] {
    let start = list.start as usize;
    arena
        .get(start..start.saturating_add(list.len as usize))
        .unwrap_or(&[])
}

/// A diagnostic found while lowering one file, before any resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalDiag {
    /// Its code.
    pub code: crate::diagnostic::Code,
    /// Where.
    pub loc: Loc,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One lowered file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FileIr {
    /// Its top-level items.
    pub items: Vec<Item>,
    /// The arena of the expressions and statements its items' bodies hold.
    pub exprs: Vec<Expr>,
    /// The arena of its `let` statements.
    pub lets: Vec<Let>,
    /// The arena of its match arms and loop bindings.
    pub arms: Vec<Arm>,
    /// The arena of its macro calls in expression or statement position.
    pub macros: Vec<MacroCall>,
    /// The arena of its closures' parameters.
    pub params: Vec<Param>,
    /// The arena of its struct literals' field names.
    pub field_names: Vec<Name>,
    /// Diagnostics found while lowering it.
    pub diags: Vec<LocalDiag>,
    /// Whether its meaning depends on other files (`include!`): never cached.
    pub volatile: bool,
}
