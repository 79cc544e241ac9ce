//! A generated-program property test of the analyzer's soundness: a seeded
//! generator writes small service workspaces (an API crate and a service
//! crate) whose calls use the call forms of the conventions and every
//! escape shape of the "Soundness" section, and knows the truth of each
//! call. For every program the analyzer must either derive exactly the
//! true rules of a shape, or report an error at the line where the shape's
//! client escapes what it follows: never fewer rules silently, never more.
//!
//! `SOUNDNESS_SEED=n` runs that one program (printed on failure);
//! `SOUNDNESS_PROGRAMS=n` sets how many programs the run generates.

use gencreds::analysis::{Options, analyze};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Where a created client sends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Own,
    Host(String),
    Dynamic,
}

impl Dest {
    /// The creation expression (`svc: &Connector` and `h` in scope).
    fn create(&self) -> String {
        match self {
            Dest::Own => "ApiClient::new(svc)".into(),
            Dest::Host(h) => format!("ApiClient::new(svc).for_host(\"{h}\")"),
            Dest::Dynamic => "ApiClient::new(svc).for_host(&h)".into(),
        }
    }
    /// The destination token of a rule.
    fn token(&self) -> String {
        match self {
            Dest::Own => "api_example".into(),
            Dest::Host(h) => h.replace('.', "_"),
            Dest::Dynamic => "*".into(),
        }
    }
}

/// One endpoint of the generated API.
#[derive(Debug, Clone)]
struct Endpoint {
    name: String,
    method: &'static str,
    port: u16,
}

/// What the analyzer must say about one shape.
#[derive(Debug, Clone)]
enum Truth {
    /// The endpoint is called through clients with these destinations
    /// (empty: test-only code, nothing granted).
    Calls(Vec<Dest>),
    /// The client escapes at the line marked `@E<k>`.
    Escapes,
}

/// One generated shape: items for the service file, statements for its
/// shape fn, items for the API crate.
struct Shape {
    items: String,
    body: String,
    api_items: String,
    truth: Truth,
    what: &'static str,
}

/// Common method names an endpoint may have (looked up first on a client).
const NAMES: &[&str] = &[
    "read", "write", "lock", "into", "get", "insert", "send", "fetch", "put", "borrow", "as_ref",
    "unwrap", "deref", "to_owned",
];

fn endpoint(rng: &mut Rng, k: usize, used: &mut BTreeSet<String>) -> Endpoint {
    let mut name = format!("ep{k}");
    if rng.chance(40) {
        let n = NAMES[rng.below(NAMES.len())];
        if used.insert(n.to_string()) {
            name = n.to_string();
        }
    }
    Endpoint {
        name,
        method: ["GET", "POST", "PUT", "DELETE"][rng.below(4)],
        port: [443, 443, 444, 666][rng.below(4)],
    }
}

fn dest(rng: &mut Rng, k: usize) -> Dest {
    match rng.below(3) {
        0 => Dest::Own,
        1 => Dest::Host(format!("h{k}-{}.example", rng.below(3))),
        _ => Dest::Dynamic,
    }
}

/// Followed shapes: (name, generator). Each returns a shape whose calls of
/// endpoint `e` are marked `// @C<k>`.
fn followed(rng: &mut Rng, k: usize, e: &str, d: &Dest) -> Shape {
    let c = d.create();
    let call = |recv: &str| format!("{recv}.{e}().await.ok(); // @C{k}");
    let mut items = String::new();
    let mut api_items = String::new();
    let mut dests = vec![d.clone()];
    let (what, body) = match rng.below(22) {
        21 => {
            // Two literals of one struct with different hosts, one used:
            // only its host (a field follows the value's literal, an
            // inherent method its receivers).
            let d2 = dest(rng, k + 3000);
            let c2 = d2.create();
            items = format!(
                "struct P{k}<'a> {{\n    c: ApiClient<'a>,\n}}\n\nimpl<'a> P{k}<'a> {{\n    async fn go(&self) {{\n        {}\n    }}\n}}\n",
                call("self.c")
            );
            let used = if rng.chance(50) {
                "    p.go().await;\n".to_string()
            } else {
                format!("    {}\n", call("p.c"))
            };
            (
                "two literals of a struct, one used",
                format!(
                    "    let p = P{k} {{ c: {c} }};\n    let q = P{k} {{ c: {c2} }};\n    let _ = &q.c;\n{used}"
                ),
            )
        }
        19 | 20 => {
            let (items, body) = composed(rng, k, e, &c, None);
            return Shape {
                items,
                body,
                api_items,
                truth: Truth::Calls(dests),
                what: "composed flow",
            };
        }
        // (`w.into()`, `w.borrow()` on a newtype are the blanket traits'
        // methods in Rust, never the target's: not generated.)
        11 if !matches!(e, "into" | "borrow" | "as_ref" | "to_owned" | "deref") => {
            items = format!(
                "struct W{k}<'a>(ApiClient<'a>);\n\nimpl<'a> std::ops::Deref for W{k}<'a> {{\n    type Target = ApiClient<'a>;\n    fn deref(&self) -> &ApiClient<'a> {{\n        &self.0\n    }}\n}}\n"
            );
            (
                "Deref newtype",
                format!("    let w = W{k}({c});\n    {}\n", call("w")),
            )
        }
        0 | 11 => ("direct", format!("    {}\n", call(&c))),
        1 => ("let", format!("    let c = {c};\n    {}\n", call("c"))),
        2 => (
            "annotated let",
            format!("    let c: ApiClient<'_> = {c};\n    {}\n", call("c")),
        ),
        3 => {
            items = format!(
                "async fn help_{k}(c: &ApiClient<'_>) {{\n    {}\n}}\n",
                call("c")
            );
            ("parameter", format!("    help_{k}(&{c}).await;\n"))
        }
        4 => {
            let depth = 2 + rng.below(3);
            for i in 0..depth {
                let inner = if i + 1 == depth {
                    call("c")
                } else {
                    format!("help_{k}_{}(c).await;", i + 1)
                };
                let _ = writeln!(
                    items,
                    "async fn help_{k}_{i}(c: &ApiClient<'_>) {{\n    {inner}\n}}"
                );
            }
            ("nested helpers", format!("    help_{k}_0(&{c}).await;\n"))
        }
        5 => {
            items = format!(
                "fn mk_{k}<'a>(svc: &'a Connector, h: &str) -> ApiClient<'a> {{\n    let _ = h;\n    {c}\n}}\n"
            );
            let recv = format!("mk_{k}(svc, &h)");
            if rng.chance(50) {
                ("returned", format!("    {}\n", call(&recv)))
            } else {
                (
                    "returned, annotated let",
                    format!("    let c: ApiClient<'_> = {recv};\n    {}\n", call("c")),
                )
            }
        }
        6 => {
            items = format!(
                "fn mk_{k}<'a>(svc: &'a Connector, h: &str) -> Result<ApiClient<'a>, Error> {{\n    let _ = h;\n    Ok({c})\n}}\n"
            );
            let take = ["?", ".unwrap()", ".expect(\"client\")"][rng.below(3)];
            (
                "Result unwrapped",
                format!("    let c = mk_{k}(svc, &h){take};\n    {}\n", call("c")),
            )
        }
        7 => {
            items = format!(
                "fn mk_{k}<'a>(svc: &'a Connector, h: &str) -> Option<ApiClient<'a>> {{\n    let _ = h;\n    Some({c})\n}}\n"
            );
            let take = [".unwrap()", ".expect(\"client\")"][rng.below(2)];
            (
                "Option unwrapped",
                format!("    let c = mk_{k}(svc, &h){take};\n    {}\n", call("c")),
            )
        }
        8 => {
            items = format!(
                "struct S{k}<'a> {{\n    c: ApiClient<'a>,\n    n: u8,\n}}\n\nimpl<'a> S{k}<'a> {{\n    async fn go(&self) {{\n        let _ = self.n;\n        {}\n    }}\n}}\n",
                call("self.c")
            );
            (
                "struct field, method",
                format!("    let s = S{k} {{ c: {c}, n: 1 }};\n    s.go().await;\n"),
            )
        }
        9 => {
            items = format!("struct S{k}<'a>(ApiClient<'a>, u8);\n");
            (
                "tuple struct field",
                format!("    let s = S{k}({c}, 1);\n    {}\n", call("s.0")),
            )
        }
        10 => (
            "Arc",
            format!("    let c = std::sync::Arc::new({c});\n    {}\n", call("c")),
        ),
        12 => {
            api_items = format!(
                "impl<'a> ApiClient<'a> {{\n    pub async fn helper_{k}(&self) {{\n        {}\n    }}\n}}\n",
                call("self")
            );
            (
                "helper in impl ApiClient (API crate)",
                format!("    {c}.helper_{k}().await;\n"),
            )
        }
        13 => {
            items = format!(
                "#[cfg(feature = \"a\")]\nasync fn alt_{k}(c: &ApiClient<'_>) {{\n    {}\n}}\n\n#[cfg(not(feature = \"a\"))]\nasync fn alt_{k}(c: &ApiClient<'_>) {{\n    let _ = 1;\n    {}\n}}\n",
                call("c"),
                call("c")
            );
            ("cfg alternatives", format!("    alt_{k}(&{c}).await;\n"))
        }
        14 => {
            let d2 = dest(rng, k + 1000);
            let c2 = d2.create();
            dests.push(d2);
            (
                "if/else of two clients",
                format!(
                    "    let c = if h.is_empty() {{ {c} }} else {{ {c2} }};\n    {}\n",
                    call("c")
                ),
            )
        }
        15 => (
            "match on Option",
            format!(
                "    let o = Some({c});\n    match o {{\n        Some(c) => {{\n            {}\n        }}\n        None => {{}}\n    }}\n",
                call("c")
            ),
        ),
        16 => {
            items = format!("struct S{k}<'a> {{\n    c: ApiClient<'a>,\n}}\n");
            (
                "struct pattern",
                format!(
                    "    let S{k} {{ c }} = S{k} {{ c: {c} }};\n    {}\n",
                    call("c")
                ),
            )
        }
        17 => {
            items = format!(
                "#[cfg(test)]\nmod t{k} {{\n    use super::*;\n\n    #[allow(dead_code)]\n    async fn t(svc: &Connector, h: String) {{\n        {}\n    }}\n}}\n",
                call(&c)
            );
            dests.clear();
            ("test-only code", String::new())
        }
        _ => {
            // A helper with a client parameter called from two shapes of
            // one fn: both hosts.
            let d2 = dest(rng, k + 2000);
            let c2 = d2.create();
            dests.push(d2);
            items = format!(
                "async fn help_{k}(c: &ApiClient<'_>) {{\n    {}\n}}\n",
                call("c")
            );
            (
                "one helper, two clients",
                format!("    help_{k}(&{c}).await;\n    help_{k}(&{c2}).await;\n"),
            )
        }
    };
    Shape {
        items,
        body,
        api_items,
        truth: Truth::Calls(dests),
        what,
    }
}

/// A chain of 1-4 followed steps (locals, annotated lets, `Arc`, `Option`
/// and `Result` layers, a helper taking and returning the client, struct
/// and tuple-struct fields, a `Mutex`), then the call; with `escape`, one
/// escaping step (a `vec!`, a tuple, a type alias) is put at that position
/// and marked `@E<k>`.
fn composed(rng: &mut Rng, k: usize, e: &str, c: &str, escape: Option<usize>) -> (String, String) {
    let mut items = String::new();
    let mut body = String::new();
    let mut cur = c.to_string();
    let steps = 1 + rng.below(4);
    let escape = escape.map(|at| at % steps);
    for n in 0..steps {
        let v = format!("v{k}x{n}");
        if escape == Some(n) {
            match rng.below(3) {
                0 => {
                    let _ = writeln!(body, "    let {v} = vec![{cur}]; // @E{k}");
                    cur = format!("{v}[0]");
                }
                1 => {
                    let _ = writeln!(body, "    let {v} = ({cur}, 0u8); // @E{k}");
                    cur = format!("{v}.0");
                }
                _ => {
                    let _ = writeln!(items, "type A{k}x{n}<'a> = ApiClient<'a>;");
                    let _ = writeln!(body, "    let {v}: A{k}x{n}<'_> = {cur}; // @E{k}");
                    cur = v.clone();
                }
            }
            continue;
        }
        match rng.below(9) {
            0 => {
                let _ = writeln!(body, "    let {v} = {cur};");
                cur = v;
            }
            1 => {
                let _ = writeln!(body, "    let {v}: ApiClient<'_> = {cur};");
                cur = v;
            }
            2 => {
                let _ = writeln!(body, "    let {v} = std::sync::Arc::new({cur});");
                cur = v;
            }
            3 => {
                let _ = writeln!(body, "    let {v} = Some({cur});");
                cur = format!("{v}.unwrap()");
            }
            4 => {
                let _ = writeln!(
                    body,
                    "    let {v}: Result<ApiClient<'_>, Error> = Ok({cur});"
                );
                cur = format!("{v}?");
            }
            5 => {
                let _ = writeln!(
                    items,
                    "fn pass_{k}x{n}<'a>(c: ApiClient<'a>) -> ApiClient<'a> {{\n    c\n}}"
                );
                cur = format!("pass_{k}x{n}({cur})");
            }
            6 => {
                let _ = writeln!(items, "struct F{k}x{n}<'a> {{\n    c: ApiClient<'a>,\n}}");
                let _ = writeln!(body, "    let {v} = F{k}x{n} {{ c: {cur} }};");
                cur = format!("{v}.c");
            }
            7 => {
                let _ = writeln!(items, "struct T{k}x{n}<'a>(ApiClient<'a>);");
                let _ = writeln!(body, "    let {v} = T{k}x{n}({cur});");
                cur = format!("{v}.0");
            }
            _ => {
                let _ = writeln!(body, "    let {v} = std::sync::Mutex::new({cur});");
                cur = format!("{v}.lock().unwrap()");
            }
        }
    }
    let _ = writeln!(body, "    {cur}.{e}().await.ok(); // @C{k}");
    (items, body)
}

/// Escape shapes: the line where the client leaves what the analyzer
/// follows is marked `// @E<k>`.
fn escaping(rng: &mut Rng, k: usize, e: &str, d: &Dest) -> Shape {
    let c = d.create();
    let call = |recv: &str| format!("{recv}.{e}().await.ok();");
    let mut items = String::new();
    let (what, body) = match rng.below(18) {
        16 | 17 => {
            let at = rng.below(3);
            let (items, body) = composed(rng, k, e, &c, Some(at));
            return Shape {
                items,
                body,
                api_items: String::new(),
                truth: Truth::Escapes,
                what: "composed flow with an escape",
            };
        }
        0 => (
            "vec and index",
            format!("    let v = vec![{c}]; // @E{k}\n    {}\n", call("v[0]")),
        ),
        1 => (
            "HashMap insert and get",
            format!(
                "    let mut m = std::collections::HashMap::new();\n    m.insert(1u8, {c}); // @E{k}\n    if let Some(c) = m.get(&1) {{\n        {}\n    }}\n",
                call("c")
            ),
        ),
        2 => {
            items = format!("type A{k}<'a> = ApiClient<'a>;\n");
            (
                "type alias let",
                format!("    let c: A{k}<'_> = {c}; // @E{k}\n    {}\n", call("c")),
            )
        }
        3 => {
            items = format!(
                "type A{k}<'a> = ApiClient<'a>;\n\nasync fn ua_{k}(c: &A{k}<'_>) {{\n    {}\n}}\n",
                call("c")
            );
            (
                "type alias parameter",
                format!("    ua_{k}(&{c}).await; // @E{k}\n"),
            )
        }
        4 => {
            items = format!(
                "static G{k}: std::sync::OnceLock<ApiClient<'static>> = std::sync::OnceLock::new();\n"
            );
            (
                "static OnceLock",
                format!(
                    "    G{k}.set({c}).ok(); // @E{k}\n    if let Some(c) = G{k}.get() {{\n        {}\n    }}\n",
                    call("c")
                ),
            )
        }
        5 => {
            items = format!("enum E{k}<'a> {{\n    V(ApiClient<'a>),\n    N,\n}}\n");
            (
                "enum variant",
                format!(
                    "    let e = E{k}::V({c}); // @E{k}\n    if let E{k}::V(c) = e {{\n        {}\n    }}\n",
                    call("c")
                ),
            )
        }
        6 => (
            "tuple destructuring",
            format!(
                "    let (c, _n) = ({c}, 1u8); // @E{k}\n    {}\n",
                call("c")
            ),
        ),
        7 | 8 => {
            let param = if rng.chance(50) {
                format!("<X: T{k}>(x: X)")
            } else {
                format!("(x: impl T{k})")
            };
            items = format!(
                "trait T{k} {{\n    async fn go_{k}(&self);\n}}\n\nimpl<'a> T{k} for ApiClient<'a> {{\n    async fn go_{k}(&self) {{\n        {}\n    }}\n}}\n\nasync fn g_{k}{param} {{\n    x.go_{k}().await;\n}}\n",
                call("self")
            );
            (
                "generic parameter",
                format!("    g_{k}({c}).await; // @E{k}\n"),
            )
        }
        9 => {
            items = format!(
                "trait T{k} {{\n    fn go_{k}(&self);\n}}\n\nimpl<'a> T{k} for ApiClient<'a> {{\n    fn go_{k}(&self) {{\n        let _ = self.{e}();\n    }}\n}}\n"
            );
            (
                "trait object",
                format!(
                    "    let b: Box<dyn T{k} + '_> = Box::new({c}); // @E{k}\n    b.go_{k}();\n"
                ),
            )
        }
        10 => (
            "closure result",
            format!("    let mk = || {c}; // @E{k}\n    {}\n", call("mk()")),
        ),
        11 => {
            items = format!(
                "macro_rules! m_{k} {{\n    ($c:expr) => {{\n        $c.{e}().await.ok()\n    }};\n}}\n"
            );
            (
                "macro_rules! metavariable",
                format!("    m_{k}!({c}); // @E{k}\n"),
            )
        }
        12 => (
            "assignment",
            format!(
                "    let mut c = ApiClient::new(svc);\n    c = {c}; // @E{k}\n    {}\n",
                call("c")
            ),
        ),
        13 => {
            items = format!(
                "trait D{k} {{\n    fn client_{k}(&self) -> ApiClient<'_>;\n    async fn run_{k}(&self) {{\n        self.client_{k}().{e}().await.ok(); // @E{k}\n    }}\n}}\n\nstruct H{k}<'a> {{\n    svc: &'a Connector,\n    h: String,\n}}\n\nimpl<'a> D{k} for H{k}<'a> {{\n    fn client_{k}(&self) -> ApiClient<'_> {{\n        let svc = self.svc;\n        let h = &self.h;\n        let _ = h;\n        {c}\n    }}\n}}\n"
            );
            (
                "trait provided method",
                format!("    let hk = H{k} {{ svc, h: h.clone() }};\n    hk.run_{k}().await;\n"),
            )
        }
        14 => (
            "channel",
            format!(
                "    let (tx, rx) = std::sync::mpsc::channel();\n    tx.send({c}).ok(); // @E{k}\n    if let Ok(c) = rx.recv() {{\n        {}\n    }}\n",
                call("c")
            ),
        ),
        _ => {
            items = format!("struct S{k}<'a> {{\n    c: ApiClient<'a>,\n}}\n");
            (
                "struct holding a client in a vec",
                format!(
                    "    let v = vec![S{k} {{ c: {c} }}]; // @E{k}\n    {}\n",
                    call("v[0].c")
                ),
            )
        }
    };
    Shape {
        items,
        body,
        api_items: String::new(),
        truth: Truth::Escapes,
        what,
    }
}

/// The raw call of endpoint `e` (number `k`) on the Connector `recv` to
/// `d`'s host, marked `@C<k>` (a literal URL) or `@E<k>` (a computed one:
/// `dynamic-url` there).
fn raw_call(rng: &mut Rng, k: usize, e: &Endpoint, d: &Dest, recv: &str) -> String {
    let port = if e.port == 443 {
        String::new()
    } else {
        format!(":{}", e.port)
    };
    let m = e.method;
    let url = match d {
        Dest::Own => format!("\"https://api.example{port}/r{k}\""),
        Dest::Host(h) => format!("\"https://{h}{port}/r{k}\""),
        Dest::Dynamic => format!("&format!(\"https://{{}}{port}/r{k}\", h)"),
    };
    let tag = if *d == Dest::Dynamic { 'E' } else { 'C' };
    let call = match (m, rng.below(3)) {
        ("GET", 0) => format!("{recv}.get({url})"),
        ("POST", 0) => format!("{recv}.post({url}, vec![])"),
        (_, 1) => format!("{recv}.publish(\"{m}\", {url})"),
        _ => format!("{recv}.request(\"{m}\", {url})"),
    };
    format!("{call}.await.ok(); // @{tag}{k}")
}

/// Connector shapes: a raw call of endpoint `e`'s route on a Connector
/// that flows through a followed shape (the call is granted exactly, or
/// refused at the call when its URL is computed) or an escaping one (the
/// line where the Connector leaves what the analyzer follows is marked
/// `@E<k>`).
fn connector_shape(rng: &mut Rng, k: usize, e: &Endpoint, d: &Dest) -> Shape {
    let mut items = String::new();
    let escapes = rng.chance(40);
    let (what, body) = if !escapes {
        let pick = rng.below(17);
        let mut call = |recv: &str| raw_call(rng, k, e, d, recv);
        match pick {
            14 => {
                let inner = call("c");
                (
                    "connector: local closure",
                    format!(
                        "    let f = |c: &Connector| async move {{\n        {inner}\n    }};\n    f(svc).await;\n"
                    ),
                )
            }
            15 => {
                let inner = call("c");
                (
                    "connector: loop over vec into_iter",
                    format!(
                        "    for c in vec![svc.clone(), svc.clone()].into_iter() {{\n        {inner}\n    }}\n"
                    ),
                )
            }
            16 => (
                "connector: Option unwrap_or",
                format!(
                    "    let none: Option<&Connector> = None;\n    {}\n",
                    call("none.unwrap_or(svc)")
                ),
            ),
            0 => ("connector: direct", format!("    {}\n", call("svc"))),
            1 => (
                "connector: let clone",
                format!("    let c = svc.clone();\n    {}\n", call("c")),
            ),
            2 => (
                "connector: annotated let",
                format!("    let c: &Connector = svc;\n    {}\n", call("c")),
            ),
            3 => {
                items = format!("struct KF{k} {{\n    c: Connector,\n}}\n");
                (
                    "connector: struct field",
                    format!(
                        "    let s = KF{k} {{ c: svc.clone() }};\n    {}\n",
                        call("s.c")
                    ),
                )
            }
            4 => {
                items = format!("struct KA{k}(std::sync::Arc<Connector>);\n");
                (
                    "connector: Arc tuple field",
                    format!(
                        "    let s = KA{k}(std::sync::Arc::new(svc.clone()));\n    {}\n",
                        call("s.0")
                    ),
                )
            }
            5 => {
                items = format!("struct KO{k} {{\n    c: Option<Connector>,\n}}\n");
                let inner = call("c");
                (
                    "connector: Option field",
                    format!(
                        "    let s = KO{k} {{ c: Some(svc.clone()) }};\n    if let Some(c) = &s.c {{\n        {inner}\n    }}\n"
                    ),
                )
            }
            6 => {
                items =
                    format!("fn kc_{k}(svc: &Connector) -> Connector {{\n    svc.clone()\n}}\n");
                (
                    "connector: returned",
                    format!("    {}\n", call(&format!("kc_{k}(svc)"))),
                )
            }
            7 => {
                items = format!(
                    "fn kc_{k}(svc: &Connector) -> Result<Connector, Error> {{\n    Ok(svc.clone())\n}}\n"
                );
                (
                    "connector: returned in a Result",
                    format!("    {}\n", call(&format!("kc_{k}(svc)?"))),
                )
            }
            8 => {
                let inner = call("c");
                items = format!("async fn kh_{k}(c: &Connector) {{\n    {inner}\n}}\n");
                ("connector: parameter", format!("    kh_{k}(svc).await;\n"))
            }
            9 => {
                let inner = call("c");
                (
                    "connector: for loop over an array",
                    format!("    for c in [svc, svc] {{\n        {inner}\n    }}\n"),
                )
            }
            10 => (
                "connector: Mutex",
                format!(
                    "    let m = std::sync::Mutex::new(svc.clone());\n    {}\n",
                    call("m.lock().unwrap()")
                ),
            ),
            11 => {
                let inner = call("self");
                items = format!(
                    "trait KT{k} {{\n    async fn kt_{k}(&self);\n}}\n\nimpl KT{k} for Connector {{\n    async fn kt_{k}(&self) {{\n        {inner}\n    }}\n}}\n"
                );
                (
                    "connector: extension trait",
                    format!("    svc.kt_{k}().await;\n"),
                )
            }
            12 => {
                let inner = call("self.c");
                items = format!(
                    "struct KS{k} {{\n    c: Connector,\n}}\n\nimpl KS{k} {{\n    async fn go(&self) {{\n        {inner}\n    }}\n}}\n"
                );
                (
                    "connector: struct method",
                    format!("    let s = KS{k} {{ c: svc.clone() }};\n    s.go().await;\n"),
                )
            }
            _ => {
                let inner = call("c");
                (
                    "connector: match on Option",
                    format!(
                        "    let o = Some(svc.clone());\n    match o {{\n        Some(c) => {{\n            {inner}\n        }}\n        None => {{}}\n    }}\n"
                    ),
                )
            }
        }
    } else {
        // The call after the escape is not marked: the escape is the refusal.
        let pick = rng.below(12);
        let mut call = |recv: &str| {
            let c = raw_call(rng, k, e, d, recv);
            c[..c.find(" // @").unwrap_or(c.len())].to_string()
        };
        match pick {
            0 => (
                "connector escapes: vec",
                format!(
                    "    let v = vec![svc.clone()]; // @E{k}\n    {}\n",
                    call("v[0]")
                ),
            ),
            1 => {
                let inner = call("c");
                (
                    "connector escapes: HashMap",
                    format!(
                        "    let mut m = std::collections::HashMap::new();\n    m.insert(1u8, svc.clone()); // @E{k}\n    if let Some(c) = m.get(&1) {{\n        {inner}\n    }}\n"
                    ),
                )
            }
            2 => {
                let inner = call("c");
                items = format!(
                    "async fn kg_{k}<C: std::ops::Deref<Target = Connector>>(c: C) {{\n    {inner}\n}}\n"
                );
                (
                    "connector escapes: generic Deref parameter",
                    format!("    kg_{k}(std::sync::Arc::new(svc.clone())).await; // @E{k}\n"),
                )
            }
            3 => {
                let inner = call("c.as_ref()");
                items = format!("async fn kg_{k}(c: impl AsRef<Connector>) {{\n    {inner}\n}}\n");
                (
                    "connector escapes: impl Trait parameter",
                    format!("    kg_{k}(svc.clone()).await; // @E{k}\n"),
                )
            }
            4 => {
                let inner = call("c");
                (
                    "connector escapes: untyped closure parameter",
                    format!("    [svc].iter().for_each(|c| {{ let _ = {inner}; }}); // @E{k}\n")
                        .replace(".await.ok();", ";"),
                )
            }
            5 => (
                "connector escapes: trait object",
                format!(
                    "    let b: Box<dyn std::any::Any> = Box::new(svc.clone()); // @E{k}\n    {}\n",
                    call("b.downcast_ref::<Connector>().unwrap()")
                ),
            ),
            6 => {
                items = format!(
                    "static KS{k}: std::sync::OnceLock<Connector> = std::sync::OnceLock::new();\n"
                );
                let inner = call("c");
                (
                    "connector escapes: static",
                    format!(
                        "    KS{k}.set(svc.clone()).ok(); // @E{k}\n    if let Some(c) = KS{k}.get() {{\n        {inner}\n    }}\n"
                    ),
                )
            }
            7 => (
                "connector escapes: closure result",
                format!(
                    "    let mk = || svc.clone(); // @E{k}\n    {}\n",
                    call("mk()")
                ),
            ),
            8 => (
                "connector escapes: tuple",
                format!(
                    "    let t = (svc.clone(), 0u8); // @E{k}\n    {}\n",
                    call("t.0")
                ),
            ),
            9 => {
                let inner = call("c");
                (
                    "connector escapes: channel",
                    format!(
                        "    let (tx, rx) = std::sync::mpsc::channel();\n    tx.send(svc.clone()).ok(); // @E{k}\n    if let Ok(c) = rx.recv() {{\n        {inner}\n    }}\n"
                    ),
                )
            }
            10 => {
                let inner = call("c");
                (
                    "connector escapes: loop over an unfollowed iterator",
                    format!(
                        "    for c in std::iter::once(svc) {{ // @E{k}\n        {inner}\n    }}\n"
                    ),
                )
            }
            _ => (
                "connector escapes: assignment",
                format!(
                    "    let mut c = svc.clone();\n    c = svc.clone(); // @E{k}\n    {}\n",
                    call("c")
                ),
            ),
        }
    };
    let truth = if escapes || *d == Dest::Dynamic {
        Truth::Escapes
    } else {
        Truth::Calls(vec![d.clone()])
    };
    Shape {
        items,
        body,
        api_items: String::new(),
        truth,
        what,
    }
}

/// One generated program: its files and the truth per shape.
struct Program {
    api: String,
    svc: String,
    endpoints: Vec<Endpoint>,
    shapes: Vec<Shape>,
    /// Each shape's lines in `svc/src/main.rs` (its items and its fn).
    lines: Vec<BTreeSet<u32>>,
}

fn generate(seed: u64) -> Program {
    let mut rng = Rng::new(seed);
    let n = 1 + rng.below(5);
    let mut used = BTreeSet::new();
    let mut endpoints = vec![];
    let mut shapes = vec![];
    for k in 0..n {
        let e = endpoint(&mut rng, k, &mut used);
        let d = dest(&mut rng, k);
        let shape = if rng.chance(25) {
            connector_shape(&mut rng, k, &e, &d)
        } else if rng.chance(35) {
            escaping(&mut rng, k, &e.name, &d)
        } else {
            followed(&mut rng, k, &e.name, &d)
        };
        endpoints.push(e);
        shapes.push(shape);
    }
    let mut api = String::from(
        "use buswarden::Error;\n\n#[buswarden::api(host = \"api.example\")]\npub trait Api {\n",
    );
    for (k, e) in endpoints.iter().enumerate() {
        let port = if e.port == 443 {
            String::new()
        } else {
            format!(":{}", e.port)
        };
        let _ = writeln!(
            api,
            "    #[function({}, \"{port}/r{k}\")]\n    async fn {}(&self) -> Result<(), Error>;",
            e.method, e.name
        );
    }
    api.push_str("}\n");
    for s in &shapes {
        if !s.api_items.is_empty() {
            api.push('\n');
            api.push_str(&s.api_items);
        }
    }
    let mut svc = String::from("use api::ApiClient;\nuse buswarden::{Connector, Error};\n\n");
    let mut lines = vec![BTreeSet::new(); shapes.len()];
    let mut mark = |svc: &str, k: usize, from: usize| {
        let to = svc.lines().count();
        lines[k].extend((from + 1..=to).map(|l| l as u32));
    };
    for (k, s) in shapes.iter().enumerate() {
        if !s.items.is_empty() {
            let from = svc.lines().count();
            svc.push_str(&s.items);
            mark(&svc, k, from);
            svc.push('\n');
        }
    }
    for (k, s) in shapes.iter().enumerate() {
        let from = svc.lines().count();
        let _ = write!(
            svc,
            "async fn shape_{k}(svc: &'static Connector, h: String) -> Result<(), Error> {{\n    let _ = &h;\n{}    Ok(())\n}}\n\n",
            s.body
        );
        mark(&svc, k, from);
    }
    svc.push_str("fn main() {}\n");
    Program {
        api,
        svc,
        endpoints,
        shapes,
        lines,
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// The lines (file, line) of each marker `@<tag><k>`.
fn markers(files: &[(&str, &str)], tag: char) -> BTreeMap<usize, Vec<(String, u32)>> {
    let mut out: BTreeMap<usize, Vec<(String, u32)>> = BTreeMap::new();
    for (file, text) in files {
        for (i, line) in text.lines().enumerate() {
            if let Some(pos) = line.find(&format!("// @{tag}")) {
                let k: usize = line[pos + 5..].trim().parse().unwrap();
                out.entry(k)
                    .or_default()
                    .push((file.to_string(), i as u32 + 1));
            }
        }
    }
    out
}

/// Checks one program; `Err` says what is wrong.
fn check(root: &Path, seed: u64) -> Result<(), String> {
    let p = generate(seed);
    write(root, "api/src/lib.rs", &p.api);
    write(root, "svc/src/main.rs", &p.svc);
    let an = analyze(
        root,
        Options {
            threads: 1,
            ..Options::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let files = [
        ("api/src/lib.rs", p.api.as_str()),
        ("svc/src/main.rs", p.svc.as_str()),
    ];
    let calls = markers(&files, 'C');
    let escapes = markers(&files, 'E');
    let errors: BTreeSet<(String, u32)> = an
        .diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.file.clone(), d.line))
        .collect();
    let svc = an
        .services
        .iter()
        .find(|s| s.model.hostname.as_str() == "svc.example")
        .ok_or("no service svc.example")?;
    let acl = gencreds::cli::acl_text(svc);
    let pubs: Vec<&str> = acl
        .lines()
        .filter(|l| l.starts_with("PUB ") && !l.contains(".reply."))
        .collect();
    let mut allowed_errors: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut expected_pubs: BTreeSet<String> = BTreeSet::new();
    let mut escaping_routes: BTreeSet<String> = BTreeSet::new();
    for (k, (s, e)) in p.shapes.iter().zip(&p.endpoints).enumerate() {
        let route = format!(".r{k}");
        match &s.truth {
            Truth::Escapes => {
                let at = escapes.get(&k).cloned().unwrap_or_default();
                if !at.iter().any(|l| errors.contains(l)) {
                    return Err(format!(
                        "shape {k} ({}) escapes at {at:?}, but no error there; errors: {errors:?}",
                        s.what
                    ));
                }
                // Any error within the escaping shape's own code is fail-closed.
                allowed_errors.extend(at);
                allowed_errors.extend(
                    p.lines[k]
                        .iter()
                        .map(|l| ("svc/src/main.rs".to_string(), *l)),
                );
                escaping_routes.insert(route);
            }
            Truth::Calls(dests) => {
                let trust = if e.port == 666 { "danger" } else { "safe" };
                let mut ds: BTreeSet<Dest> = dests.iter().cloned().collect();
                if e.port == 666 && ds.contains(&Dest::Dynamic) {
                    // Refused at every call line; the refused call grants nothing.
                    let at = calls.get(&k).cloned().unwrap_or_default();
                    if !at.iter().any(|l| errors.contains(l)) {
                        return Err(format!(
                            "shape {k} ({}) calls :666 on a computed host at {at:?} without an error; errors: {errors:?}",
                            s.what
                        ));
                    }
                    allowed_errors.extend(at);
                    ds.remove(&Dest::Dynamic);
                }
                if ds.contains(&Dest::Dynamic) {
                    ds.retain(|d| *d == Dest::Dynamic);
                }
                for d in ds {
                    expected_pubs.insert(format!(
                        "PUB {{{{plane}}}}.{trust}.{}.svc_example.{}.*.{}.r{k}",
                        e.port,
                        d.token(),
                        e.method
                    ));
                }
            }
        }
    }
    let stray: Vec<&(String, u32)> = errors.difference(&allowed_errors).collect();
    if !stray.is_empty() {
        let msgs: Vec<String> = an
            .diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}:{} {} {}", d.file, d.line, d.code, d.message))
            .collect();
        return Err(format!("errors where none is due: {stray:?}\n{msgs:#?}"));
    }
    let got: BTreeSet<String> = pubs
        .iter()
        .filter(|l| !escaping_routes.iter().any(|r| l.ends_with(r.as_str())))
        .map(|l| l.to_string())
        .collect();
    if got != expected_pubs {
        return Err(format!(
            "rules differ\n  missing: {:?}\n  extra:   {:?}",
            expected_pubs.difference(&got).collect::<Vec<_>>(),
            got.difference(&expected_pubs).collect::<Vec<_>>()
        ));
    }
    if errors.is_empty() == svc.blocked {
        return Err(format!(
            "blocked = {} with {} error(s)",
            svc.blocked,
            errors.len()
        ));
    }
    Ok(())
}

#[test]
fn generated_programs_get_exact_rules_or_an_error_where_the_client_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"api\", \"svc\"]\n",
    );
    write(
        root,
        "api/Cargo.toml",
        "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nbuswarden = \"0.1\"\n",
    );
    write(
        root,
        "svc/Cargo.toml",
        "[package]\nname = \"svc\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.buswarden]\nhostname = \"svc.example\"\n\n[features]\na = []\n\n[dependencies]\nbuswarden = \"0.1\"\napi = { path = \"../api\" }\n",
    );
    let seeds: Vec<u64> = match std::env::var("SOUNDNESS_SEED") {
        Ok(s) => vec![s.parse().expect("SOUNDNESS_SEED is a number")],
        Err(_) => {
            let n = std::env::var("SOUNDNESS_PROGRAMS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(3000u64);
            (0..n).collect()
        }
    };
    let mut seen: BTreeSet<&'static str> = BTreeSet::new();
    for &seed in &seeds {
        if let Err(why) = check(root, seed) {
            let p = generate(seed);
            panic!(
                "seed {seed} (re-run with SOUNDNESS_SEED={seed}): {why}\n--- api/src/lib.rs\n{}\n--- svc/src/main.rs\n{}",
                p.api, p.svc
            );
        }
        for s in generate(seed).shapes {
            seen.insert(s.what);
        }
    }
    if seeds.len() > 1 {
        // Every shape of both generators came up.
        assert_eq!(seen.len(), 38 + 29, "shapes generated: {seen:?}");
    }
}

/// Several services sharing a library whose helper takes a client and
/// whose struct holds one: each service must get exactly the hosts its own
/// code passes (never another service's, never fewer than its own).
fn check_shared(root: &Path, seed: u64) -> Result<(), String> {
    let mut rng = Rng::new(seed ^ 0x5EED_5EED);
    let services = 2 + rng.below(3);
    let _ = std::fs::remove_dir_all(root);
    let members: Vec<String> = (0..services).map(|i| format!("\"s{i}\"")).collect();
    write(
        root,
        "Cargo.toml",
        &format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"api\", \"shared\", {}]\n",
            members.join(", ")
        ),
    );
    write(
        root,
        "api/Cargo.toml",
        "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nbuswarden = \"0.1\"\n",
    );
    write(
        root,
        "api/src/lib.rs",
        "use buswarden::Error;\n\n#[buswarden::api(host = \"api.example\")]\npub trait Api {\n    #[function(GET, \"/r0\")]\n    async fn ep0(&self) -> Result<(), Error>;\n    #[function(POST, \"/r1\")]\n    async fn ep1(&self) -> Result<(), Error>;\n}\n",
    );
    write(
        root,
        "shared/Cargo.toml",
        "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nbuswarden = \"0.1\"\napi = { path = \"../api\" }\n",
    );
    write(
        root,
        "shared/src/lib.rs",
        "use api::ApiClient;\n\npub async fn p(c: &ApiClient<'_>) {\n    c.ep0().await.ok();\n}\n\npub async fn nested(c: &ApiClient<'_>) {\n    p(c).await;\n}\n\npub struct Holder<'a> {\n    pub c: ApiClient<'a>,\n}\n\nimpl Holder<'_> {\n    pub async fn go(&self) {\n        self.c.ep1().await.ok();\n    }\n}\n",
    );
    // Per service: the destinations of each endpoint's calls.
    let mut truth: Vec<[BTreeSet<Dest>; 2]> = Vec::new();
    for i in 0..services {
        write(
            root,
            &format!("s{i}/Cargo.toml"),
            &format!(
                "[package]\nname = \"s{i}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.buswarden]\nhostname = \"s{i}.example\"\n\n[dependencies]\nbuswarden = \"0.1\"\napi = {{ path = \"../api\" }}\nshared = {{ path = \"../shared\" }}\n"
            ),
        );
        let mut body = String::new();
        let mut t: [BTreeSet<Dest>; 2] = Default::default();
        for n in 0..rng.below(4) {
            let d = dest(&mut rng, 10 * i + n);
            let c = d.create();
            match rng.below(3) {
                0 => {
                    let _ = writeln!(body, "    shared::p(&{c}).await;");
                    t[0].insert(d);
                }
                1 => {
                    let _ = writeln!(body, "    shared::nested(&{c}).await;");
                    t[0].insert(d);
                }
                _ => {
                    let _ = writeln!(
                        body,
                        "    let h{n} = shared::Holder {{ c: {c} }};\n    h{n}.go().await;"
                    );
                    t[1].insert(d);
                }
            }
        }
        write(
            root,
            &format!("s{i}/src/main.rs"),
            &format!(
                "use api::ApiClient;\nuse buswarden::Connector;\n\nasync fn run(svc: &'static Connector, h: String) {{\n    let _ = &h;\n{body}}}\n\nfn main() {{}}\n"
            ),
        );
        truth.push(t);
    }
    let an = analyze(
        root,
        Options {
            threads: 1,
            ..Options::default()
        },
    )
    .map_err(|e| e.to_string())?;
    for (i, t) in truth.iter().enumerate() {
        let host = format!("s{i}.example");
        let svc = an
            .services
            .iter()
            .find(|s| s.model.hostname.as_str() == host)
            .ok_or(format!("no service {host}"))?;
        let got: BTreeSet<String> = gencreds::cli::acl_text(svc)
            .lines()
            .filter(|l| l.starts_with("PUB ") && !l.contains(".reply."))
            .map(str::to_string)
            .collect();
        let mut want = BTreeSet::new();
        for (e, ds) in t.iter().enumerate() {
            let mut ds = ds.clone();
            if ds.contains(&Dest::Dynamic) {
                ds.retain(|d| *d == Dest::Dynamic);
            }
            for d in ds {
                want.insert(format!(
                    "PUB {{{{plane}}}}.safe.443.s{i}_example.{}.*.{}.r{e}",
                    d.token(),
                    ["GET", "POST"][e]
                ));
            }
        }
        if got != want {
            return Err(format!(
                "service {host}: rules differ\n  missing: {:?}\n  extra:   {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

#[test]
fn services_sharing_a_helper_each_get_exactly_their_own_callers_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<u64> = match std::env::var("SOUNDNESS_SEED") {
        Ok(s) => vec![s.parse().expect("SOUNDNESS_SEED is a number")],
        Err(_) => (0..300).collect(),
    };
    for &seed in &seeds {
        let root = dir.path().join("ws");
        if let Err(why) = check_shared(&root, seed) {
            panic!("seed {seed} (re-run with SOUNDNESS_SEED={seed}): {why}");
        }
    }
}
