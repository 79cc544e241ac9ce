//! The command line: `scan`, `check`, `explain`, `sign`, `coverage`, `graph` and `surface`, each with the same life
//! (load, analyse, report) and the same exit codes: 0 clean, 1 error
//! findings, 2 the tool itself failed.

use crate::analysis::{self, Analysis, Options, Service};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::Loc;
use crate::report::{self, Format};
use buswarden_rules::diff::RuleDiff;
use buswarden_rules::{Rule, RuleSet, Verb, acl};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Exit code: nothing to report at error level.
pub const EXIT_OK: i32 = 0;
/// Exit code: error findings.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit code: the tool failed.
pub const EXIT_FAILURE: i32 = 2;

/// gencreds: true-to-code NATS allow-lists from Rust source.
#[derive(Debug, Parser)]
#[command(name = "gencreds", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse the tree and write `nats.acl` beside each service crate that has no error.
    Scan(ScanArgs),
    /// Fail when a committed `nats.acl` differs from the code, an error stands, or policy is violated.
    Check(CommonArgs),
    /// Show every rule of a service with the call sites that produced it.
    Explain(ExplainArgs),
    /// Check the tree, then sign per-deploy user credentials for every service.
    Sign(crate::sign::SignArgs),
    /// Check recorded runs (BUSWARDEN_RECORD) against every service's nats.acl: misses exit 1.
    Coverage(crate::coverage::CoverageArgs),
    /// The deploy's reachability model (who may call which endpoint) as JSON, DOT or HTML.
    Graph(GraphArgs),
    /// The endpoints reachable from the internet, one grep-friendly line each.
    Surface(SurfaceArgs),
}

/// What `graph` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// The model as JSON (schema in docs/reachability.md).
    Json,
    /// Graphviz DOT.
    Dot,
    /// One self-contained HTML page (inline SVG, no network).
    Html,
}

/// `graph` options.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The trees of one deploy (the first one's buswarden.toml is the deploy's policy).
    #[arg(default_value = ".")]
    pub roots: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Json)]
    pub format: GraphFormat,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `surface` options.
#[derive(Debug, Args)]
pub struct SurfaceArgs {
    /// The trees of one deploy (the first one's buswarden.toml is the deploy's policy).
    #[arg(default_value = ".")]
    pub roots: Vec<PathBuf>,
    /// Output format (human: `EDGE` lines; json: the endpoints).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The tree to analyse.
    #[arg(default_value = ".")]
    pub root: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Worker threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Largest source file parsed, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_file_size: u64,
    /// Keep the parsed form of unchanged files in this file (keyed by a
    /// BLAKE3 hash of each file's bytes) so a rescan parses only what changed.
    #[arg(long)]
    pub cache: Option<PathBuf>,
}

/// `scan` options.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Common options.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print every service's `nats.acl` instead of writing files.
    #[arg(long)]
    pub stdout: bool,
}

/// `explain` options.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The service's hostname.
    pub hostname: String,
    /// Only rules that grant this subject or rule (`PUB <subject>`, a subject, or a pattern).
    pub subject: Option<String>,
    /// The tree to analyse.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Output format (human or json).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Runs a command line; writes to `out` and `err`; returns the exit code.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                EXIT_FAILURE
            } else {
                EXIT_OK
            };
            let _ = if e.use_stderr() {
                write!(err, "{}", e.render())
            } else {
                write!(out, "{}", e.render())
            };
            return code;
        }
    };
    let result = match cli.command {
        Command::Scan(a) => scan(&a, out, err),
        Command::Check(a) => check(&a, out, err),
        Command::Explain(a) => explain(&a, out),
        Command::Sign(a) => load(&a.root, Options::default(), None)
            .and_then(|an| crate::sign::run(&a, &an, out, err)),
        Command::Coverage(a) => crate::coverage::run(&a, out),
        Command::Graph(a) => graph(&a, out, err),
        Command::Surface(a) => surface(&a, out, err),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "gencreds: {e:#}");
            EXIT_FAILURE
        }
    }
}

fn options(c: &CommonArgs) -> Options {
    Options {
        limits: crate::source::Limits {
            max_file_bytes: c.max_file_size,
            ..Default::default()
        },
        threads: c.threads,
    }
}

fn load(root: &Path, opts: Options, cache: Option<&Path>) -> anyhow::Result<Analysis> {
    Ok(match cache {
        Some(c) => analysis::analyze_cached(root, opts, c)?,
        None => analysis::analyze(root, opts)?,
    })
}

fn exit_for(diags: &[Diagnostic]) -> i32 {
    if diags.iter().any(Diagnostic::is_error) {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    }
}

/// The canonical `nats.acl` text of a service.
pub fn acl_text(s: &Service) -> String {
    acl::print(&s.model.hostname, &s.rules)
}

/// Writes `text` to `path` atomically (temp file in the same folder, then rename).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".nats.acl.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn scan(a: &ScanArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<i32> {
    let an = load(
        &a.common.root,
        options(&a.common),
        a.common.cache.as_deref(),
    )?;
    let mut lines = String::new();
    let mut services_json = vec![];
    for s in &an.services {
        let text = acl_text(s);
        let status = if a.stdout {
            "printed"
        } else if s.blocked {
            "blocked"
        } else if std::fs::read_to_string(&s.acl_abs).ok().as_deref() == Some(text.as_str()) {
            "unchanged"
        } else {
            write_atomic(&s.acl_abs, &text)?;
            "written"
        };
        if a.stdout {
            if s.blocked {
                let _ = writeln!(
                    lines,
                    "# ==> {} <== (not written by scan: errors stand in its code or dependencies)",
                    s.acl_path
                );
            } else {
                let _ = writeln!(lines, "# ==> {} <==", s.acl_path);
            }
            lines.push_str(&text);
            lines.push('\n');
        } else {
            let what = match status {
                "blocked" => "not written: errors stand in its code or dependencies".to_string(),
                other => format!("{other} ({} rules)", s.rules.len()),
            };
            let _ = writeln!(lines, "{} {}: {what}", s.model.hostname, s.acl_path);
        }
        services_json.push(json!({
            "hostname": s.model.hostname.as_str(),
            "package": s.package,
            "acl_path": s.acl_path,
            "blocked": s.blocked,
            "status": status,
            "rules": s.rules.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "endpoints": s.endpoints.iter().map(|e| json!({
                "name": e.name,
                "kind": e.kind,
                "method": e.method,
                "route": e.route,
                "claims": e.claims,
            })).collect::<Vec<_>>(),
        }));
    }
    match a.common.format {
        Format::Human => {
            out.write_all(lines.as_bytes())?;
            if an.services.is_empty() {
                writeln!(
                    err,
                    "gencreds: no service crate found under {}",
                    a.common.root.display()
                )?;
            }
            err.write_all(report::human_all(&an.diags).as_bytes())?;
        }
        Format::Json => {
            let v =
                json!({"services": services_json, "diagnostics": report::json_diags(&an.diags)});
            out.write_all(report::to_text(&v).as_bytes())?;
        }
        Format::Sarif => out.write_all(report::to_text(&report::sarif(&an.diags)).as_bytes())?,
    }
    Ok(exit_for(&an.diags))
}

/// The rule-level difference between the committed and the derived set,
/// one line per rule (`-` committed only, `+` derived only), trust-root
/// rules marked.
pub fn rule_diff(committed: &RuleSet, derived: &RuleSet) -> Vec<String> {
    RuleDiff::between(committed, derived)
        .lines()
        .map(|l| {
            let mut s = format!("{} {} {}", l.change.sign(), l.verb, l.subject);
            if l.danger {
                s.push_str("    <-- danger: trust-root (:666)");
            }
            s
        })
        .collect()
}

/// What `check` finds: every diagnostic (the analysis's and the drift of
/// committed files), the rule diffs as text, and a JSON entry per service.
pub struct Comparison {
    /// Diagnostics, sorted.
    pub diags: Vec<Diagnostic>,
    /// Unified-style rule diffs of drifted files.
    pub diffs: String,
    /// One JSON object per service.
    pub services: Vec<serde_json::Value>,
}

impl Comparison {
    /// Whether an error stands (drift, a missing file, an error diagnostic).
    pub fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }
}

/// Compares each service's committed `nats.acl` with what its code says.
pub fn compare(an: &Analysis) -> Comparison {
    let mut diags = an.diags.clone();
    let mut diffs = String::new();
    let mut json_services = vec![];
    for s in &an.services {
        let text = acl_text(s);
        let none = Loc::default();
        let mut diff = vec![];
        let status = match std::fs::read(&s.acl_abs) {
            Err(_) => {
                diags.push(Diagnostic::new(
                    Code::AclMissing,
                    &s.acl_path,
                    none,
                    format!(
                        "service {} has no committed nats.acl; run `gencreds scan` and commit it",
                        s.model.hostname
                    ),
                ));
                "missing"
            }
            Ok(bytes) if bytes == text.as_bytes() => "clean",
            Ok(bytes) => match acl::parse(&String::from_utf8_lossy(&bytes)) {
                Err(e) => {
                    diags.push(Diagnostic::new(
                        Code::InvalidAcl,
                        &s.acl_path,
                        none,
                        format!("{e}; regenerate it with `gencreds scan`"),
                    ));
                    "invalid"
                }
                Ok(committed) => {
                    diff = rule_diff(&committed.rules, &s.rules);
                    if committed.hostname != s.model.hostname {
                        diff.insert(0, format!("- # nats.acl for {}", committed.hostname));
                        diff.insert(1, format!("+ # nats.acl for {}", s.model.hostname));
                    }
                    let what = if diff.is_empty() {
                        "is not in canonical form (same rules, different bytes)".to_string()
                    } else {
                        let added = diff.iter().filter(|l| l.starts_with('+')).count();
                        let removed = diff.iter().filter(|l| l.starts_with('-')).count();
                        format!(
                            "differs from what the code says ({added} line(s) to add, {removed} to remove)"
                        )
                    };
                    diags.push(Diagnostic::new(
                        Code::AclDrift,
                        &s.acl_path,
                        none,
                        format!("committed nats.acl {what}; run `gencreds scan`, review the change and commit it"),
                    ));
                    "drift"
                }
            },
        };
        if !diff.is_empty() {
            let _ = writeln!(
                diffs,
                "--- {} (committed)\n+++ {} (from code)",
                s.acl_path, s.acl_path
            );
            for l in &diff {
                let _ = writeln!(diffs, "{l}");
            }
        }
        json_services.push(json!({
            "hostname": s.model.hostname.as_str(),
            "acl_path": s.acl_path,
            "status": status,
            "blocked": s.blocked,
            "diff": diff,
        }));
    }
    diags.sort();
    Comparison {
        diags,
        diffs,
        services: json_services,
    }
}

fn check(a: &CommonArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<i32> {
    let an = load(&a.root, options(a), a.cache.as_deref())?;
    let Comparison {
        diags,
        diffs,
        services: json_services,
    } = compare(&an);
    match a.format {
        Format::Human => {
            out.write_all(diffs.as_bytes())?;
            err.write_all(report::human_all(&diags).as_bytes())?;
            if !diags.iter().any(Diagnostic::is_error) {
                writeln!(
                    out,
                    "gencreds check: {} service(s), every nats.acl is true to code",
                    an.services.len()
                )?;
            }
        }
        Format::Json => {
            let v = json!({"services": json_services, "diagnostics": report::json_diags(&diags)});
            out.write_all(report::to_text(&v).as_bytes())?;
        }
        Format::Sarif => out.write_all(report::to_text(&report::sarif(&diags)).as_bytes())?,
    }
    Ok(exit_for(&diags))
}

/// Whether `rule` is selected by an `explain` subject filter.
fn selects(rule: &Rule, filter: &str) -> bool {
    let (verb, subject) = match filter.split_once(' ') {
        Some(("PUB", s)) => (Some(Verb::Pub), s),
        Some(("SUB", s)) => (Some(Verb::Sub), s),
        _ => (None, filter),
    };
    if verb.is_some_and(|v| v != rule.verb) {
        return false;
    }
    let subject = match subject.split_once('.') {
        Some((_, rest)) => format!("{}.{rest}", buswarden_rules::rule::PLANE_PLACEHOLDER),
        None => subject.to_string(),
    };
    buswarden_rules::pattern::covers(&rule.subject, &subject)
        || buswarden_rules::pattern::covers(&subject, &rule.subject)
}

fn explain(a: &ExplainArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let an = load(&a.root, Options::default(), None)?;
    let Some(s) = an
        .services
        .iter()
        .find(|s| s.model.hostname.as_str() == a.hostname)
    else {
        let known: Vec<&str> = an
            .services
            .iter()
            .map(|s| s.model.hostname.as_str())
            .collect();
        anyhow::bail!(
            "no service with hostname {:?} under {} (services: {})",
            a.hostname,
            a.root.display(),
            known.join(", ")
        );
    };
    let implicit = analysis::implicit(s);
    let mut text = format!("# {} ({}, {})\n", s.model.hostname, s.package, s.acl_path);
    let mut rules_json = vec![];
    for r in s.rules.iter() {
        if a.subject.as_deref().is_some_and(|f| !selects(r, f)) {
            continue;
        }
        let danger = if r.is_danger() {
            "    <-- danger: trust-root (:666)"
        } else {
            ""
        };
        let _ = writeln!(text, "{r}{danger}");
        let mut sites = vec![];
        if implicit.contains(r) {
            let _ = writeln!(text, "    implicit: every service gets this rule");
            sites.push(json!({"implicit": true}));
        }
        for p in s.provenance.iter().filter(|p| &p.granted_by == r) {
            let narrower = if &p.rule != r {
                format!(" [needs {}]", p.rule)
            } else {
                String::new()
            };
            let via = p
                .site
                .via
                .as_ref()
                .map(|v| format!(" (reached from {v})"))
                .unwrap_or_default();
            let _ = writeln!(
                text,
                "    {}  {}{via}{narrower}",
                p.site.location(),
                p.site.what
            );
            sites.push(json!({
                "file": p.site.file, "line": p.site.loc.line, "column": p.site.loc.col,
                "what": p.site.what, "via": p.site.via, "rule": p.rule.to_string(),
            }));
        }
        rules_json.push(json!({"rule": r.to_string(), "danger": r.is_danger(), "sites": sites}));
    }
    match a.format {
        Format::Json | Format::Sarif => {
            let v = json!({"hostname": s.model.hostname.as_str(), "acl_path": s.acl_path, "rules": rules_json});
            out.write_all(report::to_text(&v).as_bytes())?;
        }
        Format::Human => out.write_all(text.as_bytes())?,
    }
    Ok(EXIT_OK)
}

/// Analyses every root of a deploy (one after the other: the trees share
/// the machine) and reports their errors on `err`.
fn load_deploy(
    roots: &[PathBuf],
    threads: usize,
    err: &mut dyn Write,
) -> anyhow::Result<Vec<Analysis>> {
    let mut out = vec![];
    for root in roots {
        let an = load(
            root,
            Options {
                threads,
                ..Options::default()
            },
            None,
        )?;
        let (errors, _) = analysis::counts(&an.diags);
        if errors > 0 {
            writeln!(
                err,
                "gencreds: {errors} error(s) stand under {} (`gencreds check {}` lists them); the model shows what the code grants today",
                root.display(),
                root.display()
            )?;
        }
        out.push(an);
    }
    Ok(out)
}

fn graph(a: &GraphArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<i32> {
    let analyses = load_deploy(&a.roots, a.threads, err)?;
    let refs: Vec<&Analysis> = analyses.iter().collect();
    let model = crate::reach::model(&refs);
    let text = match a.format {
        GraphFormat::Json => report::to_text(&serde_json::to_value(&model)?),
        GraphFormat::Dot => crate::graph::dot(&model),
        GraphFormat::Html => crate::graph::html(&model),
    };
    match &a.out {
        Some(path) => std::fs::write(path, text.as_bytes())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => out.write_all(text.as_bytes())?,
    }
    Ok(EXIT_OK)
}

fn surface(a: &SurfaceArgs, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<i32> {
    let analyses = load_deploy(&a.roots, 0, err)?;
    let refs: Vec<&Analysis> = analyses.iter().collect();
    let model = crate::reach::model(&refs);
    match a.format {
        Format::Human => {
            out.write_all(model.surface_text().as_bytes())?;
            if !model.ingress.configured {
                writeln!(
                    err,
                    "gencreds surface: no [edge] table in buswarden.toml; assumed the default ingress firewall (mode prod, port 443 only)"
                )?;
            }
        }
        Format::Json | Format::Sarif => {
            let v = json!({
                "ingress": model.ingress,
                "endpoints": model.endpoints.iter().filter(|e| e.edge).collect::<Vec<_>>(),
            });
            out.write_all(report::to_text(&v).as_bytes())?;
        }
    }
    Ok(EXIT_OK)
}
