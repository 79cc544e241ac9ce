//! Actor tokens as they travel on the bus: the two pinned issuers, the JWKS
//! document they serve on `:888/jwks`, and a strict reader of compact
//! EdDSA JWTs (size-bounded, `alg` pinned to EdDSA, `kid` and `typ`
//! required) with signature verification against one JWK.
//!
//! The runtime owns these types because it is the verifier: it talks to the
//! issuers over the bus, by URL, and reads what they serve. The token
//! services (`core/`) write the same types.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The issuer of access tokens, the only tokens that travel the bus as
/// actors.
pub const ACCESS_ISSUER: &str = buswarden_rules::derive::ACCESS_ISSUER;
/// The issuer of bearer tokens, held by external clients and exchanged for
/// access tokens at the ingress; never a bus actor.
pub const BEARER_ISSUER: &str = "bearer.token.core";
/// The JWT `typ` of an access token (RFC 9068).
pub const ACCESS_TYP: &str = "at+jwt";
/// The JWT `typ` of a bearer token.
pub const BEARER_TYP: &str = "JWT";
/// The longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// One public key of an issuer, as its JWKS lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `EdDSA`.
    pub alg: String,
}

/// The document an issuer serves on `:888/jwks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys that verify the issuer's tokens.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key.
    pub fn ed25519(key: &VerifyingKey, kid: impl Into<String>) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            kid: kid.into(),
            use_: "sig".into(),
            alg: "EdDSA".into(),
        }
    }

    /// The Ed25519 key this JWK describes; `None` for anything but an
    /// `OKP`/`Ed25519` signing key with `alg` EdDSA.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        if self.kty != "OKP" || self.crv != "Ed25519" || self.alg != "EdDSA" || self.use_ != "sig" {
            return None;
        }
        let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&self.x).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    }
}

/// Why a token was refused before or at its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of bounded size.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not EdDSA.
    #[error("token algorithm {0:?} is not EdDSA")]
    Algorithm(String),
    /// The signature does not verify with the key.
    #[error("token signature does not verify")]
    Signature,
}

/// The header fields a verifier reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// Must be `EdDSA`.
    pub alg: String,
    /// The key id.
    pub kid: String,
    /// `at+jwt` for access tokens, `JWT` for bearer tokens.
    pub typ: String,
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The header.
    pub header: Header,
    /// The payload JSON bytes.
    pub payload: Vec<u8>,
    signing_input_len: usize,
    signature: Signature,
    text: String,
}

/// Splits and decodes a compact JWT (no signature check yet).
pub fn decode(token: &str) -> Result<Unverified, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| TokenError::Malformed("header lacks alg, kid or typ"))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let sig: [u8; 64] = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed("signature is not base64url"))?
        .try_into()
        .map_err(|_| TokenError::Malformed("signature is not 64 bytes"))?;
    Ok(Unverified {
        header,
        payload,
        signing_input_len: h.len() + 1 + p.len(),
        signature: Signature::from_bytes(&sig),
        text: token.to_string(),
    })
}

impl Unverified {
    /// Checks the signature with `key` (strict Ed25519 verification).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), TokenError> {
        let input = &self.text.as_bytes()[..self.signing_input_len];
        key.verify_strict(input, &self.signature)
            .map_err(|_| TokenError::Signature)
    }
}

/// The request both issuers' `Mint` take: `{"claims": {…}}`.
pub fn mint_request(claims: &serde_json::Map<String, serde_json::Value>) -> crate::Request {
    let body = serde_json::json!({ "claims": claims }).to_string();
    crate::Request::new()
        .with_header("Content-Type", "application/json")
        .with_body(body)
}

/// The token out of a `Mint` answer (`{"token": "…"}`).
pub fn minted_token(resp: &crate::Response) -> Result<String, crate::Error> {
    #[derive(Deserialize)]
    struct Minted {
        token: String,
    }
    serde_json::from_slice::<Minted>(&resp.body)
        .map(|m| m.token)
        .map_err(|e| crate::Error::status(502, format!("mint answered no token: {e}")))
}

/// The keys out of a `JWKS` or `LocalKeys` answer (`{"keys": […]}`).
pub fn jwks_of(resp: &crate::Response) -> Result<Jwks, crate::Error> {
    serde_json::from_slice(&resp.body)
        .map_err(|e| crate::Error::status(502, format!("not a JWKS document: {e}")))
}

/// The largest `Mint` request body an issuer reads.
pub const MAX_MINT_REQUEST: usize = 64 * 1024;

/// The claims of a `Mint` request (`{"claims": {…}}`): 413 over
/// [`MAX_MINT_REQUEST`], 400 for anything else.
pub fn mint_claims(
    req: &crate::Request,
) -> Result<serde_json::Map<String, serde_json::Value>, crate::Error> {
    if req.body.len() > MAX_MINT_REQUEST {
        return Err(crate::Error::status(
            413,
            format!("mint request over {MAX_MINT_REQUEST} bytes"),
        ));
    }
    #[derive(Deserialize)]
    struct MintIn {
        claims: serde_json::Map<String, serde_json::Value>,
    }
    serde_json::from_slice::<MintIn>(&req.body)
        .map(|m| m.claims)
        .map_err(|e| crate::Error::status(400, format!("expected {{\"claims\": {{…}}}}: {e}")))
}

/// A `Mint` answer: `{"token": "…"}`.
pub fn minted_response(token: &str) -> crate::Response {
    crate::Response::ok(serde_json::json!({ "token": token }).to_string())
        .with_header("Content-Type", "application/json")
}

/// A `JWKS` or `LocalKeys` answer.
pub fn jwks_response(keys: &Jwks) -> crate::Response {
    crate::Response::ok(serde_json::to_string(keys).unwrap_or_default())
        .with_header("Content-Type", "application/json")
}
