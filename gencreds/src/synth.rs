//! A generator of synthetic workspaces for the benchmark: API crates and
//! service crates with realistic filler code and a sprinkling of every call
//! form, deterministic for a given size (same input, same bytes). Every
//! generated file mentions the bus (a client, a helper of an API crate, or
//! the `Connector`), as in a real service workspace, so nothing in the
//! analyzer can get ahead of the floor by skipping files.

use std::fmt::Write as _;
use std::path::Path;

/// What was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Crates.
    pub crates: usize,
    /// `.rs` files.
    pub files: usize,
    /// Lines of Rust.
    pub lines: usize,
    /// Bytes of Rust.
    pub bytes: usize,
}

/// Services per API crate.
const SERVICES_PER_API: usize = 50;
/// Filler blocks per file (each ~30 lines).
const BLOCKS_PER_FILE: usize = 11;

fn put(root: &Path, rel: &str, text: &str, stats: &mut Stats) -> std::io::Result<()> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&p, text)?;
    if rel.ends_with(".rs") {
        stats.files += 1;
        stats.lines += text.lines().count();
        stats.bytes += text.len();
    }
    Ok(())
}

/// Writes a workspace of `services` service crates (and one API crate per
/// 50 services) under `root`.
pub fn generate(root: &Path, services: usize) -> std::io::Result<Stats> {
    let mut stats = Stats::default();
    let apis = services.div_ceil(SERVICES_PER_API).max(1);
    put(
        root,
        "Cargo.toml",
        "[workspace]\nresolver = \"3\"\nmembers = [\"apis/*\", \"services/*\"]\n\n[workspace.dependencies]\nbuswarden = \"0.1\"\n",
        &mut stats,
    )?;
    for a in 0..apis {
        put(
            root,
            &format!("apis/api{a}/Cargo.toml"),
            &format!(
                "[package]\nname = \"api{a}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nbuswarden.workspace = true\n"
            ),
            &mut stats,
        )?;
        put(
            root,
            &format!("apis/api{a}/src/lib.rs"),
            &api_source(a),
            &mut stats,
        )?;
        stats.crates += 1;
    }
    for s in 0..services {
        let deps: Vec<usize> = [s % apis, (s + 1) % apis, (s + 7) % apis]
            .into_iter()
            .collect();
        let mut toml = format!(
            "[package]\nname = \"svc{s}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[package.metadata.buswarden]\nhostname = \"svc{s}.example\"\n\n[dependencies]\nbuswarden.workspace = true\n"
        );
        for d in deps.iter().collect::<std::collections::BTreeSet<_>>() {
            let _ = writeln!(toml, "api{d} = {{ path = \"../../apis/api{d}\" }}");
        }
        put(
            root,
            &format!("services/svc{s}/Cargo.toml"),
            &toml,
            &mut stats,
        )?;
        put(
            root,
            &format!("services/svc{s}/src/main.rs"),
            &main_source(s, &deps),
            &mut stats,
        )?;
        put(
            root,
            &format!("services/svc{s}/src/handlers.rs"),
            &handlers_source(s, &deps),
            &mut stats,
        )?;
        put(
            root,
            &format!("services/svc{s}/src/model.rs"),
            &model_source(s, deps[0]),
            &mut stats,
        )?;
        stats.crates += 1;
    }
    Ok(stats)
}

fn api_source(a: usize) -> String {
    let mut s = format!(
        "//! API {a}.\n\nuse buswarden::{{Connector, Error}};\n\n#[buswarden::api(host = \"api{a}.example\")]\npub trait Api{a} {{\n"
    );
    for e in 0..8 {
        let (m, r) = match e % 4 {
            0 => ("GET", format!("/items{e}/{{id}}")),
            1 => ("POST", format!("/do{e}")),
            2 => ("GET", format!(":444/files{e}/{{path...}}")),
            _ => ("PUT", format!("/update{e}")),
        };
        let _ = writeln!(
            s,
            "    #[function({m}, \"{r}\")]\n    async fn ep{e}(&self, id: String) -> Result<String, Error>;\n"
        );
    }
    s.push_str("    #[event(POST, \":417/on-change\")]\n    async fn on_change(&self, x: i64) -> Result<(), Error>;\n}\n\n");
    let _ = writeln!(
        s,
        "/// A helper every caller may use.\npub async fn fetch_both(svc: &Connector, id: String) -> Result<String, Error> {{\n    let c = Api{a}Client::new(svc);\n    c.ep0(id.clone()).await?;\n    c.ep1(id).await\n}}\n"
    );
    for b in 0..BLOCKS_PER_FILE {
        s.push_str(&filler(a * 1000 + b));
    }
    s
}

fn main_source(s: usize, deps: &[usize]) -> String {
    let a = deps[0];
    let mut out = format!(
        "//! Service {s}.\n\nmod handlers;\nmod model;\n\nuse buswarden::Connector;\n\n#[tokio::main]\nasync fn main() {{\n    let svc = Connector::new(\"svc{s}.example\");\n    handlers::run(&svc).await;\n    api{a}::fetch_both(&svc, \"x\".into()).await.ok();\n}}\n\n"
    );
    for b in 0..BLOCKS_PER_FILE {
        out.push_str(&filler(s * 7 + b));
    }
    out.push_str("#[cfg(test)]\nmod tests {\n    #[test]\n    fn works() {\n        assert_eq!(1 + 1, 2);\n    }\n}\n");
    out
}

fn handlers_source(s: usize, deps: &[usize]) -> String {
    let (a, b, c) = (deps[0], deps[1], deps[2]);
    let mut out = format!(
        "use api{a}::Api{a}Client;\nuse api{b}::Api{b}MulticastClient;\nuse buswarden::{{Connector, Method}};\nuse crate::model::Record;\n\n\
pub struct Handlers<'a> {{\n    client: Api{a}Client<'a>,\n}}\n\n\
impl<'a> Handlers<'a> {{\n    pub async fn item(&self, r: &Record) -> Option<String> {{\n        self.client.ep{e0}(r.name.clone()).await.ok()\n    }}\n}}\n\n\
pub async fn run(svc: &Connector) {{\n    let client = Api{a}Client::new(svc);\n    client.ep{e1}(\"a\".into()).await.ok();\n    let h = Handlers {{ client }};\n    h.item(&Record::default()).await;\n    Api{b}MulticastClient::new(svc).ep{e2}(\"m\".into()).await.ok();\n    let alt = api{c}::Api{c}Client::new(svc).for_host(\"alt{s}.example\");\n    alt.ep3(\"u\".into()).await.ok();\n    svc.request(Method::GET, \"https://raw{s}.example:444/status?verbose=1\").await.ok();\n    let jobs = vec![1, 2, 3];\n    for j in jobs.iter().map(|x| x * 2) {{\n        if j > 4 {{\n            svc.post(\"https://audit.example/events\", vec![]).await.ok();\n        }}\n    }}\n}}\n\n",
        e0 = s % 8,
        e1 = (s + 1) % 8,
        e2 = (s + 2) % 8,
    );
    for k in 0..BLOCKS_PER_FILE {
        out.push_str(&filler(s * 13 + k + 5));
    }
    out
}

fn model_source(s: usize, a: usize) -> String {
    // Like a real service's model module, it also loads through the bus (a
    // helper of an API crate), so every generated file mentions the bus.
    let mut out = format!(
        "use buswarden::Connector;\n\n#[derive(Debug, Clone, Default)]\npub struct Record {{\n    pub name: String,\n    pub count: u64,\n    pub tags: Vec<String>,\n}}\n\n\
impl Record {{\n    pub async fn load(svc: &Connector, name: String) -> Option<Record> {{\n        let body = api{a}::fetch_both(svc, name.clone()).await.ok()?;\n        Some(Record {{ name, count: body.len() as u64, tags: vec![body] }})\n    }}\n}}\n\n"
    );
    for k in 0..BLOCKS_PER_FILE + 1 {
        out.push_str(&filler(s * 17 + k + 11));
    }
    out
}

/// About 30 lines of ordinary Rust that has nothing to do with the bus.
fn filler(n: usize) -> String {
    format!(
        r#"/// Filler block {n}.
#[derive(Debug, Clone, PartialEq)]
pub struct Block{n} {{
    pub id: u64,
    pub label: String,
    pub values: Vec<i64>,
}}

impl Block{n} {{
    pub fn new(id: u64) -> Self {{
        Block{n} {{ id, label: format!("block-{{}}-{n}", id), values: (0..16).map(|v| v as i64 * {m}).collect() }}
    }}

    pub fn score(&self) -> i64 {{
        let mut total = 0i64;
        for (i, v) in self.values.iter().enumerate() {{
            total += match i % 3 {{
                0 => v * 2,
                1 => v - 1,
                _ => v / 2 + 1,
            }};
        }}
        if self.label.len() > 8 {{ total + self.id as i64 }} else {{ total - 1 }}
    }}

    pub fn lookup(&self, map: &std::collections::HashMap<String, i64>) -> Option<i64> {{
        map.get(&self.label).copied().map(|x| x + self.score())
    }}
}}

"#,
        m = n % 7 + 1
    )
}
