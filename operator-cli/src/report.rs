//! What every command hands back: text for people, a JSON value for
//! machines (`--format json`, documented in docs/busop.md and stable), and
//! the exit status (0 fine, 1 findings, 2 error).

use serde::Serialize;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
    /// Markdown (only `busop diff`; others print human text).
    Markdown,
}

/// Exit status: nothing found.
pub const EXIT_OK: u8 = 0;
/// Exit status: findings (policy violations, changes with `--exit-code`, unconfirmed pushes).
pub const EXIT_FINDINGS: u8 = 1;
/// Exit status: an error.
pub const EXIT_ERROR: u8 = 2;

/// A command's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Text for people.
    pub human: String,
    /// Markdown, when the command has it.
    pub markdown: Option<String>,
    /// The JSON document.
    pub json: serde_json::Value,
    /// Exit status.
    pub exit: u8,
    /// Error lines for standard error (files that could not be read…).
    pub stderr: String,
}

impl Report {
    /// A report with exit status 0.
    pub fn new(human: String, json: impl Serialize) -> Report {
        Report {
            human,
            markdown: None,
            json: serde_json::to_value(json).unwrap_or(serde_json::Value::Null),
            exit: EXIT_OK,
            stderr: String::new(),
        }
    }

    /// The text to print in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Human => self.human.clone(),
            Format::Markdown => self.markdown.clone().unwrap_or_else(|| self.human.clone()),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(&self.json).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }
}

/// A unix time as RFC 3339 (UTC, seconds).
pub fn time(unix: i64) -> String {
    if unix <= 0 {
        return "-".into();
    }
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64),
    )
    .to_string()
}

/// A duration in seconds, short (`6d 23h`).
pub fn span(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let (d, h, m) = (s / 86400, (s % 86400) / 3600, (s % 3600) / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// Seeds in output are redacted with the creds crate's one definition of
/// "shaped like a seed" (whole words `S[OAUNCXP]` + base32, 16 or more).
pub use buswarden_creds::keys::{REDACTED_SEED as REDACTED, redact_seeds};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_redacted_and_public_keys_are_not() {
        let kp = buswarden_creds::KeyPair::generate(buswarden_creds::KeyKind::Account);
        let seed = kp.seed().expose().to_string();
        let text = format!(
            "issuer {seed:?} is not valid; key {} stays",
            kp.public_key()
        );
        let out = redact_seeds(&text);
        assert!(!out.contains(&seed));
        assert!(out.contains(REDACTED));
        assert!(out.contains(kp.public_key()));
        assert!(matches!(
            redact_seeds("no seed here"),
            std::borrow::Cow::Borrowed(_)
        ));
        let embedded = format!("x{seed}");
        assert_eq!(
            redact_seeds(&embedded),
            embedded,
            "part of a longer word is not a seed"
        );
    }
}
