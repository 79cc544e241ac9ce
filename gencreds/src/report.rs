//! Rendering findings for people (`path:line:col`, the source line, a
//! caret) and machines (JSON, SARIF 2.1.0). Every list is sorted before it
//! gets here, so the same tree renders to the same bytes everywhere.

use crate::diagnostic::{Code, Diagnostic};
use serde_json::{Value, json};
use std::fmt::Write as _;

/// Output format of findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people.
    Human,
    /// `{"diagnostics": […]}` and command-specific fields; documented in docs/gencreds.md.
    Json,
    /// SARIF 2.1.0, for code-scanning services.
    Sarif,
}

/// One finding for people.
pub fn human(d: &Diagnostic) -> String {
    let mut s = format!(
        "{}[{}] {}: {}\n",
        d.severity.as_str(),
        d.code,
        d.location(),
        d.message
    );
    if let Some(line) = &d.source_line {
        let num = d.line.to_string();
        let pad = " ".repeat(num.len());
        let caret_pad: String = line
            .chars()
            .take(d.column.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(s, "  {num} | {line}");
        let _ = writeln!(s, "  {pad} | {caret_pad}^");
    }
    s
}

/// Every finding for people, then a summary line.
pub fn human_all(diags: &[Diagnostic]) -> String {
    let mut s = String::new();
    for d in diags {
        s.push_str(&human(d));
    }
    let (e, w) = crate::analysis::counts(diags);
    if e + w > 0 {
        let _ = writeln!(s, "gencreds: {e} error(s), {w} warning(s)");
    }
    s
}

/// The findings as a JSON array.
pub fn json_diags(diags: &[Diagnostic]) -> Value {
    serde_json::to_value(diags).unwrap_or(Value::Null)
}

/// A SARIF 2.1.0 log of the findings.
pub fn sarif(diags: &[Diagnostic]) -> Value {
    let rules: Vec<Value> = Code::ALL
        .iter()
        .map(|c| {
            json!({
                "id": c.as_str(),
                "shortDescription": {"text": c.description()},
                "defaultConfiguration": {"level": c.severity().as_str()},
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": d.file}}});
            if d.line > 0 {
                loc["physicalLocation"]["region"] =
                    json!({"startLine": d.line, "startColumn": d.column.max(1)});
            }
            json!({
                "ruleId": d.code.as_str(),
                "level": d.severity.as_str(),
                "message": {"text": d.message},
                "locations": [loc],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gencreds",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// Pretty JSON with a final newline.
pub fn to_text(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}
