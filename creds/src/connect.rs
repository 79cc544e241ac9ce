//! The CONNECT budget: nats-server refuses a control line longer than its
//! `max_control_line` (4,096 bytes by default), and a client's CONNECT line
//! carries the whole user JWT. This module computes the CONNECT argument the
//! buswarden runtime sends (async-nats 0.51: its `ConnectInfo` JSON, the
//! connection named `<hostname> id-<instance>`) for a JWT of a given length,
//! so signing can refuse a user that could never connect. nats-server
//! compares the length of that argument (the text after `CONNECT `, without
//! the line end) with `max_control_line`; the broker tests check both the
//! text and the limit against a real server.

use crate::jwt::SIGNATURE_B64_LEN;

/// nats-server's default `max_control_line`.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;

/// The async-nats version whose CONNECT this models.
pub const CLIENT_VERSION: &str = "0.51.0";

/// Length of the instance id the runtime appends to the hostname in the
/// connection name: `id-` and 10 characters.
pub const INSTANCE_ID_LEN: usize = 13;

/// How clients name their connection (CONNECT's `name`), which counts
/// against the budget too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectName {
    /// The buswarden runtime: `<hostname> id-<10 characters>`.
    #[default]
    Runtime,
    /// The hostname alone.
    Hostname,
    /// No name (`null`).
    Unnamed,
}

impl ConnectName {
    /// A name of the right length for a service with `hostname`.
    pub fn for_host(self, hostname: &str) -> Option<String> {
        match self {
            ConnectName::Runtime => {
                Some(format!("{hostname} id-{}", "0".repeat(INSTANCE_ID_LEN - 3)))
            }
            ConnectName::Hostname => Some(hostname.to_string()),
            ConnectName::Unnamed => None,
        }
    }
}

/// The CONNECT argument (the JSON after `CONNECT `) async-nats 0.51 sends
/// with a JWT, a nonce signature and a connection `name`, no TLS, echo on.
pub fn connect_json(jwt: &str, sig: &str, name: Option<&str>) -> String {
    let name = match name {
        Some(n) => format!("\"{n}\""),
        None => "null".to_string(),
    };
    format!(
        "{{\"verbose\":false,\"pedantic\":false,\"jwt\":\"{jwt}\",\"nkey\":null,\"sig\":\"{sig}\",\
\"name\":{name},\"echo\":true,\"lang\":\"rust\",\"version\":\"{CLIENT_VERSION}\",\"protocol\":1,\
\"tls_required\":false,\"user\":null,\"pass\":null,\"auth_token\":null,\"headers\":true,\
\"no_responders\":true}}"
    )
}

/// Bytes of the CONNECT argument for a JWT of `jwt_len` bytes and a
/// connection named `name` (base64url and hostnames need no JSON escaping).
pub fn connect_len(jwt_len: usize, name: Option<&str>) -> usize {
    connect_json("", "", name).len() + jwt_len + SIGNATURE_B64_LEN
}

/// The largest user JWT that fits `max_control_line` for a connection named `name`.
pub fn jwt_budget(max_control_line: usize, name: Option<&str>) -> usize {
    max_control_line.saturating_sub(connect_len(0, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_matches_the_text() {
        let jwt = "a".repeat(1000);
        let sig = "s".repeat(SIGNATURE_B64_LEN);
        assert_eq!(
            connect_json(&jwt, &sig, Some("calc.example")).len(),
            connect_len(1000, Some("calc.example"))
        );
        assert_eq!(
            connect_json(&jwt, &sig, None).len(),
            connect_len(1000, None)
        );
        assert_eq!(
            jwt_budget(4096, Some("x")) + connect_len(0, Some("x")),
            4096
        );
    }
}
