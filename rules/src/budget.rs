//! The 4 KiB CONNECT budget: an estimate of the CONNECT line a rule set will
//! produce once signed into a NATS user JWT, against nats-server's
//! `max_control_line` (4,096 bytes by default), and the rules that cost the
//! most.
//!
//! # The model
//!
//! nats-server reads `CONNECT <json>\r\n` and refuses the connection
//! (`-ERR 'maximum control line exceeded…'`) when `<json>` (the bytes after
//! `CONNECT ` and before `\r\n`) is longer than `max_control_line`. That JSON
//! is what the client sends; for our runtime (async-nats) it is, in order:
//!
//! ```text
//! {"verbose":false,"pedantic":false,"jwt":"<JWT>","nkey":null,"sig":"<86>",
//!  "name":"<name>"|null,"echo":true,"lang":"rust","version":"<client version>",
//!  "protocol":1,"tls_required":false,"user":null,"pass":null,"auth_token":null,
//!  "headers":true,"no_responders":true}
//! ```
//!
//! (one line, no spaces). `sig` is the base64url (no padding) of the 64-byte
//! ed25519 signature of the server's nonce: 86 bytes.
//!
//! The JWT is `b64(header).b64(claims).b64(signature)`, base64url without
//! padding: the header `{"typ":"JWT","alg":"ed25519-nkey"}` (46 bytes
//! encoded), the 64-byte signature (86 bytes encoded), and the claims JSON in
//! the field order of nats-io/jwt v2:
//!
//! ```text
//! {"exp":<10 digits>,            only when the user expires
//!  "jti":"<52>","iat":<10 digits>,"iss":"<56>","name":"<hostname>","sub":"<56>",
//!  "nats":{"pub":{"allow":[<PUB subjects>]},
//!          "sub":{"allow":[<SUB subjects>],"deny":[<guards>]},   deny only when there are guards
//!          "subs":-1,"data":-1,"payload":-1,
//!          "issuer_account":"<56>",   only when signed by a signing key
//!          "type":"user","version":2}}
//! ```
//!
//! SUB entries are the plain and queue-pinned forms of each SUB rule
//! ([`crate::queue::sub_allow`]: `"<subject> <group>"` for a pinned one).
//! Subjects are the rules with `{{plane}}` replaced by the plane, JSON
//! escaped the way the signer's encoder does it ([`JsonFlavor`]: Go's
//! `encoding/json` writes `>` as `\u003e`, six bytes; serde_json writes one).
//! Anything else the signer adds goes in [`ConnectModel::extra_claims`].
//! Every part of the estimate is built from these texts, so it is exact for
//! a signer and client that write exactly them; the creds crate checks the
//! model with a real signed JWT; `rules/tests/control_line.rs` already checks
//! the counting against a real nats-server at exactly the limit.
//!
//! The `sub.deny` guards ([`RuleSet::sub_guards`]) are counted when
//! [`ConnectModel::sub_deny_guards`] is set (the default).
//!
//! A rule's contribution is the encoded size of its JSON string (quotes and
//! separating comma included) after base64url, that is 4/3 of its JSON bytes,
//! plus the same for its guard if it has one.

use crate::hostname::Hostname;
use crate::queue;
use crate::rule::{Guard, PLANE_PLACEHOLDER, Rule, RuleSet, Verb};
use crate::subject::DEFAULT_PLANE;
use std::fmt;

/// nats-server's default `max_control_line`.
pub const MAX_CONTROL_LINE: usize = 4096;
/// The JWT header nats-io/jwt v2 writes.
pub const JWT_HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// Bytes of an ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Length of an nkey public key (`U…`, `A…`).
pub const PUBLIC_KEY_LEN: usize = 56;
/// Length of a `jti` (base32 of a SHA-512/256 digest, no padding).
pub const JTI_LEN: usize = 52;
/// The async-nats version whose CONNECT fields the model follows.
pub const CLIENT_VERSION: &str = "0.51.0";
/// How many contributors [`BudgetError::OverBudget`] names.
pub const NAMED_CONTRIBUTORS: usize = 5;

/// How the signer escapes JSON strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonFlavor {
    /// serde_json: `"`, `\` and control characters escaped.
    #[default]
    SerdeJson,
    /// Go `encoding/json` (nats-io/jwt, nsc): also `<`, `>`, `&`, U+2028 and
    /// U+2029 as `\uXXXX`.
    GoEncodingJson,
}

/// The `name` field of the CONNECT line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectName {
    /// The service's hostname (what the runtime sends).
    #[default]
    Hostname,
    /// No name: `null`.
    Absent,
    /// A name of this many bytes (no characters that need escaping).
    Bytes(usize),
}

/// Everything besides the rules that sizes the CONNECT line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectModel {
    /// The server's `max_control_line`.
    pub max_control_line: usize,
    /// The plane that replaces `{{plane}}` at signing.
    pub plane: String,
    /// Whether the user JWT carries `exp` (buswarden's default: yes).
    pub expires: bool,
    /// Whether the user is signed by an account signing key and so carries
    /// `issuer_account` (buswarden's per-deploy keys: yes).
    pub issuer_account: bool,
    /// The CONNECT `name`.
    pub name: ConnectName,
    /// The client version string sent in CONNECT.
    pub client_version: String,
    /// The signer's JSON escaping.
    pub json: JsonFlavor,
    /// Whether the signer writes the `sub.deny` guards of
    /// [`RuleSet::sub_guards`] (buswarden does: they stop nats-server from
    /// widening SUB rules that end in `*`).
    pub sub_deny_guards: bool,
    /// Bytes of further claims JSON the signer adds (for example `,"tags":[…]`).
    pub extra_claims: usize,
}

impl Default for ConnectModel {
    fn default() -> Self {
        ConnectModel {
            max_control_line: MAX_CONTROL_LINE,
            plane: DEFAULT_PLANE.to_string(),
            expires: true,
            issuer_account: true,
            name: ConnectName::Hostname,
            client_version: CLIENT_VERSION.to_string(),
            json: JsonFlavor::SerdeJson,
            sub_deny_guards: true,
            extra_claims: 0,
        }
    }
}

/// One rule's share of the CONNECT line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Contributor {
    /// The rule.
    pub rule: Rule,
    /// Bytes it adds to the CONNECT line (after base64url).
    pub bytes: usize,
}

impl fmt::Display for Contributor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes: {}", self.bytes, self.rule)
    }
}

/// The estimated sizes for one rule set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Estimate {
    /// Bytes of the claims JSON.
    pub claims_json: usize,
    /// Bytes of the whole JWT.
    pub jwt: usize,
    /// Bytes of the CONNECT argument (what `max_control_line` limits).
    pub connect: usize,
    /// The limit it is checked against.
    pub limit: usize,
    /// Every rule with its share, largest first (ties in rule order).
    pub contributors: Vec<Contributor>,
}

impl Estimate {
    /// Whether the CONNECT line fits the limit.
    pub fn fits(&self) -> bool {
        self.connect <= self.limit
    }

    /// Bytes left (negative when over).
    pub fn headroom(&self) -> i64 {
        self.limit as i64 - self.connect as i64
    }

    /// The `n` largest contributors.
    pub fn largest(&self, n: usize) -> &[Contributor] {
        &self.contributors[..n.min(self.contributors.len())]
    }
}

/// The rule set does not fit the CONNECT budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// The CONNECT line would exceed `max_control_line`.
    #[error(
        "the CONNECT line for {hostname} would be {connect} bytes, over nats-server's max_control_line of {limit}; largest rules: {}",
        largest.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ")
    )]
    OverBudget {
        /// The service.
        hostname: String,
        /// Estimated CONNECT argument bytes.
        connect: usize,
        /// The limit.
        limit: usize,
        /// The largest contributors (at most [`NAMED_CONTRIBUTORS`]).
        largest: Vec<Contributor>,
    },
}

/// Bytes of `s` as a JSON string body (without quotes) in `flavor`.
pub fn json_escaped_len(s: &str, flavor: JsonFlavor) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' if flavor == JsonFlavor::GoEncodingJson => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// Length of the base64url encoding (no padding) of `n` bytes.
pub fn base64url_len(n: usize) -> usize {
    (4 * n).div_ceil(3)
}

fn subject_len(rule: &Rule, plane: &str, flavor: JsonFlavor) -> usize {
    entry_len(&rule.subject, plane, flavor)
}

/// The escaped length of an allow or deny entry (`{{plane}}` filled in).
fn entry_len(entry: &str, plane: &str, flavor: JsonFlavor) -> usize {
    match entry.strip_prefix(PLANE_PLACEHOLDER) {
        Some(rest) => json_escaped_len(plane, flavor) + json_escaped_len(rest, flavor),
        None => json_escaped_len(entry, flavor),
    }
}

/// The escaped lengths of the entries a rule is signed as: its subject for
/// a PUB rule, its plain and/or queue-pinned entries for a SUB rule
/// ([`crate::queue`]), each with its separating comma's share left out.
fn rule_entries_len(me: &str, rule: &Rule, model: &ConnectModel) -> Vec<usize> {
    let plain = subject_len(rule, &model.plane, model.json);
    match rule.verb {
        Verb::Pub => vec![plain],
        Verb::Sub => {
            let f = queue::form(me, rule);
            let mut v = Vec::with_capacity(2);
            if f.plain() {
                v.push(plain);
            }
            if f.pinned() {
                v.push(plain + 1 + json_escaped_len(me, model.json));
            }
            v
        }
    }
}

/// The bytes of a JSON list `[...]` of strings of these escaped lengths.
fn list_len(items: impl Iterator<Item = usize>) -> Option<usize> {
    let mut n = 0;
    let mut count = 0;
    for len in items {
        n += len + 2;
        count += 1;
    }
    (count > 0).then(|| n + (count - 1) + 2)
}

/// The escaped length of a guard's deny subject.
fn guard_len(guard: &Guard, model: &ConnectModel) -> usize {
    let rule = Rule {
        verb: Verb::Sub,
        subject: guard.deny.clone(),
    };
    subject_len(&rule, &model.plane, model.json)
}

fn guards(rules: &RuleSet, model: &ConnectModel) -> Vec<Guard> {
    if model.sub_deny_guards {
        rules.sub_guards().deny
    } else {
        vec![]
    }
}

/// The claims JSON length for `hostname` and `rules`.
fn claims_len(hostname: &Hostname, rules: &RuleSet, model: &ConnectModel) -> usize {
    let key = |k: &str| k.len() + 3; // "k":
    let string = |len: usize| len + 2;
    let ts = 10;
    let mut n = 2; // { }
    let mut fields = 0;
    let mut field = |len: usize| {
        fields += 1;
        n += len;
    };
    if model.expires {
        field(key("exp") + ts);
    }
    field(key("jti") + string(JTI_LEN));
    field(key("iat") + ts);
    field(key("iss") + string(PUBLIC_KEY_LEN));
    field(key("name") + string(json_escaped_len(hostname.as_str(), model.json)));
    field(key("sub") + string(PUBLIC_KEY_LEN));
    // "nats":{...}
    let mut nats = 2;
    let mut nats_fields = 0;
    let mut nfield = |len: usize| {
        nats_fields += 1;
        nats += len;
    };
    let guards = guards(rules, model);
    for (name, verb) in [("pub", Verb::Pub), ("sub", Verb::Sub)] {
        let me = hostname.flatten();
        let allow = list_len(rules.of(verb).flat_map(|r| rule_entries_len(&me, r, model)));
        let deny = match verb {
            Verb::Sub => list_len(guards.iter().map(|g| guard_len(g, model))),
            Verb::Pub => None,
        };
        let parts: Vec<usize> = [("allow", allow), ("deny", deny)]
            .into_iter()
            .filter_map(|(k, list)| Some(key(k) + list?))
            .collect();
        let inner = 2 + parts.iter().sum::<usize>() + parts.len().saturating_sub(1);
        nfield(key(name) + inner);
    }
    nfield(key("subs") + 2);
    nfield(key("data") + 2);
    nfield(key("payload") + 2);
    if model.issuer_account {
        nfield(key("issuer_account") + string(PUBLIC_KEY_LEN));
    }
    nfield(key("type") + string(4));
    nfield(key("version") + 1);
    let nats = nats + nats_fields - 1;
    field(key("nats") + nats);
    n + (fields - 1) + model.extra_claims
}

/// The CONNECT argument length around a JWT of `jwt` bytes.
fn connect_len(hostname: &Hostname, jwt: usize, model: &ConnectModel) -> usize {
    let name = match model.name {
        ConnectName::Hostname => json_escaped_len(hostname.as_str(), model.json) + 2,
        ConnectName::Absent => 4,
        ConnectName::Bytes(b) => b + 2,
    };
    let fixed = [
        ("verbose", 5),
        ("pedantic", 5),
        ("jwt", jwt + 2),
        ("nkey", 4),
        ("sig", base64url_len(SIGNATURE_BYTES) + 2),
        ("name", name),
        ("echo", 4),
        ("lang", 6),
        (
            "version",
            json_escaped_len(&model.client_version, model.json) + 2,
        ),
        ("protocol", 1),
        ("tls_required", 5),
        ("user", 4),
        ("pass", 4),
        ("auth_token", 4),
        ("headers", 4),
        ("no_responders", 4),
    ];
    2 + fixed.len() - 1 + fixed.iter().map(|(k, v)| k.len() + 3 + v).sum::<usize>()
}

/// Estimates the CONNECT line of `hostname` signed with `rules`.
pub fn estimate(hostname: &Hostname, rules: &RuleSet, model: &ConnectModel) -> Estimate {
    let claims_json = claims_len(hostname, rules, model);
    let jwt = base64url_len(JWT_HEADER.len())
        + 1
        + base64url_len(claims_json)
        + 1
        + base64url_len(SIGNATURE_BYTES);
    let connect = connect_len(hostname, jwt, model);
    let guards = guards(rules, model);
    let me = hostname.flatten();
    let mut contributors: Vec<Contributor> = rules
        .iter()
        .map(|r| {
            let guard = guards
                .iter()
                .find(|g| &g.rule == r)
                .map_or(0, |g| guard_len(g, model) + 3);
            let entries: usize = rule_entries_len(&me, r, model)
                .iter()
                .map(|len| len + 3)
                .sum();
            Contributor {
                rule: r.clone(),
                bytes: base64url_len(entries + guard),
            }
        })
        .collect();
    contributors.sort_by_key(|c| std::cmp::Reverse(c.bytes));
    Estimate {
        claims_json,
        jwt,
        connect,
        limit: model.max_control_line,
        contributors,
    }
}

/// [`estimate`], refusing a rule set over the limit with an error that names
/// the largest contributors.
pub fn check(
    hostname: &Hostname,
    rules: &RuleSet,
    model: &ConnectModel,
) -> Result<Estimate, BudgetError> {
    let e = estimate(hostname, rules, model);
    if e.fits() {
        Ok(e)
    } else {
        Err(BudgetError::OverBudget {
            hostname: hostname.to_string(),
            connect: e.connect,
            limit: e.limit,
            largest: e.largest(NAMED_CONTRIBUTORS).to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{ServiceModel, derive};

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }

    /// Builds the texts the model describes, literally, to check the
    /// arithmetic against them.
    fn literal_claims(host: &Hostname, rules: &RuleSet, m: &ConnectModel) -> String {
        let fill = |s: &str| s.replacen("{{plane}}", &m.plane, 1);
        let list = |verb| {
            let items: Vec<String> = match verb {
                Verb::Pub => rules
                    .of(verb)
                    .map(|r| format!("\"{}\"", r.subject_for_plane(&m.plane)))
                    .collect(),
                Verb::Sub => queue::sub_allow(&host.flatten(), rules)
                    .iter()
                    .map(|e| format!("\"{}\"", fill(e)))
                    .collect(),
            };
            let deny: Vec<String> = if verb == Verb::Sub && m.sub_deny_guards {
                rules
                    .sub_guards()
                    .deny
                    .iter()
                    .map(|g| format!("\"{}\"", fill(&g.deny)))
                    .collect()
            } else {
                vec![]
            };
            let mut parts = vec![];
            if !items.is_empty() {
                parts.push(format!("\"allow\":[{}]", items.join(",")));
            }
            if !deny.is_empty() {
                parts.push(format!("\"deny\":[{}]", deny.join(",")));
            }
            format!("{{{}}}", parts.join(","))
        };
        let mut s = String::from("{");
        if m.expires {
            s.push_str("\"exp\":1893456000,");
        }
        s.push_str(&format!(
            "\"jti\":\"{}\",\"iat\":1893456000,\"iss\":\"{}\",\"name\":\"{}\",\"sub\":\"{}\",",
            "J".repeat(52),
            "A".repeat(56),
            host,
            "U".repeat(56)
        ));
        s.push_str(&format!(
            "\"nats\":{{\"pub\":{},\"sub\":{},\"subs\":-1,\"data\":-1,\"payload\":-1,",
            list(Verb::Pub),
            list(Verb::Sub)
        ));
        if m.issuer_account {
            s.push_str(&format!("\"issuer_account\":\"{}\",", "A".repeat(56)));
        }
        s.push_str("\"type\":\"user\",\"version\":2}}");
        s
    }

    #[test]
    fn claims_and_connect_sizes_match_the_literal_texts() {
        let host = h("calc.example");
        let rules = derive(&ServiceModel::new(host.clone()));
        for (expires, issuer_account, sub_deny_guards) in [
            (true, true, true),
            (false, false, false),
            (true, false, true),
        ] {
            let m = ConnectModel {
                expires,
                issuer_account,
                sub_deny_guards,
                ..ConnectModel::default()
            };
            let claims = literal_claims(&host, &rules, &m);
            let e = estimate(&host, &rules, &m);
            assert_eq!(e.claims_json, claims.len(), "{claims}");
            let jwt = base64url_len(JWT_HEADER.len())
                + base64url_len(claims.len())
                + base64url_len(64)
                + 2;
            assert_eq!(e.jwt, jwt);
            let connect = format!(
                "{{\"verbose\":false,\"pedantic\":false,\"jwt\":\"{}\",\"nkey\":null,\"sig\":\"{}\",\"name\":\"calc.example\",\"echo\":true,\"lang\":\"rust\",\"version\":\"{CLIENT_VERSION}\",\"protocol\":1,\"tls_required\":false,\"user\":null,\"pass\":null,\"auth_token\":null,\"headers\":true,\"no_responders\":true}}",
                "j".repeat(jwt),
                "s".repeat(86)
            );
            assert_eq!(e.connect, connect.len());
            assert!(e.fits());
        }
        let empty = estimate(&host, &RuleSet::new(), &ConnectModel::default());
        let claims = literal_claims(&host, &RuleSet::new(), &ConnectModel::default());
        assert_eq!(empty.claims_json, claims.len());
    }

    #[test]
    fn header_and_signature_encodings() {
        assert_eq!(base64url_len(JWT_HEADER.len()), 46);
        assert_eq!(base64url_len(64), 86);
        assert_eq!(base64url_len(0), 0);
        assert_eq!(base64url_len(1), 2);
        assert_eq!(base64url_len(2), 3);
        assert_eq!(base64url_len(3), 4);
    }

    #[test]
    fn go_escaping_costs_more_for_greater_than() {
        assert_eq!(json_escaped_len("a.>", JsonFlavor::SerdeJson), 3);
        assert_eq!(json_escaped_len("a.>", JsonFlavor::GoEncodingJson), 8);
        assert_eq!(json_escaped_len("\"\\\u{1}é", JsonFlavor::SerdeJson), 12);
    }

    #[test]
    fn over_budget_names_the_largest_rules() {
        let host = h("big.example");
        let mut rules = derive(&ServiceModel::new(host.clone()));
        let long = format!(
            "PUB {{{{plane}}}}.safe.443.big_example.x.*.GET.{}",
            "a".repeat(300)
        );
        rules.insert(Rule::parse(&long).unwrap());
        for i in 0..40 {
            rules.insert(
                Rule::parse(&format!(
                    "PUB {{{{plane}}}}.safe.443.big_example.dest{i}_example.*.POST.some-endpoint-{i}"
                ))
                .unwrap(),
            );
        }
        let e = estimate(&host, &rules, &ConnectModel::default());
        assert!(!e.fits() && e.headroom() < 0, "{}", e.connect);
        assert_eq!(e.largest(1)[0].rule.subject, &long[4..]);
        let Err(BudgetError::OverBudget {
            largest, connect, ..
        }) = check(&host, &rules, &ConnectModel::default())
        else {
            panic!("fits")
        };
        assert_eq!(connect, e.connect);
        assert_eq!(largest.len(), NAMED_CONTRIBUTORS);
        let msg = check(&host, &rules, &ConnectModel::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("max_control_line of 4096") && msg.contains("aaaa"),
            "{msg}"
        );
        let roomy = ConnectModel {
            max_control_line: 1 << 20,
            ..ConnectModel::default()
        };
        assert!(check(&host, &rules, &roomy).is_ok());
    }

    #[test]
    fn contributions_add_up_to_the_growth() {
        let host = h("calc.example");
        let base = derive(&ServiceModel::new(host.clone()));
        let m = ConnectModel::default();
        let before = estimate(&host, &base, &m);
        let mut more = base.clone();
        let rule = Rule::parse(&format!(
            "PUB {{{{plane}}}}.safe.443.calc_example.x.*.GET.{}",
            "p".repeat(120)
        ))
        .unwrap();
        more.insert(rule.clone());
        let after = estimate(&host, &more, &m);
        let share = after
            .contributors
            .iter()
            .find(|c| c.rule == rule)
            .unwrap()
            .bytes;
        let grown = after.connect - before.connect;
        assert!(grown.abs_diff(share) <= 2, "grew {grown}, share {share}");
    }
}
