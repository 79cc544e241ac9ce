//! `gencreds coverage`: grant coverage from real runs, a dynamic oracle
//! for the static analysis. The runtime records every subject a process
//! publishes and subscribes (`BUSWARDEN_RECORD=<dir>`, see the runtime's
//! `record` module); this command reads those recordings and the committed
//! `nats.acl` of every service under the root, and reports
//!
//! - each recorded subject the service's `nats.acl` does not cover: an
//!   analyzer miss (the code did something `gencreds` did not derive; the
//!   broker would refuse it in production), exit 1;
//! - each rule no recorded run exercised (information: a grant the runs did
//!   not need, or code the runs did not reach);
//! - hosts recorded that no service under the root claims (skipped), and
//!   services with no recording at all.
//!
//! Coverage is judged with the rules crate's pattern matcher: a PUB is
//! covered when a PUB rule matches the subject, a subscription when a SUB
//! rule covers its whole pattern, `{{plane}}` standing for the recorded
//! subject's own plane.

use crate::analysis::{Analysis, Options};
use crate::report::Format;
use buswarden_rules::{Rule, Verb, acl, pattern};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Largest recording file read, in bytes.
pub const MAX_RECORDING_BYTES: u64 = 256 * 1024 * 1024;

/// The extension of the runtime's recording files.
pub const RECORDING_EXT: &str = "subjects";

/// `coverage` options.
#[derive(Debug, clap::Args)]
pub struct CoverageArgs {
    /// Recording files, or folders holding `*.subjects` recordings.
    #[arg(required = true)]
    pub recordings: Vec<PathBuf>,
    /// The tree whose services' `nats.acl` files are checked.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Output format (human or json).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// One recorded subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Recorded {
    /// The connector's hostname.
    pub host: String,
    /// Published or subscribed.
    pub verb: Verb,
    /// The subject (a subscription's pattern).
    pub subject: String,
}

/// What a set of recordings holds.
#[derive(Debug, Default)]
pub struct Recordings {
    /// Distinct subjects, sorted.
    pub subjects: BTreeSet<Recorded>,
    /// Lines that are not `<host> PUB|SUB <subject>`: (file, line number).
    pub malformed: Vec<(String, usize)>,
    /// Files read.
    pub files: usize,
}

/// Why recordings cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoverageError {
    /// A recording file or folder cannot be read.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No recording file was found.
    #[error(
        "no recording found in {0}; run the services with BUSWARDEN_RECORD=<dir> and pass that folder"
    )]
    Empty(String),
}

/// Reads recording files and folders (a folder: its `*.subjects` files,
/// by name). A last line without its newline (a process killed mid-write)
/// is ignored; `#` lines are comments.
pub fn read_recordings(paths: &[PathBuf]) -> Result<Recordings, CoverageError> {
    let unreadable = |path: &Path, e: &dyn std::fmt::Display| CoverageError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut files = vec![];
    for p in paths {
        let md = std::fs::metadata(p).map_err(|e| unreadable(p, &e))?;
        if md.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| unreadable(p, &e))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == RECORDING_EXT) && f.is_file())
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(CoverageError::Empty(list.join(", ")));
    }
    let mut out = Recordings {
        files: files.len(),
        ..Recordings::default()
    };
    for f in &files {
        let len = std::fs::metadata(f).map_err(|e| unreadable(f, &e))?.len();
        if len > MAX_RECORDING_BYTES {
            return Err(unreadable(
                f,
                &format!("{len} bytes, larger than the {MAX_RECORDING_BYTES} read"),
            ));
        }
        let bytes = std::fs::read(f).map_err(|e| unreadable(f, &e))?;
        let text = String::from_utf8_lossy(&bytes);
        // Only whole lines: a killed writer may leave a partial last one.
        let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
        for (i, line) in whole.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split(' ');
            let (Some(host), Some(verb), Some(subject), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                out.malformed.push((f.display().to_string(), i + 1));
                continue;
            };
            let verb = match verb {
                "PUB" => Verb::Pub,
                "SUB" => Verb::Sub,
                _ => {
                    out.malformed.push((f.display().to_string(), i + 1));
                    continue;
                }
            };
            if host.is_empty() || !pattern::is_valid(subject) {
                out.malformed.push((f.display().to_string(), i + 1));
                continue;
            }
            out.subjects.insert(Recorded {
                host: host.to_string(),
                verb,
                subject: subject.to_string(),
            });
        }
    }
    Ok(out)
}

/// A recorded subject the service's `nats.acl` does not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Miss {
    /// The subject.
    pub recorded: Recorded,
    /// The `nats.acl` that should cover it, relative to the root.
    pub acl: String,
    /// Why it is not covered.
    pub why: &'static str,
}

/// The coverage of a set of recordings against the services of a tree.
#[derive(Debug, Default)]
pub struct Report {
    /// Analyzer misses.
    pub misses: Vec<Miss>,
    /// Rules no recording exercised: (hostname, acl path, rule).
    pub unexercised: Vec<(String, String, Rule)>,
    /// Rules exercised, and rules in the services that were recorded.
    pub exercised: usize,
    /// Every rule of the services that were recorded.
    pub rules: usize,
    /// Hosts recorded that no service under the root claims.
    pub skipped_hosts: BTreeSet<String>,
    /// Services under the root with no recording.
    pub unrecorded: Vec<String>,
    /// Distinct subjects recorded.
    pub recorded: usize,
}

/// The plane of a recorded subject (its first token).
fn plane_of(subject: &str) -> &str {
    subject.split('.').next().unwrap_or_default()
}

/// Whether `rule` covers the recorded subject (same verb; `{{plane}}` is
/// the subject's plane).
pub fn covers(rule: &Rule, r: &Recorded) -> bool {
    rule.verb == r.verb
        && pattern::covers(&rule.subject_for_plane(plane_of(&r.subject)), &r.subject)
}

/// Checks recordings against the committed `nats.acl` of every service in
/// `an`.
pub fn report(an: &Analysis, rec: &Recordings) -> Report {
    let mut by_host: BTreeMap<&str, Vec<&Recorded>> = BTreeMap::new();
    for r in &rec.subjects {
        by_host.entry(r.host.as_str()).or_default().push(r);
    }
    let mut out = Report {
        recorded: rec.subjects.len(),
        ..Report::default()
    };
    let services: BTreeMap<&str, &crate::analysis::Service> = an
        .services
        .iter()
        .map(|s| (s.model.hostname.as_str(), s))
        .collect();
    for host in by_host.keys() {
        if !services.contains_key(host) {
            out.skipped_hosts.insert((*host).to_string());
        }
    }
    for (host, s) in &services {
        let Some(recorded) = by_host.get(host) else {
            out.unrecorded.push((*host).to_string());
            continue;
        };
        let acl_file = std::fs::read_to_string(&s.acl_abs)
            .ok()
            .and_then(|t| acl::parse(&t).ok());
        let Some(acl_file) = acl_file else {
            for r in recorded {
                out.misses.push(Miss {
                    recorded: (*r).clone(),
                    acl: s.acl_path.clone(),
                    why: "the service has no readable nats.acl",
                });
            }
            continue;
        };
        let rules: Vec<&Rule> = acl_file.rules.iter().collect();
        let mut used = vec![false; rules.len()];
        for r in recorded {
            let mut covered = false;
            for (i, rule) in rules.iter().enumerate() {
                if covers(rule, r) {
                    covered = true;
                    used[i] = true;
                }
            }
            if !covered {
                out.misses.push(Miss {
                    recorded: (*r).clone(),
                    acl: s.acl_path.clone(),
                    why: "no rule of the service's nats.acl covers it",
                });
            }
        }
        out.rules += rules.len();
        for (rule, used) in rules.iter().zip(used) {
            if used {
                out.exercised += 1;
            } else {
                out.unexercised
                    .push(((*host).to_string(), s.acl_path.clone(), (*rule).clone()));
            }
        }
    }
    out
}

/// Text a recording supplied, printable (control characters escaped).
fn shown(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).collect()
}

/// Runs `gencreds coverage`.
pub fn run(a: &CoverageArgs, out: &mut dyn Write) -> anyhow::Result<i32> {
    let rec = read_recordings(&a.recordings)?;
    let an = crate::analysis::analyze(&a.root, Options::default())?;
    let rep = report(&an, &rec);
    let verb = |v: Verb| match v {
        Verb::Pub => "PUB",
        Verb::Sub => "SUB",
    };
    if a.format == Format::Json {
        let v = json!({
            "recorded": rep.recorded,
            "files": rec.files,
            "misses": rep.misses.iter().map(|m| json!({
                "hostname": m.recorded.host,
                "verb": verb(m.recorded.verb),
                "subject": m.recorded.subject,
                "acl": m.acl,
                "reason": m.why,
            })).collect::<Vec<_>>(),
            "unexercised": rep.unexercised.iter().map(|(h, acl, r)| json!({
                "hostname": h,
                "acl": acl,
                "rule": r.to_string(),
            })).collect::<Vec<_>>(),
            "rules": rep.rules,
            "exercised": rep.exercised,
            "skipped_hosts": rep.skipped_hosts,
            "unrecorded": rep.unrecorded,
            "malformed": rec.malformed.iter().map(|(f, l)| json!({"file": f, "line": l})).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        for m in &rep.misses {
            writeln!(
                out,
                "miss: {} {} {} is not covered by {} ({}): an analyzer miss; the broker would refuse it",
                shown(&m.recorded.host),
                verb(m.recorded.verb),
                shown(&m.recorded.subject),
                m.acl,
                m.why
            )?;
        }
        for (h, acl, r) in &rep.unexercised {
            writeln!(out, "unexercised: {h} {r} ({acl})")?;
        }
        for h in &rep.skipped_hosts {
            writeln!(
                out,
                "skipped: {} is recorded but no service under the root claims it",
                shown(h)
            )?;
        }
        for h in &rep.unrecorded {
            writeln!(out, "unrecorded: {h} has no recording")?;
        }
        for (f, l) in &rec.malformed {
            writeln!(
                out,
                "malformed: {f}:{l} is not `<host> PUB|SUB <subject>`; ignored"
            )?;
        }
        writeln!(
            out,
            "coverage: {} subjects recorded, {} misses, {} of {} rules exercised",
            rep.recorded,
            rep.misses.len(),
            rep.exercised,
            rep.rules
        )?;
    }
    Ok(if rep.misses.is_empty() {
        crate::cli::EXIT_OK
    } else {
        crate::cli::EXIT_FINDINGS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole lines only, comments and malformed lines apart, deduplicated.
    #[test]
    fn reads_whole_lines_and_reports_malformed_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("a.example.subjects"),
            "a.example PUB p.safe.443.a_example.b_example._.GET.x\n\
             # a comment\n\
             a.example PUB p.safe.443.a_example.b_example._.GET.x\n\
             a.example SUB p.safe.*.*.a_example.>\n\
             garbage\n\
             a.example PUB two words\n\
             a.example PUB p.safe.443.a_example.b_exa",
        )
        .unwrap();
        std::fs::write(d.path().join("ignored.txt"), "x PUB y\n").unwrap();
        let rec = read_recordings(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(rec.files, 1);
        assert_eq!(rec.subjects.len(), 2);
        assert_eq!(rec.malformed.len(), 2);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_recordings(&[empty.path().to_path_buf()]),
            Err(CoverageError::Empty(_))
        ));
    }

    #[test]
    fn coverage_uses_the_recorded_plane_and_whole_patterns() {
        let rule = Rule::parse("SUB {{plane}}.safe.*.*.a_example.>").unwrap();
        let r = |verb, subject: &str| Recorded {
            host: "a.example".into(),
            verb,
            subject: subject.into(),
        };
        assert!(covers(
            &rule,
            &r(Verb::Sub, "p0.safe.443.*.a_example._.GET.x")
        ));
        assert!(!covers(
            &rule,
            &r(Verb::Pub, "p0.safe.443.*.a_example._.GET.x")
        ));
        assert!(!covers(&rule, &r(Verb::Sub, "p0.safe.*.*.*.>")));
        let publish =
            Rule::parse("PUB {{plane}}.safe.443.a_example.b_example.*.GET.items.*").unwrap();
        assert!(covers(
            &publish,
            &r(Verb::Pub, "p1.safe.443.a_example.b_example._.GET.items.7")
        ));
        assert!(!covers(
            &publish,
            &r(Verb::Pub, "p1.safe.443.a_example.b_example._.GET.items.7.x")
        ));
    }
}
