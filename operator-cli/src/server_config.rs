//! `nats-server.conf` in operator mode, written from the setup: the operator
//! JWT by path, the system account, and either the full resolver (its store
//! under `jwt/`, every account preloaded so the system account works from the
//! first start) or a URL resolver pointing at the account server (which
//! serves every account, the system account included; nats-server accepts no
//! preload with a read-only resolver).

use crate::error::Result;
use crate::setup::{Setup, write_file};
use std::fmt::Write as _;

/// The file name.
pub const CONFIG_FILE: &str = "nats-server.conf";

fn quoted(s: &str) -> String {
    // nats-server config strings follow JSON escaping.
    serde_json::Value::String(s.to_string()).to_string()
}

/// The configuration text for `setup`.
pub fn render(setup: &Setup) -> Result<String> {
    let (_, op) = setup.operator()?;
    let settings = &setup.file.nats_server;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nats-server configuration written by `busop`: operator mode."
    );
    let _ = writeln!(
        out,
        "# Rewritten by `busop init --force` and `busop rotate operator-key`."
    );
    let _ = writeln!(out, "listen: {}", settings.listen);
    let _ = writeln!(
        out,
        "operator: {}",
        quoted(&setup.operator_path().display().to_string())
    );
    let _ = writeln!(out, "system_account: {}", op.nats.system_account);
    match &settings.url_resolver {
        Some(url) => {
            let _ = writeln!(out, "resolver: URL({})", quoted(url));
        }
        None => {
            let dir = setup.dir.join("jwt");
            let _ = writeln!(out, "resolver: {{");
            let _ = writeln!(out, "  type: full");
            let _ = writeln!(out, "  dir: {}", quoted(&dir.display().to_string()));
            let _ = writeln!(out, "  allow_delete: false");
            let _ = writeln!(out, "  interval: \"2m\"");
            let _ = writeln!(out, "}}");
            let _ = writeln!(out, "resolver_preload: {{");
            for account in setup.accounts()? {
                let _ = writeln!(out, "  # {}", account.name);
                let _ = writeln!(
                    out,
                    "  {}: {}",
                    account.claims.data.sub,
                    quoted(&account.token)
                );
            }
            let _ = writeln!(out, "}}");
        }
    }
    Ok(out)
}

/// Writes `nats-server.conf` into the setup folder; returns its text.
pub fn write(setup: &Setup) -> Result<String> {
    let text = render(setup)?;
    if setup.file.nats_server.url_resolver.is_none() {
        buswarden_creds::keyfile::create_private_dir(&setup.dir.join("jwt"))?;
    }
    write_file(&setup.dir.join(CONFIG_FILE), text.as_bytes())?;
    Ok(text)
}
