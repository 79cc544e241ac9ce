//! The workspace policy, `buswarden.toml` at the root of a user's workspace:
//! which callers may hold which trust-root (`:666`) grants, which wildcard
//! grants are allowed, and which callers may call a `:666` endpoint on a
//! computed host. [`evaluate`] checks a service's rule set against it and
//! returns typed [`Violation`]s; `gencreds check` and `sign` refuse to
//! produce credentials while one stands.
//!
//! # Format
//!
//! ```toml
//! # buswarden.toml: reviewed like code; every trust-root and wildcard grant
//! # in the workspace is listed here.
//! version = 1
//!
//! # One table per calling service, keyed by its hostname.
//! [caller."ingress.core"]
//! # Trust-root (:666) endpoints this caller's code may call.
//! trust-root = [
//!   "POST access.token.core:666/mint",
//!   "bearer.token.core:666/mint",          # no method: any method
//! ]
//! # Wildcard grants this caller may hold: for_host(expr) calls (host `*`)
//! # and explicit escape-hatch grants, as endpoints or as full rules.
//! wildcards = [
//!   "GET *:443/{path...}",
//!   "PUB {{plane}}.safe.*.ingress_core.*.*.POST.>",
//! ]
//!
//! [caller."ops.console.example"]
//! trust-root = ["POST *:666/execute"]
//! # A computed host (for_host(expr)) on a :666 call; off unless set.
//! dynamic-trust-root = true
//! ```
//!
//! The `[edge]` table (the ingress's port firewall) and the `[public]` list
//! are described in [`crate::edge`].
//!
//! Keys: `version` (required, `1`), `edge`, `public` and `caller`, a table of tables keyed by
//! caller hostname, each with `trust-root` and `wildcards` (arrays of grant
//! strings, default empty) and `dynamic-trust-root` (boolean, default
//! false). Any other key is an [`PolicyError::UnknownKey`] with its line and
//! column; a value of the wrong type or a grant that does not parse is an
//! error at the value.
//!
//! A grant string is either
//! - an endpoint: `[METHOD ]HOST[:PORT][/PATH]`, `HOST` a hostname or `*`
//!   (any host), `PORT` a number (default 443; `0` or `*` is any port),
//!   `PATH` a route, required (`{arg}` one segment, a final `{arg...}` the
//!   rest, so `/{path...}` is every path),
//!   `METHOD` a method, `ANY` or `*` (no method: any method); or
//! - a rule exactly as in `nats.acl`: `PUB <subject>` / `SUB <subject>`, in
//!   the caller's own name.
//!
//! Each grant becomes a rule pattern for its caller; a rule of the caller's
//! rule set is listed when a grant of the right list covers it (same verb,
//! every subject the rule matches the grant matches too). `trust-root`
//! grants must be on port 666.
//!
//! # What is checked
//!
//! - A trust-root grant is a PUB rule that can reach a `danger` subject, or a
//!   SUB on another host's `danger` subjects (serving a trust root under
//!   someone else's name). Each must be covered by the caller's `trust-root`
//!   list ([`Violation::UnlistedTrustRootGrant`]); one whose destination is a
//!   wildcard also needs `dynamic-trust-root = true`
//!   ([`Violation::DynamicTrustRoot`]).
//! - A wildcard grant is any other PUB request rule with a wildcard in its
//!   port, destination or method token (a `>` reaching one of them counts),
//!   or a SUB with a wildcard destination. Path wildcards that come from
//!   declared route arguments are not wildcard grants. Each must be covered
//!   by the caller's `wildcards` list ([`Violation::UnlistedWildcardGrant`]).
//!
//! Without a policy file, [`evaluate_without_policy`] applies the defaults
//! of the conventions: a static `:666` grant and a wildcard grant are
//! warnings, a computed host on a `:666` call is an error.

use crate::derive::request_pattern;
use crate::edge::{Edge, EdgeError, Mode, PortRange, PublicEndpoint, PublicError};
use crate::hostname::{Hostname, HostnameError};
use crate::route::{Route, RouteError, TRUST_ROOT_PORT};
use crate::rule::{Rule, RuleError, RuleSet, Verb};
use crate::validate::{ValidationError, validate_rule};
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Largest policy file accepted, in bytes.
pub const MAX_POLICY_LEN: usize = 1024 * 1024;
/// The only `version` understood.
pub const POLICY_VERSION: i64 = 1;

const TOP_KEYS: &[&str] = &["version", "caller", "edge", "public"];
const EDGE_KEYS: &[&str] = &["ingress", "mode", "allowed-internal-ports"];
const PUBLIC_KEYS: &[&str] = &["endpoints"];
const CALLER_KEYS: &[&str] = &["trust-root", "wildcards", "dynamic-trust-root"];

/// A 1-based line and column (in characters) in the policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, counted in characters.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a grant string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The grant is empty.
    #[error("the grant is empty")]
    Empty,
    /// The method is invalid.
    #[error(transparent)]
    Method(RouteError),
    /// The host is neither `*` nor a valid hostname.
    #[error("host: {0}")]
    Host(#[source] HostnameError),
    /// The port or path is invalid.
    #[error(transparent)]
    Route(RouteError),
    /// The part after the host is neither `:PORT…` nor `/PATH`.
    #[error("expected ':PORT' or '/PATH' after the host, found {found:?}")]
    AfterHost {
        /// What follows the host.
        found: String,
    },
    /// An endpoint grant without a path.
    #[error("the grant names no path; write one (`/{{path...}}` for every path)")]
    NoPath,
    /// A rule-form grant does not parse.
    #[error(transparent)]
    Rule(RuleError),
    /// A rule-form grant is not a valid rule for this caller.
    #[error(transparent)]
    Invalid(Box<ValidationError>),
    /// A `trust-root` grant that is not on port 666.
    #[error("a trust-root grant must be on port 666 (the 'danger' trust segment)")]
    NotTrustRoot,
}

/// Why a policy file was refused. Every variant carries where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file is larger than [`MAX_POLICY_LEN`].
    #[error("buswarden.toml is {len} bytes, larger than the {MAX_POLICY_LEN} allowed")]
    TooLarge {
        /// Size in bytes.
        len: usize,
    },
    /// The text is not TOML.
    #[error("{at}: {message}")]
    Syntax {
        /// What the TOML parser said.
        message: String,
        /// Where.
        at: Location,
    },
    /// A key the format does not define.
    #[error("{at}: unknown key {key:?} in {table}; expected one of: {}", expected.join(", "))]
    UnknownKey {
        /// The key.
        key: String,
        /// The table it is in (`top level` or `caller."<host>"`).
        table: String,
        /// The keys allowed there.
        expected: &'static [&'static str],
        /// Where.
        at: Location,
    },
    /// A required key is missing.
    #[error("{at}: missing key {key:?}")]
    MissingKey {
        /// The key.
        key: &'static str,
        /// Where (the start of the file).
        at: Location,
    },
    /// A value of the wrong type.
    #[error("{at}: {key} must be {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// The type wanted.
        expected: &'static str,
        /// The type found.
        found: &'static str,
        /// Where.
        at: Location,
    },
    /// A `version` other than 1.
    #[error(
        "{at}: version {version} is not supported; this buswarden reads version {POLICY_VERSION}"
    )]
    UnsupportedVersion {
        /// The version found.
        version: String,
        /// Where.
        at: Location,
    },
    /// A caller key that is not a valid hostname.
    #[error("{at}: caller {caller:?}: {source}")]
    BadCaller {
        /// The key.
        caller: String,
        /// What is wrong.
        source: HostnameError,
        /// Where.
        at: Location,
    },
    /// An `[edge]` value that is refused.
    #[error("{at}: edge.{key}: {source}")]
    BadEdge {
        /// The key.
        key: &'static str,
        /// What is wrong.
        source: EdgeError,
        /// Where.
        at: Location,
    },
    /// A `[public]` entry that does not parse.
    #[error("{at}: public endpoint {entry:?}: {source}")]
    BadPublic {
        /// The entry as written.
        entry: String,
        /// What is wrong.
        source: PublicError,
        /// Where.
        at: Location,
    },
    /// A grant string that does not parse.
    #[error("{at}: grant {grant:?}: {source}")]
    BadGrant {
        /// The grant as written.
        grant: String,
        /// What is wrong.
        source: GrantError,
        /// Where.
        at: Location,
    },
}

impl PolicyError {
    /// Where in the file the error is (`None` for [`PolicyError::TooLarge`]).
    pub fn location(&self) -> Option<Location> {
        match self {
            PolicyError::TooLarge { .. } => None,
            PolicyError::Syntax { at, .. }
            | PolicyError::UnknownKey { at, .. }
            | PolicyError::MissingKey { at, .. }
            | PolicyError::WrongType { at, .. }
            | PolicyError::UnsupportedVersion { at, .. }
            | PolicyError::BadCaller { at, .. }
            | PolicyError::BadGrant { at, .. }
            | PolicyError::BadEdge { at, .. }
            | PolicyError::BadPublic { at, .. } => Some(*at),
        }
    }
}

/// One allowed grant of a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The grant as written in the file.
    pub text: String,
    /// The rule pattern it allows, in the caller's name.
    pub rule: Rule,
    /// Where it is written.
    pub at: Location,
}

/// What one caller may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerPolicy {
    /// Trust-root grants it may hold.
    pub trust_root: Vec<Grant>,
    /// Wildcard grants it may hold.
    pub wildcards: Vec<Grant>,
    /// Whether it may call a `:666` endpoint on a computed host.
    pub dynamic_trust_root: bool,
}

/// One `[public]` entry with where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Public {
    /// The entry as written.
    pub text: String,
    /// The endpoint it names.
    pub endpoint: PublicEndpoint,
    /// Where it is written.
    pub at: Location,
}

/// A parsed `buswarden.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The callers, by hostname.
    pub callers: BTreeMap<Hostname, CallerPolicy>,
    /// The `[edge]` table, when present.
    pub edge: Option<Edge>,
    /// The `[public]` list, when present (`None`: no list, nothing checked).
    pub public: Option<Vec<Public>>,
}

/// A rule of a caller's rule set the policy does not allow. Serializes as
/// `{"code": "<code>", "caller": "<host>", "rule": "PUB <subject>"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Violation {
    /// A trust-root grant not listed under the caller's `trust-root`.
    #[error(
        "{caller}: trust-root grant `{rule}` is not listed in buswarden.toml under [caller.\"{caller}\"] trust-root"
    )]
    UnlistedTrustRootGrant {
        /// The caller.
        caller: Hostname,
        /// The rule.
        rule: Rule,
    },
    /// A wildcard grant not listed under the caller's `wildcards`.
    #[error(
        "{caller}: wildcard grant `{rule}` is not listed in buswarden.toml under [caller.\"{caller}\"] wildcards"
    )]
    UnlistedWildcardGrant {
        /// The caller.
        caller: Hostname,
        /// The rule.
        rule: Rule,
    },
    /// A `:666` call on a computed host without `dynamic-trust-root = true`.
    #[error(
        "{caller}: `{rule}` calls a trust-root endpoint on a computed host; set dynamic-trust-root = true for this caller in buswarden.toml if that is intended"
    )]
    DynamicTrustRoot {
        /// The caller.
        caller: Hostname,
        /// The rule.
        rule: Rule,
    },
}

impl Violation {
    /// A stable kebab-case code for machine output.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::UnlistedTrustRootGrant { .. } => "unlisted-trust-root-grant",
            Violation::UnlistedWildcardGrant { .. } => "unlisted-wildcard-grant",
            Violation::DynamicTrustRoot { .. } => "dynamic-trust-root",
        }
    }

    /// The offending rule.
    pub fn rule(&self) -> &Rule {
        match self {
            Violation::UnlistedTrustRootGrant { rule, .. }
            | Violation::UnlistedWildcardGrant { rule, .. }
            | Violation::DynamicTrustRoot { rule, .. } => rule,
        }
    }
}

/// How serious a finding is when no policy file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Reported; credentials are still produced.
    Warning,
    /// Credentials are refused.
    Error,
}

/// A finding of [`evaluate_without_policy`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Warning or error.
    pub severity: Severity,
    /// What was found.
    pub violation: Violation,
}

fn is_wild(t: &str) -> bool {
    t == "*" || t == ">"
}

/// The token at `i`, or `>` when an earlier `>` already covers it.
fn token_at<'a>(tokens: &[&'a str], i: usize) -> Option<&'a str> {
    match tokens.get(i) {
        Some(t) => Some(t),
        None if tokens.last() == Some(&">") => Some(">"),
        None => None,
    }
}

fn request_trust_can_be_danger(tokens: &[&str]) -> bool {
    matches!(token_at(tokens, 1), Some("danger" | "*" | ">"))
}

/// Whether `rule` is a trust-root grant for the service `me` (flattened).
pub fn is_trust_root_grant(me: &str, rule: &Rule) -> bool {
    let t: Vec<&str> = rule.tokens().collect();
    if !request_trust_can_be_danger(&t) {
        return false;
    }
    match rule.verb {
        Verb::Pub => true,
        Verb::Sub => token_at(&t, 4).is_none_or(|dest| dest != me),
    }
}

/// Whether `rule` is a wildcard grant (see the module doc).
pub fn is_wildcard_grant(rule: &Rule) -> bool {
    let t: Vec<&str> = rule.tokens().collect();
    if token_at(&t, 1) == Some("reply") {
        return false;
    }
    let wild_at = |i| token_at(&t, i).is_some_and(is_wild);
    match rule.verb {
        Verb::Pub => wild_at(1) || wild_at(2) || wild_at(4) || wild_at(6),
        Verb::Sub => wild_at(4),
    }
}

fn is_dynamic(rule: &Rule) -> bool {
    let t: Vec<&str> = rule.tokens().collect();
    rule.verb == Verb::Pub && token_at(&t, 4).is_some_and(is_wild)
}

/// Checks `rules`, the rule set of `caller`, against `policy`.
pub fn evaluate(policy: &Policy, caller: &Hostname, rules: &RuleSet) -> Vec<Violation> {
    let empty = CallerPolicy::default();
    let allowed = policy.callers.get(caller).unwrap_or(&empty);
    let me = caller.flatten();
    let covered = |grants: &[Grant], rule: &Rule| grants.iter().any(|g| g.rule.covers(rule));
    let mut out = Vec::new();
    for rule in rules {
        let v = |make: fn(Hostname, Rule) -> Violation| make(caller.clone(), rule.clone());
        if is_trust_root_grant(&me, rule) {
            if is_dynamic(rule) && !allowed.dynamic_trust_root {
                out.push(v(|caller, rule| Violation::DynamicTrustRoot {
                    caller,
                    rule,
                }));
            }
            if !covered(&allowed.trust_root, rule) {
                out.push(v(|caller, rule| Violation::UnlistedTrustRootGrant {
                    caller,
                    rule,
                }));
            }
        } else if is_wildcard_grant(rule) && !covered(&allowed.wildcards, rule) {
            out.push(v(|caller, rule| Violation::UnlistedWildcardGrant {
                caller,
                rule,
            }));
        }
    }
    out
}

/// The conventions' defaults when the workspace has no `buswarden.toml`: a
/// static trust-root grant and a wildcard grant are warnings, a computed host
/// on a `:666` call is an error.
pub fn evaluate_without_policy(caller: &Hostname, rules: &RuleSet) -> Vec<Finding> {
    evaluate(&Policy::default(), caller, rules)
        .into_iter()
        .map(|violation| Finding {
            severity: match violation {
                Violation::DynamicTrustRoot { .. } => Severity::Error,
                _ => Severity::Warning,
            },
            violation,
        })
        .collect()
}

/// The two grant lists of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantList {
    /// `trust-root`: every grant on port 666.
    TrustRoot,
    /// `wildcards`.
    Wildcards,
}

/// Parses one grant string of `list` for `caller` into the rule pattern it
/// allows.
pub fn parse_grant(caller: &Hostname, text: &str, list: GrantList) -> Result<Rule, GrantError> {
    grant_rule(caller, text, list)
}

fn grant_rule(caller: &Hostname, text: &str, list: GrantList) -> Result<Rule, GrantError> {
    let me = caller.flatten();
    if text.starts_with("PUB ") || text.starts_with("SUB ") {
        let rule = Rule::parse(text).map_err(GrantError::Rule)?;
        validate_rule(&me, &rule).map_err(|e| GrantError::Invalid(Box::new(e)))?;
        if list == GrantList::TrustRoot && !rule.is_danger() {
            return Err(GrantError::NotTrustRoot);
        }
        return Ok(rule);
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(GrantError::Empty);
    }
    let (method, target) = crate::edge::split_method(text).map_err(GrantError::Method)?;
    let host_end = target.find([':', '/']).unwrap_or(target.len());
    let (host, rest) = target.split_at(host_end);
    let dest = if host == "*" {
        "*".to_string()
    } else {
        Hostname::parse(host).map_err(GrantError::Host)?.flatten()
    };
    if rest.starts_with("//") {
        return Err(GrantError::AfterHost {
            found: rest.to_string(),
        });
    }
    if !rest.contains('/') {
        return Err(GrantError::NoPath);
    }
    let rest = match rest.strip_prefix(":*") {
        Some(path) => format!(":0{path}"),
        None => rest.to_string(),
    };
    let route = Route::parse(&rest).map_err(GrantError::Route)?;
    if list == GrantList::TrustRoot && route.port != TRUST_ROOT_PORT {
        return Err(GrantError::NotTrustRoot);
    }
    let method = method.as_ref().map_or("*", |m| m.as_str());
    let subject = request_pattern(route.port, &me, &dest, method, &route);
    Rule::new(Verb::Pub, subject).map_err(GrantError::Rule)
}

/// Collects errors while walking the TOML tree.
struct Walker<'t> {
    text: &'t str,
    errors: Vec<(usize, PolicyError)>,
}

impl Walker<'_> {
    fn at(&self, offset: usize) -> Location {
        Location::of_offset(self.text, offset)
    }

    fn push(&mut self, offset: usize, e: PolicyError) {
        self.errors.push((offset, e));
    }

    fn wrong_type(&mut self, key: String, expected: &'static str, v: &Spanned<DeValue<'_>>) {
        let at = self.at(v.span().start);
        self.push(
            v.span().start,
            PolicyError::WrongType {
                key,
                expected,
                found: v.get_ref().type_str(),
                at,
            },
        );
    }

    fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        table: String,
        expected: &'static [&'static str],
    ) {
        let at = self.at(key.span().start);
        self.push(
            key.span().start,
            PolicyError::UnknownKey {
                key: key.get_ref().to_string(),
                table,
                expected,
                at,
            },
        );
    }

    fn version(&mut self, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let ok = i64::from_str_radix(i.as_str(), i.radix()) == Ok(POLICY_VERSION);
                if !ok {
                    let at = self.at(v.span().start);
                    self.push(
                        v.span().start,
                        PolicyError::UnsupportedVersion {
                            version: i.to_string(),
                            at,
                        },
                    );
                }
            }
            _ => self.wrong_type("version".into(), "an integer", v),
        }
    }

    fn grants(
        &mut self,
        caller: &Hostname,
        key: &str,
        v: &Spanned<DeValue<'_>>,
        list: GrantList,
    ) -> Vec<Grant> {
        let Some(items) = v.get_ref().as_array() else {
            self.wrong_type(key.to_string(), "an array of strings", v);
            return vec![];
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let Some(text) = item.get_ref().as_str() else {
                self.wrong_type(format!("an item of {key}"), "a string", item);
                continue;
            };
            let at = self.at(item.span().start);
            match grant_rule(caller, text, list) {
                Ok(rule) => out.push(Grant {
                    text: text.to_string(),
                    rule,
                    at,
                }),
                Err(source) => self.push(
                    item.span().start,
                    PolicyError::BadGrant {
                        grant: text.to_string(),
                        source,
                        at,
                    },
                ),
            }
        }
        out
    }

    fn caller(&mut self, caller: &Hostname, table: &DeTable<'_>) -> CallerPolicy {
        let mut policy = CallerPolicy::default();
        for (k, v) in table.iter() {
            match k.get_ref().as_ref() {
                "trust-root" => {
                    policy.trust_root = self.grants(caller, "trust-root", v, GrantList::TrustRoot)
                }
                "wildcards" => {
                    policy.wildcards = self.grants(caller, "wildcards", v, GrantList::Wildcards)
                }
                "dynamic-trust-root" => match v.get_ref().as_bool() {
                    Some(b) => policy.dynamic_trust_root = b,
                    None => self.wrong_type("dynamic-trust-root".into(), "a boolean", v),
                },
                _ => self.unknown(k, format!("caller.\"{caller}\""), CALLER_KEYS),
            }
        }
        policy
    }

    fn edge_error(&mut self, key: &'static str, v: &Spanned<DeValue<'_>>, source: EdgeError) {
        let at = self.at(v.span().start);
        self.push(v.span().start, PolicyError::BadEdge { key, source, at });
    }

    fn edge(&mut self, v: &Spanned<DeValue<'_>>) -> Option<Edge> {
        let Some(table) = v.get_ref().as_table() else {
            self.wrong_type("edge".into(), "a table", v);
            return None;
        };
        let mut edge = Edge::default();
        for (k, v) in table.iter() {
            match k.get_ref().as_ref() {
                "ingress" => match v.get_ref().as_str() {
                    Some(h) => match Hostname::parse_exact(h) {
                        Ok(h) => edge.ingress = h,
                        Err(e) => self.edge_error("ingress", v, EdgeError::Ingress(e)),
                    },
                    None => self.wrong_type("edge.ingress".into(), "a string", v),
                },
                "mode" => match v.get_ref().as_str() {
                    Some(m) => match Mode::parse(m) {
                        Ok(m) => edge.mode = m,
                        Err(e) => self.edge_error("mode", v, e),
                    },
                    None => self.wrong_type("edge.mode".into(), "a string", v),
                },
                "allowed-internal-ports" => {
                    let Some(items) = v.get_ref().as_array() else {
                        self.wrong_type(
                            "edge.allowed-internal-ports".into(),
                            "an array of ports and \"first-last\" ranges",
                            v,
                        );
                        continue;
                    };
                    for item in items.iter() {
                        let parsed = match item.get_ref() {
                            DeValue::Integer(i) => {
                                match i64::from_str_radix(i.as_str(), i.radix())
                                    .ok()
                                    .and_then(|p| u16::try_from(p).ok())
                                {
                                    Some(p) => PortRange::new(p, p),
                                    None => Err(EdgeError::BadPort {
                                        text: i.to_string(),
                                    }),
                                }
                            }
                            DeValue::String(s) => PortRange::parse(s),
                            _ => {
                                self.wrong_type(
                                    "an item of edge.allowed-internal-ports".into(),
                                    "a port or a \"first-last\" string",
                                    item,
                                );
                                continue;
                            }
                        };
                        match parsed {
                            Ok(r) => edge.allowed_internal_ports.push(r),
                            Err(e) => self.edge_error("allowed-internal-ports", item, e),
                        }
                    }
                }
                _ => self.unknown(k, "edge".into(), EDGE_KEYS),
            }
        }
        Some(edge)
    }

    fn public(&mut self, v: &Spanned<DeValue<'_>>) -> Option<Vec<Public>> {
        let Some(table) = v.get_ref().as_table() else {
            self.wrong_type("public".into(), "a table", v);
            return None;
        };
        let mut out = vec![];
        for (k, v) in table.iter() {
            if k.get_ref().as_ref() != "endpoints" {
                self.unknown(k, "public".into(), PUBLIC_KEYS);
                continue;
            }
            let Some(items) = v.get_ref().as_array() else {
                self.wrong_type("public.endpoints".into(), "an array of strings", v);
                continue;
            };
            for item in items.iter() {
                let Some(text) = item.get_ref().as_str() else {
                    self.wrong_type("an item of public.endpoints".into(), "a string", item);
                    continue;
                };
                let at = self.at(item.span().start);
                match PublicEndpoint::parse(text) {
                    Ok(endpoint) => out.push(Public {
                        text: text.to_string(),
                        endpoint,
                        at,
                    }),
                    Err(source) => self.push(
                        item.span().start,
                        PolicyError::BadPublic {
                            entry: text.to_string(),
                            source,
                            at,
                        },
                    ),
                }
            }
        }
        Some(out)
    }

    fn callers(&mut self, v: &Spanned<DeValue<'_>>) -> BTreeMap<Hostname, CallerPolicy> {
        let mut out = BTreeMap::new();
        let Some(table) = v.get_ref().as_table() else {
            self.wrong_type("caller".into(), "a table of caller tables", v);
            return out;
        };
        for (k, cv) in table.iter() {
            let name = k.get_ref().as_ref();
            let caller = match Hostname::parse_exact(name) {
                Ok(h) => h,
                Err(source) => {
                    let at = self.at(k.span().start);
                    self.push(
                        k.span().start,
                        PolicyError::BadCaller {
                            caller: name.to_string(),
                            source,
                            at,
                        },
                    );
                    continue;
                }
            };
            let Some(ct) = cv.get_ref().as_table() else {
                self.wrong_type(format!("caller.\"{caller}\""), "a table", cv);
                continue;
            };
            let policy = self.caller(&caller, ct);
            out.insert(caller, policy);
        }
        out
    }
}

impl Policy {
    /// Parses a `buswarden.toml`. The first error in file order is returned.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_all(text).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Parses a `buswarden.toml`, returning every error in file order.
    pub fn parse_all(text: &str) -> Result<Policy, Vec<PolicyError>> {
        if text.len() > MAX_POLICY_LEN {
            return Err(vec![PolicyError::TooLarge { len: text.len() }]);
        }
        let doc = DeTable::parse(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            vec![PolicyError::Syntax {
                message: e.message().to_string(),
                at: Location::of_offset(text, offset),
            }]
        })?;
        let mut w = Walker {
            text,
            errors: vec![],
        };
        let mut policy = Policy::default();
        let mut version_seen = false;
        for (k, v) in doc.get_ref().iter() {
            match k.get_ref().as_ref() {
                "version" => {
                    version_seen = true;
                    w.version(v);
                }
                "caller" => policy.callers = w.callers(v),
                "edge" => policy.edge = w.edge(v),
                "public" => policy.public = w.public(v),
                _ => w.unknown(k, "the top level".into(), TOP_KEYS),
            }
        }
        if !version_seen {
            w.push(
                0,
                PolicyError::MissingKey {
                    key: "version",
                    at: Location { line: 1, column: 1 },
                },
            );
        }
        if w.errors.is_empty() {
            Ok(policy)
        } else {
            w.errors.sort_by_key(|(offset, _)| *offset);
            Err(w.errors.into_iter().map(|(_, e)| e).collect())
        }
    }

    /// What `caller` may hold (empty when the file does not name it).
    pub fn caller(&self, caller: &Hostname) -> Option<&CallerPolicy> {
        self.callers.get(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::{Call, Dest, ServiceModel, derive};
    use crate::route::Method;

    /// The example in this module's doc, extracted from the source so the
    /// documentation cannot drift from the parser.
    fn doc_example() -> String {
        let src = include_str!("policy.rs");
        let mut out = String::new();
        let mut inside = false;
        for line in src.lines() {
            let Some(doc) = line.strip_prefix("//!") else {
                continue;
            };
            let doc = doc.strip_prefix(' ').unwrap_or(doc);
            if doc == "```toml" {
                inside = true;
            } else if inside && doc == "```" {
                break;
            } else if inside {
                out.push_str(doc);
                out.push('\n');
            }
        }
        assert!(out.contains("[caller."), "{out}");
        out
    }

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }
    fn call(dest: Dest, method: &str, route: &str) -> Call {
        Call {
            dest,
            method: Method::parse(method).unwrap(),
            route: Route::parse(route).unwrap(),
        }
    }

    #[test]
    fn the_documented_example_parses_and_allows_what_it_says() {
        let policy = Policy::parse(&doc_example()).unwrap();
        let ingress = h("ingress.core");
        let grants = &policy.caller(&ingress).unwrap().trust_root;
        assert_eq!(
            grants[0].rule.to_string(),
            "PUB {{plane}}.danger.666.ingress_core.access_token_core.*.POST.mint"
        );
        assert_eq!(
            grants[1].rule.to_string(),
            "PUB {{plane}}.danger.666.ingress_core.bearer_token_core.*.*.mint"
        );
        assert_eq!(grants[0].at, Location { line: 9, column: 3 });
        let mut model = ServiceModel::new(ingress.clone());
        model.calls.push(call(
            Dest::Host(h("access.token.core")),
            "POST",
            ":666/mint",
        ));
        model.calls.push(call(
            Dest::Host(h("bearer.token.core")),
            "POST",
            ":666/mint",
        ));
        model.calls.push(call(Dest::Any, "GET", "/{path...}"));
        let rules = derive(&model);
        assert_eq!(evaluate(&policy, &ingress, &rules), vec![]);

        // The same calls by a service the policy does not name.
        let mut other = model.clone();
        other.hostname = h("rogue.example");
        let v = evaluate(&policy, &other.hostname, &derive(&other));
        let codes: Vec<&str> = v.iter().map(Violation::code).collect();
        assert_eq!(
            codes,
            [
                "unlisted-trust-root-grant",
                "unlisted-trust-root-grant",
                "unlisted-wildcard-grant"
            ]
        );

        // A trust-root call the policy does not list, a wider wildcard.
        model
            .calls
            .push(call(Dest::Host(h("shell.core")), "POST", ":666/execute"));
        model.calls.push(call(Dest::Any, "GET", ":444/{path...}"));
        let v = evaluate(&policy, &ingress, &derive(&model));
        let got: Vec<String> = v
            .iter()
            .map(|v| format!("{} {}", v.code(), v.rule()))
            .collect();
        assert_eq!(
            got,
            [
                "unlisted-trust-root-grant PUB {{plane}}.danger.666.ingress_core.shell_core.*.POST.execute",
                "unlisted-wildcard-grant PUB {{plane}}.safe.444.ingress_core.*.*.GET.>",
            ]
        );
    }

    #[test]
    fn violations_serialize_with_their_code() {
        let v = Violation::UnlistedTrustRootGrant {
            caller: h("a.example"),
            rule: Rule::parse("PUB {{plane}}.danger.666.a_example.t.*.POST.mint").unwrap(),
        };
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"code":"unlisted-trust-root-grant","caller":"a.example","rule":"PUB {{plane}}.danger.666.a_example.t.*.POST.mint"}"#
        );
        let f = Finding {
            severity: Severity::Warning,
            violation: v,
        };
        assert!(
            serde_json::to_string(&f)
                .unwrap()
                .starts_with(r#"{"severity":"warning","#)
        );
        let rule: Rule = serde_json::from_str(r#""SUB {{plane}}.a""#).unwrap();
        assert_eq!(rule.verb, Verb::Sub);
        assert!(serde_json::from_str::<Rule>(r#""GRANT x""#).is_err());
    }

    #[test]
    fn dynamic_trust_root_needs_the_opt_in() {
        let policy = Policy::parse(&doc_example()).unwrap();
        let ops = h("ops.console.example");
        let mut model = ServiceModel::new(ops.clone());
        model.calls.push(call(Dest::Any, "POST", ":666/execute"));
        assert_eq!(evaluate(&policy, &ops, &derive(&model)), vec![]);

        let text = doc_example().replace("dynamic-trust-root = true", "dynamic-trust-root = false");
        let strict = Policy::parse(&text).unwrap();
        let v = evaluate(&strict, &ops, &derive(&model));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].code(), "dynamic-trust-root");

        let findings = evaluate_without_policy(&ops, &derive(&model));
        let got: Vec<(Severity, &str)> = findings
            .iter()
            .map(|f| (f.severity, f.violation.code()))
            .collect();
        assert_eq!(
            got,
            [
                (Severity::Error, "dynamic-trust-root"),
                (Severity::Warning, "unlisted-trust-root-grant")
            ]
        );
    }

    #[test]
    fn foreign_danger_subscriptions_are_trust_root_grants() {
        let me = "svc_example";
        let own = Rule::parse("SUB {{plane}}.danger.666.*.svc_example.>").unwrap();
        let foreign =
            Rule::parse("SUB {{plane}}.danger.666.*.access_token_core.*.POST.mint").unwrap();
        assert!(!is_trust_root_grant(me, &own));
        assert!(is_trust_root_grant(me, &foreign));
        let wide = Rule::parse("PUB {{plane}}.>").unwrap();
        assert!(is_trust_root_grant(me, &wide));
        for (rule, wild) in [
            ("PUB {{plane}}.safe.443.svc_example.x.*.GET.a.*", false),
            ("PUB {{plane}}.safe.443.svc_example.x.*.GET.>", false),
            ("PUB {{plane}}.safe.*.svc_example.x.*.GET.a", true),
            ("PUB {{plane}}.safe.443.svc_example.*.*.GET.a", true),
            ("PUB {{plane}}.safe.443.svc_example.x.*.*.a", true),
            ("PUB {{plane}}.safe.443.svc_example.x.>", true),
            ("PUB {{plane}}.reply._.svc_example.>", false),
            ("SUB {{plane}}.safe.*.*.svc_example.>", false),
            ("SUB {{plane}}.safe.*.*.*.>", true),
        ] {
            assert_eq!(
                is_wildcard_grant(&Rule::parse(rule).unwrap()),
                wild,
                "{rule}"
            );
        }
    }

    #[test]
    fn grant_forms() {
        let c = h("ingress.core");
        let g = |s: &str, trust_root: bool| {
            let list = if trust_root {
                GrantList::TrustRoot
            } else {
                GrantList::Wildcards
            };
            parse_grant(&c, s, list).map(|r| r.to_string())
        };
        assert_eq!(
            g("x.example:0/a/{b}", false).unwrap(),
            "PUB {{plane}}.safe.*.ingress_core.x_example.*.*.a.*"
        );
        assert_eq!(
            g("ANY *:*/{p...}", false).unwrap(),
            "PUB {{plane}}.safe.*.ingress_core.*.*.*.>"
        );
        assert_eq!(
            g("delete x.example/a", false).unwrap(),
            "PUB {{plane}}.safe.443.ingress_core.x_example.*.DELETE.a"
        );
        assert_eq!(g("", false), Err(GrantError::Empty));
        assert_eq!(g("*:443", false), Err(GrantError::NoPath));
        assert_eq!(g("x.example", false), Err(GrantError::NoPath));
        assert!(matches!(
            g("G-T x.example/a", false),
            Err(GrantError::Method(_))
        ));
        assert!(matches!(g("x_y:666/a", true), Err(GrantError::Host(_))));
        assert!(matches!(
            g("x.example:99999/a", true),
            Err(GrantError::Route(_))
        ));
        assert!(matches!(
            g("x.example//y/a", true),
            Err(GrantError::AfterHost { .. })
        ));
        assert_eq!(g("x.example:443/a", true), Err(GrantError::NotTrustRoot));
        assert_eq!(
            g("PUB {{plane}}.safe.443.ingress_core.x.*.GET.a", true),
            Err(GrantError::NotTrustRoot)
        );
        assert!(matches!(g("PUB a..b", false), Err(GrantError::Rule(_))));
        assert!(matches!(
            g("PUB {{plane}}.safe.443.other.x.*.GET.a", false),
            Err(GrantError::Invalid(_))
        ));
    }

    #[test]
    fn errors_point_into_the_file() {
        let err = |text: &str| Policy::parse(text).unwrap_err();
        let e = err("version = 1\n[caller.\"a.example\"]\ntrust-roots = []\n");
        assert_eq!(
            e,
            PolicyError::UnknownKey {
                key: "trust-roots".into(),
                table: "caller.\"a.example\"".into(),
                expected: CALLER_KEYS,
                at: Location { line: 3, column: 1 },
            }
        );
        assert!(
            e.to_string()
                .starts_with("3:1: unknown key \"trust-roots\""),
            "{e}"
        );
        let e = err("version = 1\nzone = 2\n");
        assert!(matches!(
            e,
            PolicyError::UnknownKey {
                at: Location { line: 2, column: 1 },
                ..
            }
        ));
        let e = err("version = 2\n");
        assert!(matches!(
            e,
            PolicyError::UnsupportedVersion {
                at: Location {
                    line: 1,
                    column: 11
                },
                ..
            }
        ));
        assert!(matches!(
            err("[caller]\n"),
            PolicyError::MissingKey { key: "version", .. }
        ));
        let e = err("version = 1\n[caller.\"a.example\"]\ndynamic-trust-root = \"yes\"\n");
        assert!(matches!(
            e,
            PolicyError::WrongType {
                found: "string",
                at: Location {
                    line: 3,
                    column: 22
                },
                ..
            }
        ));
        let e = err(
            "version = 1\n[caller.\"a.example\"]\ntrust-root = [\n  \"access.token.core:666/mint\",\n  \"é.x:666/m\",\n]\n",
        );
        assert!(matches!(
            e,
            PolicyError::BadGrant {
                source: GrantError::Host(_),
                at: Location { line: 5, column: 3 },
                ..
            }
        ));
        let e = err("version = 1\ntrust-root = [1]\n[caller.\"a.example\"]\ntrust-root = [1]\n");
        assert!(matches!(
            e,
            PolicyError::UnknownKey {
                at: Location { line: 2, column: 1 },
                ..
            }
        ));
        let e = err("version = 1\n[caller.\"a.example\"]\ntrust-root = [1]\n");
        assert!(matches!(
            e,
            PolicyError::WrongType {
                found: "integer",
                ..
            }
        ));
        let e = err("version = 1\n[caller.\"A_B\"]\n");
        assert!(matches!(
            e,
            PolicyError::BadCaller {
                at: Location { line: 2, column: 9 },
                ..
            }
        ));
        let e = err("version = 1\n[caller.\"Up.example\"]\n");
        assert!(matches!(e, PolicyError::BadCaller { .. }));
        let e = err("version = 1\n[caller\n");
        assert!(matches!(
            e,
            PolicyError::Syntax {
                at: Location { line: 2, .. },
                ..
            }
        ));
        let e = err("version = 1\ncaller = 3\n");
        assert!(matches!(e, PolicyError::WrongType { .. }));
        let all = Policy::parse_all("x = 1\nversion = 1\ny = 2\n").unwrap_err();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].location().unwrap().line, 1);
        assert_eq!(all[1].location().unwrap().line, 3);
        assert!(matches!(
            err(&" ".repeat(MAX_POLICY_LEN + 1)),
            PolicyError::TooLarge { .. }
        ));
    }

    #[test]
    fn locations_count_characters() {
        assert_eq!(
            Location::of_offset("ab\ncé d", 6),
            Location { line: 2, column: 3 }
        );
        assert_eq!(Location::of_offset("é", 1), Location { line: 1, column: 1 });
        assert_eq!(Location::of_offset("", 10), Location { line: 1, column: 1 });
    }
}

#[cfg(test)]
mod edge_tests {
    use super::*;

    #[test]
    fn edge_and_public_tables_parse_with_defaults() {
        let p = Policy::parse(
            "version = 1\n[edge]\nallowed-internal-ports = [8080, \"9000-9099\"]\n[public]\nendpoints = [\"GET catalog.example/items/{id}\"]\n",
        )
        .unwrap();
        let edge = p.edge.unwrap();
        assert_eq!(edge.ingress.as_str(), crate::edge::DEFAULT_INGRESS);
        assert_eq!(edge.mode, Mode::Prod);
        assert!(edge.admits(9050) && !edge.admits(444));
        let public = p.public.unwrap();
        assert_eq!(public.len(), 1);
        assert_eq!(
            public[0].at,
            Location {
                line: 5,
                column: 14
            }
        );
        assert!(Policy::parse("version = 1\n").unwrap().edge.is_none());
    }

    #[test]
    fn an_edge_opening_666_or_888_is_refused_at_its_line() {
        for (ports, port) in [("[666]", 666), ("[\"880-890\"]", 888)] {
            let text =
                format!("version = 1\n[edge]\nmode = \"lab\"\nallowed-internal-ports = {ports}\n");
            let errors = Policy::parse_all(&text).unwrap_err();
            assert_eq!(errors.len(), 1, "{errors:?}");
            match &errors[0] {
                PolicyError::BadEdge {
                    key: "allowed-internal-ports",
                    source: EdgeError::NeverOpen { port: p },
                    at,
                } => {
                    assert_eq!(*p, port);
                    assert_eq!(at.line, 4);
                }
                other => panic!("{other:?}"),
            }
        }
        for bad in [
            "[edge]\nmode = \"production\"\n",
            "[edge]\nmode = 3\n",
            "[edge]\ningress = \"*.x\"\n",
            "[edge]\nports = [1]\n",
            "[edge]\nallowed-internal-ports = [70000]\n",
            "[edge]\nallowed-internal-ports = [-1]\n",
            "[edge]\nallowed-internal-ports = [true]\n",
            "edge = 1\n",
            "[public]\nendpoints = [\"GET /x\"]\n",
            "[public]\nlist = []\n",
            "[public]\nendpoints = [1]\n",
        ] {
            let text = format!("version = 1\n{bad}");
            let errors = Policy::parse_all(&text).unwrap_err();
            assert!(
                errors
                    .iter()
                    .all(|e| e.location().is_some_and(|l| l.line >= 2)),
                "{bad:?}: {errors:?}"
            );
        }
    }
}
