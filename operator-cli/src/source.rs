//! Where `busop diff` reads rule sets from: a `nats.acl` or `.creds` file,
//! a folder of them, or a git revision `git:REV:path` (read with
//! `git ls-tree` and `git show`, so no checkout is touched). Every file
//! becomes one service's rules in `nats.acl` form, keyed by hostname.

use crate::artifact::{self, Artifact, Loaded};
use crate::error::{BusopError, Result};
use crate::grants;
use buswarden_creds::jwt::AnyClaims;
use buswarden_rules::RuleSet;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One service's rules and the file they came from.
#[derive(Debug, Clone)]
pub struct ServiceRules {
    /// The file (or `git:REV:path`).
    pub file: String,
    /// The rules, `nats.acl` form.
    pub rules: RuleSet,
}

/// Rule sets by service name.
pub type RuleSets = BTreeMap<String, ServiceRules>;

pub(crate) fn git(args: &[&str]) -> Result<String> {
    let shown = args.join(" ");
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| BusopError::Git {
            args: shown.clone(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BusopError::Git {
            args: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| BusopError::Git {
        args: shown,
        message: "output is not UTF-8".into(),
    })
}

fn is_grant_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "nats.acl" || name.ends_with(".creds")
}

fn add(sets: &mut RuleSets, loaded: Loaded) -> Result<()> {
    let file = loaded.path.display().to_string();
    let (name, rules) = match loaded.artifact {
        Artifact::Acl(acl) => (acl.hostname.to_string(), acl.rules),
        Artifact::Creds { claims, .. } => {
            let g = grants::of_user(&claims);
            (g.name, g.rules)
        }
        Artifact::Jwt { claims, .. } => match *claims {
            AnyClaims::User(u) => {
                let g = grants::of_user(&u);
                (g.name, g.rules)
            }
            other => {
                return Err(BusopError::Unrecognized {
                    path: loaded.path,
                    what: format!(
                        "is an {} JWT; diff compares users' grants (.creds, user JWT, nats.acl)",
                        other.kind()
                    ),
                });
            }
        },
    };
    if let Some(prev) = sets.get(&name) {
        return Err(BusopError::Usage(format!(
            "two files for service {name}: {} and {file}",
            prev.file
        )));
    }
    sets.insert(name, ServiceRules { file, rules });
    Ok(())
}

/// Reads the rule sets named by `spec`.
pub fn read(spec: &str) -> Result<RuleSets> {
    let mut sets = RuleSets::new();
    if let Some(rest) = spec.strip_prefix("git:") {
        let (rev, path) = rest.split_once(':').unwrap_or((rest, ""));
        if rev.is_empty() || rev.starts_with('-') {
            return Err(BusopError::Usage(format!("{spec}: expected git:REV:path")));
        }
        // `path` is relative to the current folder, as in git; --full-name
        // gives the repository paths `git show REV:path` wants.
        let mut args = vec!["ls-tree", "-r", "--name-only", "--full-name", rev];
        if !path.is_empty() {
            args.extend(["--", path]);
        }
        let listing = git(&args)?;
        // A revision without grant files there (before the first service,
        // or a folder the change adds) is an empty side, not an error: every
        // service then shows as added or removed.
        let files: Vec<&str> = listing.lines().filter(|f| is_grant_file(f)).collect();
        for f in files {
            let text = git(&["show", &format!("{rev}:{f}")])?;
            let shown = PathBuf::from(format!("git:{rev}:{f}"));
            add(&mut sets, artifact::classify(&shown, &text)?)?;
        }
        return Ok(sets);
    }
    let root = Path::new(spec);
    for f in artifact::find_grant_files(root)? {
        add(&mut sets, artifact::load(&f)?)?;
    }
    Ok(sets)
}
