//! Shell completions, the man page and the Markdown command reference, all
//! generated from the clap definitions in [`crate::cli`].

use crate::cli::Cli;
use crate::error::{BusopError, Result};
use crate::report::Report;
use clap::CommandFactory as _;
use std::fmt::Write as _;

/// A completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Report {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "busop", &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    Report::new(
        text.clone(),
        serde_json::json!({ "shell": shell.to_string(), "script": text }),
    )
}

/// The man page (roff).
pub fn man() -> Result<Report> {
    let cmd = Cli::command();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(BusopError::io("rendering the man page", "busop.1"))?;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok(Report::new(
        text.clone(),
        serde_json::json!({ "man": text }),
    ))
}

fn write_command(out: &mut String, cmd: &clap::Command, path: &str, depth: usize) {
    let heading = "#".repeat(depth.min(4));
    let _ = writeln!(out, "{heading} `{path}`\n");
    if let Some(about) = cmd.get_long_about().or(cmd.get_about()) {
        let _ = writeln!(out, "{about}\n");
    }
    let mut usage = cmd.clone().bin_name(path.to_string());
    let _ = writeln!(
        out,
        "```text\n{}\n```\n",
        usage
            .render_usage()
            .to_string()
            .trim_start_matches("Usage: ")
    );
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .filter(|a| depth == 1 || !a.is_global_set())
        .collect();
    if !args.is_empty() {
        let _ = writeln!(out, "| argument | meaning | default |\n|---|---|---|");
        for a in args {
            let name = match (a.get_long(), a.get_value_names()) {
                (Some(l), Some(v)) if a.get_action().takes_values() => {
                    format!(
                        "`--{l} <{}>`",
                        v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
                    )
                }
                (Some(l), _) => format!("`--{l}`"),
                (None, Some(v)) => format!(
                    "`{}`",
                    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
                ),
                (None, None) => format!("`{}`", a.get_id().as_str().to_uppercase()),
            };
            let help = a
                .get_help()
                .map(|h| h.to_string())
                .unwrap_or_default()
                .replace('|', "\\|");
            let default = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            let default = if default.is_empty() {
                String::new()
            } else {
                format!("`{default}`")
            };
            let _ = writeln!(out, "| {name} | {help} | {default} |");
        }
        let _ = writeln!(out);
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_command(out, sub, &format!("{path} {}", sub.get_name()), depth + 1);
    }
}

/// The command reference in Markdown, from the clap definitions.
pub fn markdown() -> String {
    let mut out = String::new();
    let cmd = Cli::command();
    write_command(&mut out, &cmd, "busop", 1);
    out
}
