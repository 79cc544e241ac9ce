//! NATS JWT v2 encode, decode, verify and validate, as nats-io/jwt v2 and
//! nats-server do it:
//!
//! - header exactly `{"typ":"JWT","alg":"ed25519-nkey"}`, segments base64url
//!   without padding, signature = ed25519 over `b64(header).b64(payload)` by
//!   the issuer's nkey;
//! - `jti` = base32 (standard alphabet, no padding) of SHA-512/256 of the JSON
//!   of the registered claims with `jti` empty, computed after `iss` and `iat`
//!   are set;
//! - issuer kinds: an operator signs itself, an account is signed by an
//!   operator key, a user by an account key (the account's identity key or
//!   one of its signing keys, in which case the user carries `issuer_account`);
//! - a user JWT is revoked when the account lists its key (or `*`) with a
//!   time at or after the JWT's `iat`;
//! - time: `exp > 0 && now > exp` is expired, `nbf > now` not yet valid, whole
//!   seconds, no leeway.

use crate::claims::{
    AccountClaims, AccountSigningKey, ClaimKind, Claims, ClaimsData, OperatorClaims, Payload,
    UserClaims,
};
use crate::gojson;
use crate::keys::{self, KeyKind, KeyPair};
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest, Sha512_256};

/// The header every JWT we write carries.
pub const HEADER_JSON: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;
/// [`HEADER_JSON`] in base64url.
pub const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";
/// The claims version we write and read.
pub const CLAIMS_VERSION: i64 = 2;
/// Largest token [`decode`] looks at, in bytes.
pub const MAX_TOKEN_LEN: usize = 1024 * 1024;
/// Length of the base64url text of an ed25519 signature.
pub const SIGNATURE_B64_LEN: usize = 86;

/// base64url without padding; like Go's `RawURLEncoding`, lenient about the
/// unused bits of the last character.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Which part of a token a decoding error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The header.
    Header,
    /// The claims.
    Payload,
    /// The signature.
    Signature,
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// Why a JWT could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// `sub` is not a public key of the kind the claim type needs.
    #[error("{kind} claims need a{} {expected} public key as subject, found {subject:?}", if matches!(expected, KeyKind::User) { "" } else { "n" })]
    BadSubject {
        /// Claim type.
        kind: ClaimKind,
        /// Key kind needed.
        expected: KeyKind,
        /// The subject.
        subject: String,
    },
    /// The signing key is of a kind that may not issue this claim type.
    #[error("{kind} claims cannot be signed by a{} {signer} key", if matches!(signer, KeyKind::User) { "" } else { "n" })]
    WrongSigner {
        /// Claim type.
        kind: ClaimKind,
        /// The signer's kind.
        signer: KeyKind,
    },
    /// An operator JWT must be signed by its own key.
    #[error("an operator JWT is self-signed: sign it with the operator's own key")]
    OperatorNotSelfSigned,
    /// Serializing the claims failed.
    #[error("serializing claims: {0}")]
    Json(String),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
}

/// Why a JWT was refused. Each distinct failure is its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Larger than [`MAX_TOKEN_LEN`].
    #[error("token is {len} bytes, larger than the {MAX_TOKEN_LEN} accepted")]
    TooLarge {
        /// Length.
        len: usize,
    },
    /// Not three dot-separated segments.
    #[error("a JWT has 3 dot-separated segments, found {found}")]
    Segments {
        /// Segments found.
        found: usize,
    },
    /// A segment is not base64url.
    #[error("the {segment} is not base64url")]
    Base64 {
        /// Which segment.
        segment: Segment,
    },
    /// A segment is not the JSON expected.
    #[error("the {segment} is not valid JSON for a NATS JWT: {message}")]
    Json {
        /// Which segment.
        segment: Segment,
        /// The parser's message.
        message: String,
    },
    /// The header's `typ` is not `JWT`.
    #[error("header type {found:?} is not JWT")]
    HeaderType {
        /// Type found.
        found: String,
    },
    /// The header's `alg` is not `ed25519-nkey`.
    #[error("header algorithm {found:?} is not ed25519-nkey (v1 tokens are not supported)")]
    HeaderAlgorithm {
        /// Algorithm found.
        found: String,
    },
    /// Claims of version 1 or newer than 2.
    #[error("claims version {found} is not supported (only version 2)")]
    Version {
        /// Version found.
        found: i64,
    },
    /// `type` is not operator, account or user.
    #[error("claim type {found:?} is not operator, account or user")]
    UnknownType {
        /// Type found.
        found: String,
    },
    /// A claim type other than the one asked for.
    #[error("expected {expected} claims, found {found} claims")]
    WrongType {
        /// Type asked for.
        expected: ClaimKind,
        /// Type found.
        found: ClaimKind,
    },
    /// The signature is not 64 bytes.
    #[error("the signature is {len} bytes, not 64")]
    SignatureLength {
        /// Length.
        len: usize,
    },
    /// `iss` is not a public key of a kind allowed to issue this claim type.
    #[error("{kind} claims cannot be issued by {issuer:?}")]
    IssuerKind {
        /// Claim type.
        kind: ClaimKind,
        /// The issuer.
        issuer: String,
    },
    /// `sub` is not a public key of the claim type's kind.
    #[error("{kind} claims need a {kind} public key as subject, found {subject:?}")]
    SubjectKind {
        /// Claim type.
        kind: ClaimKind,
        /// The subject.
        subject: String,
    },
    /// The signature does not verify with the issuer's key.
    #[error("signature verification failed")]
    BadSignature,
    /// An operator JWT not signed by the operator itself.
    #[error("an operator JWT must be self-signed, but {issuer} signed {subject}")]
    NotSelfSigned {
        /// Issuer.
        issuer: String,
        /// Subject.
        subject: String,
    },
    /// `exp` is in the past.
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// Expiry.
        exp: i64,
        /// The time checked against.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("not valid before {nbf} (now {now})")]
    NotYetValid {
        /// Not before.
        nbf: i64,
        /// The time checked against.
        now: i64,
    },
    /// `issuer_account` is set but not an account public key.
    #[error("issuer_account {found:?} is not an account public key")]
    BadIssuerAccount {
        /// Value found.
        found: String,
    },
    /// A listed key is not a public key of the kind expected.
    #[error("{field} lists {key:?}, which is not a valid {expected} public key")]
    BadListedKey {
        /// Field.
        field: &'static str,
        /// The key.
        key: String,
        /// Kind expected.
        expected: KeyKind,
    },
    /// The user's issuer is neither the account nor one of its signing keys.
    #[error(
        "user {user} was signed by {issuer}, which is neither account {account} nor one of its signing keys"
    )]
    NotSignedByAccount {
        /// User key.
        user: String,
        /// Issuer.
        issuer: String,
        /// Account.
        account: String,
    },
    /// Signed by a signing key but without `issuer_account`.
    #[error("user {user} was signed by signing key {issuer} but carries no issuer_account")]
    MissingIssuerAccount {
        /// User key.
        user: String,
        /// Issuer.
        issuer: String,
    },
    /// `issuer_account` names another account.
    #[error("user {user} names issuer_account {found}, but the account is {account}")]
    IssuerAccountMismatch {
        /// User key.
        user: String,
        /// Value found.
        found: String,
        /// The account.
        account: String,
    },
    /// A user of a scoped signing key carries permissions or limits of its own.
    #[error(
        "user {user} was signed by scoped signing key {issuer} but carries its own permissions or limits"
    )]
    ScopedUserHasPermissions {
        /// User key.
        user: String,
        /// Issuer.
        issuer: String,
    },
    /// The account revoked this user (or every user) at or after its `iat`.
    #[error("user {user} is revoked: revocation at {revoked_at} >= issued at {iat}")]
    Revoked {
        /// User key.
        user: String,
        /// Revocation time.
        revoked_at: i64,
        /// The JWT's iat.
        iat: i64,
    },
    /// The account's issuer is neither the operator nor one of its signing keys.
    #[error(
        "account {account} was signed by {issuer}, which is not operator {operator} or one of its signing keys"
    )]
    NotSignedByOperator {
        /// Account.
        account: String,
        /// Issuer.
        issuer: String,
        /// Operator.
        operator: String,
    },
}

/// A decoded and signature-checked JWT of any of our claim types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyClaims {
    /// Operator claims.
    Operator(OperatorClaims),
    /// Account claims.
    Account(AccountClaims),
    /// User claims.
    User(UserClaims),
}

impl AnyClaims {
    /// The claim type.
    pub fn kind(&self) -> ClaimKind {
        match self {
            AnyClaims::Operator(_) => ClaimKind::Operator,
            AnyClaims::Account(_) => ClaimKind::Account,
            AnyClaims::User(_) => ClaimKind::User,
        }
    }

    /// The registered claims.
    pub fn data(&self) -> &ClaimsData {
        match self {
            AnyClaims::Operator(c) => &c.data,
            AnyClaims::Account(c) => &c.data,
            AnyClaims::User(c) => &c.data,
        }
    }
}

fn subject_kind(kind: ClaimKind) -> KeyKind {
    match kind {
        ClaimKind::Operator => KeyKind::Operator,
        ClaimKind::Account => KeyKind::Account,
        ClaimKind::User => KeyKind::User,
    }
}

/// Key kinds allowed to issue a claim type (Go's `ExpectedPrefixes`; an
/// account may also be self-signed there, which nats-server does not trust,
/// so we refuse it too).
fn issuer_kinds(kind: ClaimKind) -> &'static [KeyKind] {
    match kind {
        ClaimKind::Operator => &[KeyKind::Operator],
        ClaimKind::Account => &[KeyKind::Operator],
        ClaimKind::User => &[KeyKind::Account],
    }
}

/// The `jti` of registered claims (whatever `jti` holds is ignored).
pub fn compute_jti(data: &ClaimsData) -> String {
    let mut d = data.clone();
    d.jti.clear();
    let mut json = Vec::with_capacity(256);
    // Serializing plain strings and integers cannot fail.
    let _ = gojson::to_writer(&mut json, &d);
    let hash = Sha512_256::digest(&json);
    data_encoding::BASE32_NOPAD.encode(&hash)
}

/// Encodes and signs claims: sets `iss` (the signer), `iat`, `jti`, the
/// claim `type` and `version` 2, then signs. `iat` is a parameter so a
/// re-issue can be placed after a revocation (see [`issue_time`]).
pub fn encode<N: Payload>(
    claims: &mut Claims<N>,
    signer: &KeyPair,
    iat: i64,
) -> Result<String, EncodeError> {
    let kind = N::KIND;
    let expected = subject_kind(kind);
    if !keys::is_public_key(expected, &claims.data.sub) {
        return Err(EncodeError::BadSubject {
            kind,
            expected,
            subject: claims.data.sub.clone(),
        });
    }
    if !issuer_kinds(kind).contains(&signer.kind()) {
        return Err(EncodeError::WrongSigner {
            kind,
            signer: signer.kind(),
        });
    }
    if kind == ClaimKind::Operator && signer.public_key() != claims.data.sub {
        return Err(EncodeError::OperatorNotSelfSigned);
    }
    claims.data.iss = signer.public_key().to_string();
    claims.data.iat = iat;
    claims.data.jti = compute_jti(&claims.data);
    let generic = claims.nats.generic_mut();
    generic.kind = kind.as_str().to_string();
    generic.version = CLAIMS_VERSION;
    let payload = gojson::to_vec(claims).map_err(|e| EncodeError::Json(e.to_string()))?;
    let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 96);
    token.push_str(HEADER_B64);
    token.push('.');
    B64.encode_string(&payload, &mut token);
    let sig = signer.sign(token.as_bytes())?;
    token.push('.');
    B64.encode_string(&sig, &mut token);
    Ok(token)
}

/// Length of the token [`encode`] would produce for a payload of `payload_len` JSON bytes.
pub fn token_len(payload_len: usize) -> usize {
    HEADER_B64.len() + 1 + b64_len(payload_len) + 1 + SIGNATURE_B64_LEN
}

/// Length of unpadded base64 of `n` bytes.
pub fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

#[derive(serde::Deserialize)]
struct Header {
    #[serde(default)]
    typ: String,
    #[serde(default)]
    alg: String,
}

#[derive(serde::Deserialize)]
struct Identifier {
    #[serde(default, rename = "type")]
    v1_type: Option<serde_json::Value>,
    #[serde(default)]
    nats: Option<NatsIdentifier>,
}

#[derive(serde::Deserialize)]
struct NatsIdentifier {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    version: Option<i64>,
}

fn json_err(segment: Segment) -> impl Fn(serde_json::Error) -> JwtError {
    move |e| JwtError::Json {
        segment,
        message: e.to_string(),
    }
}

/// Decodes a token, checks its header, claim type and version, its issuer's
/// kind and its signature. Time is checked by [`validate`].
pub fn decode(token: &str) -> Result<AnyClaims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge { len: token.len() });
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Segments { found: parts.len() });
    }
    let header_bytes = B64.decode(parts[0]).map_err(|_| JwtError::Base64 {
        segment: Segment::Header,
    })?;
    let header: Header =
        serde_json::from_slice(&header_bytes).map_err(json_err(Segment::Header))?;
    if !header.typ.eq_ignore_ascii_case("JWT") {
        return Err(JwtError::HeaderType { found: header.typ });
    }
    if !header.alg.eq_ignore_ascii_case("ed25519-nkey") {
        return Err(JwtError::HeaderAlgorithm { found: header.alg });
    }
    let payload = B64.decode(parts[1]).map_err(|_| JwtError::Base64 {
        segment: Segment::Payload,
    })?;
    let id: Identifier = serde_json::from_slice(&payload).map_err(json_err(Segment::Payload))?;
    if id.v1_type.is_some() {
        return Err(JwtError::Version { found: 1 });
    }
    let nats = id.nats.unwrap_or(NatsIdentifier {
        kind: None,
        version: None,
    });
    let version = nats.version.unwrap_or(0);
    if version != CLAIMS_VERSION {
        return Err(JwtError::Version { found: version });
    }
    let kind = match nats.kind.as_deref().unwrap_or("") {
        "operator" => ClaimKind::Operator,
        "account" => ClaimKind::Account,
        "user" => ClaimKind::User,
        other => {
            return Err(JwtError::UnknownType {
                found: other.to_string(),
            });
        }
    };
    let claims = match kind {
        ClaimKind::Operator => AnyClaims::Operator(
            serde_json::from_slice(&payload).map_err(json_err(Segment::Payload))?,
        ),
        ClaimKind::Account => AnyClaims::Account(
            serde_json::from_slice(&payload).map_err(json_err(Segment::Payload))?,
        ),
        ClaimKind::User => {
            AnyClaims::User(serde_json::from_slice(&payload).map_err(json_err(Segment::Payload))?)
        }
    };
    let sig = B64.decode(parts[2]).map_err(|_| JwtError::Base64 {
        segment: Segment::Signature,
    })?;
    if sig.len() != 64 {
        return Err(JwtError::SignatureLength { len: sig.len() });
    }
    let data = claims.data();
    let issuer_ok = issuer_kinds(kind)
        .iter()
        .any(|k| keys::is_public_key(*k, &data.iss));
    if !issuer_ok {
        return Err(JwtError::IssuerKind {
            kind,
            issuer: data.iss.chars().take(64).collect(),
        });
    }
    if !keys::is_public_key(subject_kind(kind), &data.sub) {
        return Err(JwtError::SubjectKind {
            kind,
            subject: data.sub.chars().take(64).collect(),
        });
    }
    let signed_len = parts[0].len() + 1 + parts[1].len();
    if !keys::verify(&data.iss, &token.as_bytes()[..signed_len], &sig) {
        return Err(JwtError::BadSignature);
    }
    if kind == ClaimKind::Operator && data.iss != data.sub {
        return Err(JwtError::NotSelfSigned {
            issuer: data.iss.clone(),
            subject: data.sub.clone(),
        });
    }
    Ok(claims)
}

/// Decodes a user JWT.
pub fn decode_user(token: &str) -> Result<UserClaims, JwtError> {
    match decode(token)? {
        AnyClaims::User(c) => Ok(c),
        other => Err(JwtError::WrongType {
            expected: ClaimKind::User,
            found: other.kind(),
        }),
    }
}

/// Decodes an account JWT.
pub fn decode_account(token: &str) -> Result<AccountClaims, JwtError> {
    match decode(token)? {
        AnyClaims::Account(c) => Ok(c),
        other => Err(JwtError::WrongType {
            expected: ClaimKind::Account,
            found: other.kind(),
        }),
    }
}

/// Decodes an operator JWT.
pub fn decode_operator(token: &str) -> Result<OperatorClaims, JwtError> {
    match decode(token)? {
        AnyClaims::Operator(c) => Ok(c),
        other => Err(JwtError::WrongType {
            expected: ClaimKind::Operator,
            found: other.kind(),
        }),
    }
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks `exp` and `nbf` against `now` (unix seconds), as the server does.
pub fn validate_time(data: &ClaimsData, now: i64) -> Result<(), JwtError> {
    if data.exp > 0 && now > data.exp {
        return Err(JwtError::Expired { exp: data.exp, now });
    }
    if data.nbf > 0 && data.nbf > now {
        return Err(JwtError::NotYetValid { nbf: data.nbf, now });
    }
    Ok(())
}

/// Validates decoded claims at `now`: time, and the keys they list.
pub fn validate(claims: &AnyClaims, now: i64) -> Result<(), JwtError> {
    validate_time(claims.data(), now)?;
    match claims {
        AnyClaims::User(u) => {
            let ia = &u.nats.issuer_account;
            if !ia.is_empty() && !keys::is_public_key(KeyKind::Account, ia) {
                return Err(JwtError::BadIssuerAccount { found: ia.clone() });
            }
        }
        AnyClaims::Account(a) => {
            for key in a.nats.signing_keys.0.keys() {
                check_listed("signing_keys", key, KeyKind::Account)?;
            }
        }
        AnyClaims::Operator(o) => {
            for key in &o.nats.signing_keys {
                check_listed("signing_keys", key, KeyKind::Operator)?;
            }
            if !o.nats.system_account.is_empty() {
                check_listed("system_account", &o.nats.system_account, KeyKind::Account)?;
            }
        }
    }
    Ok(())
}

fn check_listed(field: &'static str, key: &str, expected: KeyKind) -> Result<(), JwtError> {
    if keys::is_public_key(expected, key) {
        Ok(())
    } else {
        Err(JwtError::BadListedKey {
            field,
            key: key.chars().take(64).collect(),
            expected,
        })
    }
}

/// Checks that `account` issued `user` (directly or through one of its
/// signing keys, with `issuer_account` set and a scoped key's users carrying
/// no permissions of their own) and has not revoked it.
pub fn verify_user(user: &UserClaims, account: &AccountClaims) -> Result<(), JwtError> {
    let acc = &account.data.sub;
    let iss = &user.data.iss;
    let ia = &user.nats.issuer_account;
    if iss == acc {
        if !ia.is_empty() && ia != acc {
            return Err(JwtError::IssuerAccountMismatch {
                user: user.data.sub.clone(),
                found: ia.clone(),
                account: acc.clone(),
            });
        }
    } else {
        let Some(entry) = account.nats.signing_keys.get(iss) else {
            return Err(JwtError::NotSignedByAccount {
                user: user.data.sub.clone(),
                issuer: iss.clone(),
                account: acc.clone(),
            });
        };
        if ia.is_empty() {
            return Err(JwtError::MissingIssuerAccount {
                user: user.data.sub.clone(),
                issuer: iss.clone(),
            });
        }
        if ia != acc {
            return Err(JwtError::IssuerAccountMismatch {
                user: user.data.sub.clone(),
                found: ia.clone(),
                account: acc.clone(),
            });
        }
        if matches!(entry, AccountSigningKey::Scoped(_)) && !user.nats.limits.is_empty() {
            return Err(JwtError::ScopedUserHasPermissions {
                user: user.data.sub.clone(),
                issuer: iss.clone(),
            });
        }
    }
    if let Some(at) = account.nats.revocation_for(&user.data.sub)
        && at >= user.data.iat
    {
        return Err(JwtError::Revoked {
            user: user.data.sub.clone(),
            revoked_at: at,
            iat: user.data.iat,
        });
    }
    Ok(())
}

/// Checks that `operator` issued `account` (its identity key, unless strict
/// signing key usage is on, or one of its signing keys).
pub fn verify_account(account: &AccountClaims, operator: &OperatorClaims) -> Result<(), JwtError> {
    let iss = &account.data.iss;
    let op = &operator.data.sub;
    let ok = if iss == op {
        !operator.nats.strict_signing_key_usage
    } else {
        operator.nats.signing_keys.iter().any(|k| k == iss)
    };
    if ok {
        Ok(())
    } else {
        Err(JwtError::NotSignedByOperator {
            account: account.data.sub.clone(),
            issuer: iss.clone(),
            operator: op.clone(),
        })
    }
}

/// The `iat` to sign a user JWT with so it is not born revoked: `now`, or one
/// second after the latest revocation that applies to `user_key`.
pub fn issue_time(now: i64, account: Option<&AccountClaims>, user_key: &str) -> i64 {
    match account.and_then(|a| a.nats.revocation_for(user_key)) {
        Some(at) if at >= now => at + 1,
        _ => now,
    }
}

/// The `iat` to re-sign an account JWT with: `now`, or one second after the
/// live JWT's `iat` (a full resolver keeps the newer of two by `iat`).
pub fn account_issue_time(now: i64, live: Option<&AccountClaims>) -> i64 {
    match live {
        Some(l) if l.data.iat >= now => l.data.iat + 1,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constant_matches() {
        assert_eq!(B64.encode(HEADER_JSON), HEADER_B64);
    }
}
