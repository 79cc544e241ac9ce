//! The server's own `buswarden.toml`, checked on every rule set before
//! anything is signed, so a CI key cannot widen a service's trust-root or
//! wildcard grants beyond what the operator's policy lists. Evaluation is
//! `buswarden_rules::policy`'s; without a policy file the conventions'
//! defaults apply (a computed host on a `:666` call is refused).

use std::path::{Path, PathBuf};

use buswarden_rules::policy::{self, Severity};
use buswarden_rules::{Hostname, RuleSet};

/// Why the policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// Unreadable.
    #[error("policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Invalid.
    #[error("policy file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The cause, with line and column.
        source: Box<policy::PolicyError>,
    },
}

/// The policy in force.
#[derive(Debug, Clone, Default)]
pub struct ServerPolicy {
    policy: Option<policy::Policy>,
}

impl ServerPolicy {
    /// Loads `path`, or the defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyFileError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let policy = policy::Policy::parse(&text).map_err(|source| PolicyFileError::Invalid {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        Ok(Self {
            policy: Some(policy),
        })
    }

    /// Checks `rules` of `caller`; the message lists every violation.
    pub fn check(&self, caller: &Hostname, rules: &RuleSet) -> Result<(), String> {
        let violations: Vec<String> = match &self.policy {
            Some(p) => policy::evaluate(p, caller, rules)
                .iter()
                .map(|v| format!("{} ({})", v, v.code()))
                .collect(),
            None => policy::evaluate_without_policy(caller, rules)
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .map(|f| format!("{} ({})", f.violation, f.violation.code()))
                .collect(),
        };
        if violations.is_empty() {
            Ok(())
        } else {
            Err(format!("policy violation: {}", violations.join("; ")))
        }
    }
}
