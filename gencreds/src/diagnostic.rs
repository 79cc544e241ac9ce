//! Diagnostics: the stable codes, their severities, and one finding with its
//! file, line, column, source line and a message that says how to fix it.
//!
//! Codes are part of the user-facing contract (CI configurations and SARIF
//! consumers key on them): add new ones, never rename.

use serde::Serialize;
use std::fmt;

/// How bad a finding is. Errors block `scan` from writing, and `check`
/// and `sign` from passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks credentials.
    Error,
    /// Reported; does not block.
    Warning,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $name:literal, $sev:ident, $desc:literal;)*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $(#[doc = $desc] $variant,)*
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The kebab-case name.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The default severity.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            /// One sentence on what the code means.
            pub fn description(self) -> &'static str {
                match self { $(Code::$variant => $desc,)* }
            }
        }
    };
}

codes! {
    UnresolvedCall = "unresolved-call", Error,
        "A client method used as a path (not called on a client value) cannot be resolved to one destination.";
    UnresolvedMacro = "unresolved-macro", Error,
        "A macro_rules! body, an include! or a macro whose arguments do not parse names a client.";
    DynamicHost = "dynamic-host", Warning,
        "for_host(expr) with a computed host: the call is granted to every host (`*`).";
    DynamicHostTrustRoot = "dynamic-host-trust-root", Error,
        "for_host(expr) with a computed host on a :666 trust-root endpoint.";
    DynamicUrl = "dynamic-url", Error,
        "A raw call whose method or URL is not a literal, outside a fn carrying #[buswarden::grant] or #[buswarden::edge_proxy].";
    EdgeProxyHost = "edge-proxy-host", Error,
        "#[buswarden::edge_proxy] in a service that is not the [edge] ingress of buswarden.toml.";
    UnknownEndpoint = "unknown-endpoint", Error,
        "A client method that the API trait does not declare.";
    AmbiguousReceiver = "ambiguous-receiver", Error,
        "A method call whose receiver type cannot be determined, with the name of a client method or a bus-calling helper.";
    HostnameMismatch = "hostname-mismatch", Error,
        "Connector::new names another hostname than the API trait the crate implements, or a crate implements traits of two hostnames.";
    InvalidRoute = "invalid-route", Error,
        "A route, URL, method or hostname literal that buswarden cannot use.";
    InvalidApi = "invalid-api", Error,
        "A #[buswarden::api] trait or one of its endpoint attributes is malformed.";
    InvalidGrant = "invalid-grant", Error,
        "A #[buswarden::grant] attribute is malformed.";
    ParseError = "parse-error", Error,
        "A source file does not parse as Rust.";
    UnreadableFile = "unreadable-file", Error,
        "A source file cannot be read or is not UTF-8.";
    FileTooLarge = "file-too-large", Error,
        "A source file is larger than the analyzer's size limit.";
    NestingTooDeep = "nesting-too-deep", Error,
        "A source file nests brackets or expressions deeper than the analyzer's limit.";
    MissingModule = "missing-module", Error,
        "A `mod x;` whose file does not exist.";
    OutsideRoot = "outside-root", Error,
        "A module file, crate target or link that leads outside the scanned root; it is not read.";
    DuplicateHostname = "duplicate-hostname", Error,
        "Two service crates claim the same hostname: one hostname, one service crate.";
    PrivateRuntimeApi = "private-runtime-api", Error,
        "User code names buswarden::__private, the runtime's internals for generated code.";
    CallOutsideService = "call-outside-service", Error,
        "A bus call in a binary or library that no service crate reaches: it would be made without credentials.";
    SymlinkLoop = "symlink-loop", Warning,
        "A symbolic link that loops back to one of its own ancestors; it is skipped.";
    InvalidManifest = "invalid-manifest", Error,
        "A Cargo.toml that cannot be read.";
    NoManifest = "no-manifest", Warning,
        "Rust sources outside any crate (no Cargo.toml above them); they are not analysed.";
    BudgetExceeded = "budget-exceeded", Error,
        "A service's allow-list does not fit in the 4 KiB CONNECT budget.";
    InvalidRules = "invalid-rules", Error,
        "A derived rule set fails validation.";
    PolicyViolation = "policy-violation", Error,
        "A :666 or wildcard grant that buswarden.toml does not allow.";
    InvalidPolicy = "invalid-policy", Error,
        "buswarden.toml cannot be read.";
    TrustRootGrant = "trust-root-grant", Warning,
        "A static :666 trust-root grant, allowed because there is no buswarden.toml.";
    WildcardGrant = "wildcard-grant", Warning,
        "A #[buswarden::grant] with host `*`, allowed because there is no buswarden.toml.";
    ForeignEvent = "foreign-event", Error,
        "A PUB on another host's :417 event route: only the source fires its own events.";
    ForeignEndpointHost = "foreign-endpoint-host", Error,
        "An endpoint served under another host (`//other.host/…`): a service subscribes only to its own host.";
    AclDrift = "acl-drift", Error,
        "The committed nats.acl differs from what the code says.";
    AclMissing = "acl-missing", Error,
        "A service crate has no committed nats.acl.";
    InvalidAcl = "invalid-acl", Error,
        "A committed nats.acl cannot be parsed.";
    PublicEndpointUnlisted = "public-endpoint-unlisted", Error,
        "An endpoint reachable from the internet through the ingress, with no required claims, that the [public] list of buswarden.toml does not name.";
    ClientEscapes = "client-escapes", Error,
        "A client (or a struct holding one) flows where the analyzer does not follow it: a collection, a tuple, a static, an enum, a closure's result, a value of another declared type, an argument of code outside the tree.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown diagnostic code {s:?}")))
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Diagnostic {
    /// File, relative to the scanned root, `/`-separated (empty for
    /// workspace-level findings).
    pub file: String,
    /// 1-based line (0 when the finding is about the whole file).
    pub line: u32,
    /// 1-based column (0 when the finding is about the whole file).
    pub column: u32,
    /// Its code.
    pub code: Code,
    /// Its severity.
    pub severity: Severity,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The source line, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A finding with the code's default severity.
    pub fn new(code: Code, file: &str, loc: crate::ir::Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: loc.line,
            column: loc.col,
            code,
            severity: code.severity(),
            message: message.into(),
            source_line: None,
        }
    }

    /// The same finding at another severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// Whether it blocks credentials.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `path:line:col` (or just the path for a whole-file finding).
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }
}
