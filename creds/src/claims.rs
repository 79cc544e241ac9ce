//! The NATS JWT v2 claim model: operator, account and user claims with every
//! field nats-server reads, laid out field for field (order, names, omission
//! of empty values) as the official Go library (nats-io/jwt v2) declares them,
//! so that our JSON is byte-identical to Go's for the same claims.
//!
//! Go's `omitempty` leaves out `""`, `0`, `false` and empty lists/maps; a
//! struct is always written. A limit left out counts as ZERO on the server
//! (nothing allowed), so the constructors here write `-1` explicitly for
//! every limit of unscoped users and accounts.
//!
//! Fields a newer library version added and this model does not know are
//! kept in `extra` and written back after the known ones, so decoding and
//! re-encoding an account JWT never loses data.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// "No limit" in NATS limits.
pub const NO_LIMIT: i64 = -1;

/// The claim types this crate handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimKind {
    /// An operator (self-signed, trust root of a deployment).
    Operator,
    /// An account (signed by the operator).
    Account,
    /// A user (signed by an account or one of its signing keys).
    User,
}

impl ClaimKind {
    /// The `type` value in the JWT (`operator`, `account`, `user`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimKind::Operator => "operator",
            ClaimKind::Account => "account",
            ClaimKind::User => "user",
        }
    }
}

impl std::fmt::Display for ClaimKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn is_zero(v: &i64) -> bool {
    *v == 0
}

pub(crate) fn is_false(v: &bool) -> bool {
    !*v
}

/// Accepts `null` where Go would leave the zero value.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The registered claims every NATS JWT carries (Go's `ClaimsData`), in
/// Go's field order: `aud, exp, jti, iat, iss, name, nbf, sub`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsData {
    /// Audience.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub aud: String,
    /// Expiry, unix seconds; 0 = never.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub exp: i64,
    /// The JWT id: base32 of SHA-512/256 of these claims with `jti` empty.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub jti: String,
    /// Issued at, unix seconds.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub iat: i64,
    /// Issuer public key.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub iss: String,
    /// Human name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Not before, unix seconds; 0 = immediately.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub nbf: i64,
    /// Subject public key.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub sub: String,
}

/// `tags`, `type`, `version`: the fields every v2 payload ends with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenericFields {
    /// Free-form tags (the Go library lower-cases them).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tags: Vec<String>,
    /// `operator`, `account` or `user`.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// The claims version; 2 for everything we write.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub version: i64,
}

/// An allow and a deny list of subjects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// Allowed subjects (a SUB entry may carry a queue group after a space).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allow: Vec<String>,
    /// Denied subjects.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub deny: Vec<String>,
}

impl Permission {
    /// Whether both lists are empty.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Permission to publish to reply subjects of received requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    /// Number of responses allowed.
    #[serde(default, deserialize_with = "nullable")]
    pub max: i64,
    /// Time allowed, in nanoseconds.
    #[serde(default, deserialize_with = "nullable")]
    pub ttl: i64,
}

/// Publish, subscribe and response permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Publish permissions.
    #[serde(rename = "pub", default, deserialize_with = "nullable")]
    pub publish: Permission,
    /// Subscribe permissions.
    #[serde(rename = "sub", default, deserialize_with = "nullable")]
    pub subscribe: Permission,
    /// Response permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
}

/// A daily time window (`HH:MM:SS`) in which a user may connect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    /// Start, `HH:MM:SS`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub start: String,
    /// End, `HH:MM:SS`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub end: String,
}

/// Go's `CIDRList` reads a JSON list or a comma-separated string.
fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<ListOrString>::deserialize(d)? {
        None => Vec::new(),
        Some(ListOrString::List(l)) => l,
        Some(ListOrString::Text(t)) => t
            .to_lowercase()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

/// A user's permissions and limits (Go's `UserPermissionLimits`); also the
/// template of a scoped signing key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPermissionLimits {
    /// Publish permissions.
    #[serde(rename = "pub", default, deserialize_with = "nullable")]
    pub publish: Permission,
    /// Subscribe permissions.
    #[serde(rename = "sub", default, deserialize_with = "nullable")]
    pub subscribe: Permission,
    /// Response permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
    /// Source networks (CIDR) the user may connect from.
    #[serde(
        default,
        deserialize_with = "cidr_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub src: Vec<String>,
    /// Connect time windows.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub times: Vec<TimeRange>,
    /// IANA time zone of `times`.
    #[serde(
        default,
        rename = "times_location",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub times_location: String,
    /// Max subscriptions (-1 = no limit, left out = 0 = none).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub subs: i64,
    /// Max bytes (-1 = no limit).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub data: i64,
    /// Max message payload (-1 = no limit).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub payload: i64,
    /// The JWT alone authenticates (no nonce signature).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub bearer_token: bool,
    /// Connection types allowed (`STANDARD`, `WEBSOCKET`, …).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub allowed_connection_types: Vec<String>,
}

impl UserPermissionLimits {
    /// No permissions and explicit `-1` limits: what an unscoped user starts from.
    pub fn unlimited() -> Self {
        UserPermissionLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            ..Default::default()
        }
    }

    /// Whether nothing at all is set (what a user of a scoped key must carry).
    pub fn is_empty(&self) -> bool {
        *self == UserPermissionLimits::default()
    }
}

/// The `nats` object of a user JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Permissions and limits.
    #[serde(flatten)]
    pub limits: UserPermissionLimits,
    /// The account's public key, when a signing key signed the user.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub issuer_account: String,
    /// Tags, type, version.
    #[serde(flatten)]
    pub generic: GenericFields,
    /// Fields this model does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// A scoped signing key: users it signs get the template's permissions and
/// must carry none of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserScope {
    /// Always `user_scope`.
    pub kind: String,
    /// The signing key (account public key, `A…`).
    pub key: String,
    /// A role name.
    #[serde(default, deserialize_with = "nullable")]
    pub role: String,
    /// The permissions every user of this key gets.
    #[serde(
        default = "UserPermissionLimits::unlimited",
        deserialize_with = "scope_template"
    )]
    pub template: UserPermissionLimits,
}

impl UserScope {
    /// A scope for signing key `key` with role `role` and a template with
    /// no permissions and `-1` limits (what the Go library starts from).
    pub fn new(key: impl Into<String>, role: impl Into<String>) -> UserScope {
        UserScope {
            kind: USER_SCOPE.to_string(),
            key: key.into(),
            role: role.into(),
            template: UserPermissionLimits::unlimited(),
        }
    }
}

/// The Go library reads a template into one whose limits are already `-1`,
/// so a limit the JSON leaves out is `-1`, not 0.
fn scope_template<'de, D: Deserializer<'de>>(d: D) -> Result<UserPermissionLimits, D::Error> {
    let mut v = Option::<serde_json::Value>::deserialize(d)?.unwrap_or_default();
    if v.is_null() {
        return Ok(UserPermissionLimits::unlimited());
    }
    if let Some(map) = v.as_object_mut() {
        for limit in ["subs", "data", "payload"] {
            map.entry(limit)
                .or_insert(serde_json::Value::from(NO_LIMIT));
        }
    }
    serde_json::from_value(v).map_err(serde::de::Error::custom)
}

/// The kind value of a [`UserScope`].
pub const USER_SCOPE: &str = "user_scope";

/// An account signing key: plain, or scoped with a permission template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountSigningKey {
    /// May sign users with their own permissions.
    Plain,
    /// Users it signs get the template.
    Scoped(Box<UserScope>),
}

/// Account signing keys by public key. Written as a JSON list sorted by key
/// (a plain key as a string, a scoped key as an object); the Go library
/// writes the same list in map order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningKeys(pub BTreeMap<String, AccountSigningKey>);

impl SigningKeys {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` is one of them.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The key's entry.
    pub fn get(&self, key: &str) -> Option<&AccountSigningKey> {
        self.0.get(key)
    }

    /// Adds a plain signing key.
    pub fn add_plain(&mut self, key: impl Into<String>) {
        self.0.insert(key.into(), AccountSigningKey::Plain);
    }

    /// Adds a scoped signing key.
    pub fn add_scoped(&mut self, scope: UserScope) {
        self.0.insert(
            scope.key.clone(),
            AccountSigningKey::Scoped(Box::new(scope)),
        );
    }
}

impl Serialize for SigningKeys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (key, entry) in &self.0 {
            match entry {
                AccountSigningKey::Plain => seq.serialize_element(key)?,
                AccountSigningKey::Scoped(scope) => seq.serialize_element(scope)?,
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for SigningKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Plain(String),
            Scoped(Box<UserScope>),
        }
        let entries = Option::<Vec<Entry>>::deserialize(d)?.unwrap_or_default();
        let mut keys = SigningKeys::default();
        for e in entries {
            match e {
                Entry::Plain(k) => keys.add_plain(k),
                Entry::Scoped(scope) => {
                    if scope.kind != USER_SCOPE {
                        return Err(serde::de::Error::custom(format!(
                            "unknown signing key scope {:?}",
                            scope.kind
                        )));
                    }
                    keys.add_scoped(*scope)
                }
            }
        }
        Ok(keys)
    }
}

/// JetStream limits of an account (or of one tier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JetStreamLimits {
    /// Max bytes in memory across streams (0 = JetStream disabled).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub mem_storage: i64,
    /// Max bytes on disk across streams (0 = disabled).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub disk_storage: i64,
    /// Max streams.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub streams: i64,
    /// Max consumers.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub consumer: i64,
    /// Max ack pending of a stream.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub max_ack_pending: i64,
    /// Max bytes of one memory stream.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub mem_max_stream_bytes: i64,
    /// Max bytes of one disk stream.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub disk_max_stream_bytes: i64,
    /// Streams must declare max bytes.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub max_bytes_required: bool,
}

/// Account limits (Go's `OperatorLimits`: NATS, account and JetStream limits).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Max subscriptions.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub subs: i64,
    /// Max bytes.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub data: i64,
    /// Max payload.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub payload: i64,
    /// Max imports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub imports: i64,
    /// Max exports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub exports: i64,
    /// Wildcard exports allowed.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub wildcards: bool,
    /// Users may not be bearer tokens.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub disallow_bearer: bool,
    /// Max client connections.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub conn: i64,
    /// Max leaf node connections.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub leaf: i64,
    /// JetStream limits (untiered).
    #[serde(flatten)]
    pub jetstream: JetStreamLimits,
    /// JetStream limits per tier.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tiered_limits: BTreeMap<String, JetStreamLimits>,
}

impl AccountLimits {
    /// Every NATS and account limit `-1`, wildcards allowed, JetStream off.
    pub fn unlimited() -> Self {
        AccountLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            imports: NO_LIMIT,
            exports: NO_LIMIT,
            wildcards: true,
            disallow_bearer: false,
            conn: NO_LIMIT,
            leaf: NO_LIMIT,
            jetstream: JetStreamLimits::default(),
            tiered_limits: BTreeMap::new(),
        }
    }
}

/// An account export (stream or service).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Exported subject.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub subject: String,
    /// `stream` or `service`.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Importers need an activation token.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub token_req: bool,
    /// Revoked importers.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub revocations: BTreeMap<String, i64>,
    /// `Singleton`, `Stream` or `Chunked`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub response_type: String,
    /// Nanoseconds.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub response_threshold: i64,
    /// Latency tracking (`{"sampling":…,"results":…}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_latency: Option<serde_json::Value>,
    /// Token position of the importing account in the subject.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub account_token_position: i64,
    /// Advertised.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub advertise: bool,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Info URL.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub info_url: String,
}

/// An account import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    /// Name.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Imported subject.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub subject: String,
    /// Exporting account.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub account: String,
    /// Activation token.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub token: String,
    /// Deprecated local subject.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub to: String,
    /// Local subject.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub local_subject: String,
    /// `stream` or `service`.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Share latency information.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub share: bool,
}

/// One target of a subject mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightedMapping {
    /// Destination subject.
    pub subject: String,
    /// Weight in percent (0 = 100).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub weight: i64,
    /// Cluster.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub cluster: String,
}

/// The `nats` object of an account JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Imports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub imports: Vec<Import>,
    /// Exports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub exports: Vec<Export>,
    /// Limits.
    #[serde(default, deserialize_with = "nullable")]
    pub limits: AccountLimits,
    /// Signing keys.
    #[serde(default, skip_serializing_if = "SigningKeys::is_empty")]
    pub signing_keys: SigningKeys,
    /// Revoked user keys (or `*`) -> unix seconds: a user JWT with `iat` at
    /// or before that time is revoked.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub revocations: BTreeMap<String, i64>,
    /// Permissions of users that carry none.
    #[serde(default, deserialize_with = "nullable")]
    pub default_permissions: Permissions,
    /// Subject mappings.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub mappings: BTreeMap<String, Vec<WeightedMapping>>,
    /// Description.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Info URL.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub info_url: String,
    /// Tags, type, version.
    #[serde(flatten)]
    pub generic: GenericFields,
    /// Fields this model does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Account {
    /// The revocation time that applies to a user key: the later of its own
    /// entry and the `*` entry.
    pub fn revocation_for(&self, user_key: &str) -> Option<i64> {
        let own = self.revocations.get(user_key).copied();
        let all = self.revocations.get("*").copied();
        own.max(all)
    }
}

/// The `nats` object of an operator JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Operator signing keys (`O…`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub signing_keys: Vec<String>,
    /// Account server URL.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub account_server_url: String,
    /// NATS URLs of the operator's servers.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub operator_service_urls: Vec<String>,
    /// The system account's public key.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub system_account: String,
    /// Minimum server version, `major.minor.update`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub assert_server_version: String,
    /// Accounts must be signed by a signing key, not the identity key.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub strict_signing_key_usage: bool,
    /// Tags, type, version.
    #[serde(flatten)]
    pub generic: GenericFields,
    /// Fields this model does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What every `nats` payload offers the encoder.
pub trait Payload: Serialize + for<'de> Deserialize<'de> + Clone {
    /// The claim type.
    const KIND: ClaimKind;
    /// Tags, type, version.
    fn generic(&self) -> &GenericFields;
    /// Tags, type, version, mutable.
    fn generic_mut(&mut self) -> &mut GenericFields;
}

impl Payload for User {
    const KIND: ClaimKind = ClaimKind::User;
    fn generic(&self) -> &GenericFields {
        &self.generic
    }
    fn generic_mut(&mut self) -> &mut GenericFields {
        &mut self.generic
    }
}

impl Payload for Account {
    const KIND: ClaimKind = ClaimKind::Account;
    fn generic(&self) -> &GenericFields {
        &self.generic
    }
    fn generic_mut(&mut self) -> &mut GenericFields {
        &mut self.generic
    }
}

impl Payload for Operator {
    const KIND: ClaimKind = ClaimKind::Operator;
    fn generic(&self) -> &GenericFields {
        &self.generic
    }
    fn generic_mut(&mut self) -> &mut GenericFields {
        &mut self.generic
    }
}

/// A full claim set: the registered claims, then `nats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims<N> {
    /// Registered claims.
    #[serde(flatten)]
    pub data: ClaimsData,
    /// The NATS payload.
    #[serde(default)]
    pub nats: N,
}

/// Operator claims.
pub type OperatorClaims = Claims<Operator>;
/// Account claims.
pub type AccountClaims = Claims<Account>;
/// User claims.
pub type UserClaims = Claims<User>;

impl UserClaims {
    /// An unscoped user for `subject` (`U…`): no permissions yet, every
    /// limit explicitly `-1`.
    pub fn new_user(subject: impl Into<String>) -> Self {
        Claims {
            data: ClaimsData {
                sub: subject.into(),
                ..Default::default()
            },
            nats: User {
                limits: UserPermissionLimits::unlimited(),
                ..Default::default()
            },
        }
    }

    /// A user of a scoped signing key: no permissions and no limits of its own.
    pub fn new_scoped_user(subject: impl Into<String>) -> Self {
        Claims {
            data: ClaimsData {
                sub: subject.into(),
                ..Default::default()
            },
            nats: User::default(),
        }
    }
}

impl AccountClaims {
    /// An account for `subject` (`A…`) with every limit explicitly unlimited.
    pub fn new_account(subject: impl Into<String>) -> Self {
        Claims {
            data: ClaimsData {
                sub: subject.into(),
                ..Default::default()
            },
            nats: Account {
                limits: AccountLimits::unlimited(),
                ..Default::default()
            },
        }
    }
}

impl OperatorClaims {
    /// An operator for `subject` (`O…`).
    pub fn new_operator(subject: impl Into<String>) -> Self {
        let subject = subject.into();
        Claims {
            data: ClaimsData {
                iss: subject.clone(),
                sub: subject,
                ..Default::default()
            },
            nats: Operator::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"jti":"J","iat":5,"iss":"O","sub":"A","nats":{"limits":{"subs":-1,"conn":7},"authorization":{"auth_users":["U1"]},"trace":{"dest":"t"},"type":"account","version":2}}"#;
        let claims: AccountClaims = serde_json::from_str(text).unwrap();
        assert_eq!(claims.nats.limits.conn, 7);
        assert_eq!(claims.nats.extra.len(), 2);
        let back = crate::gojson::to_vec(&claims).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(v["nats"]["authorization"]["auth_users"][0], "U1");
        assert_eq!(v["nats"]["trace"]["dest"], "t");
        // Known fields keep Go's order, unknown ones follow.
        let s = String::from_utf8(back).unwrap();
        assert!(s.find("\"limits\"").unwrap() < s.find("\"authorization\"").unwrap());
    }

    #[test]
    fn limits_left_out_are_zero_and_constructors_write_minus_one() {
        let u = UserClaims::new_user("U");
        let json = serde_json::to_string(&u).unwrap();
        assert!(
            json.contains(r#""subs":-1,"data":-1,"payload":-1"#),
            "{json}"
        );
        let scoped = UserClaims::new_scoped_user("U");
        assert!(scoped.nats.limits.is_empty());
        let a = AccountClaims::new_account("A");
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            json.contains(r#""limits":{"subs":-1,"data":-1,"payload":-1,"imports":-1,"exports":-1,"wildcards":true,"conn":-1,"leaf":-1}"#),
            "{json}"
        );
        let read: UserClaims = serde_json::from_str(r#"{"sub":"U","nats":{"pub":null}}"#).unwrap();
        assert_eq!(read.nats.limits.subs, 0);
    }
}
