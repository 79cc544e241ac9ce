//! Signed HTTP requests to the account server, shared by the server and its
//! clients (busop, CI scripts), so both sides use one implementation:
//!
//! ```text
//! Authorization: Buswarden-Nkey key=<U-pub>,aud=<host:port>,ts=<unix-seconds>,nonce=<32 hex>,sig=<base64url>
//! ```
//!
//! `sig` is the nkey (ed25519) signature, base64url without padding, over
//! `"<aud>\n<METHOD>\n<path-and-query>\n<ts>\n<nonce>\n<hex sha256 of body>"`.
//! `aud` names the account server the request is for (the `host:port` of
//! the URL the client calls, see [`audience`]), so a request signed for one
//! server is refused by another that trusts the same key. This module signs
//! and checks the signature; the audience list, the timestamp window, the
//! nonce memory and the key's role are the server's business.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::{self, KeyPair};
use sha2::{Digest, Sha256};

/// The scheme word of the `Authorization` header.
pub const SCHEME: &str = "Buswarden-Nkey";

/// Why a header could not be made, parsed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestAuthError {
    /// The header does not start with `Buswarden-Nkey `.
    #[error("authorization scheme must be {SCHEME}")]
    Scheme,
    /// A `key=`, `ts=`, `nonce=` or `sig=` field is missing, repeated or unknown.
    #[error("authorization header field {0:?} is missing, repeated or unknown")]
    Field(String),
    /// `key` is not a user public nkey (`U…`).
    #[error("authorization key is not a user public nkey (U...)")]
    Key,
    /// `ts` is not a whole number of seconds.
    #[error("authorization timestamp is not a number of seconds")]
    Timestamp,
    /// `nonce` is not 32 lower-case hex characters.
    #[error("authorization nonce must be 32 lower-case hex characters")]
    Nonce,
    /// `aud` is not a `host:port` (1 to 255 characters of letters, digits,
    /// `.`, `-`, `:`, `[`, `]`, lower case).
    #[error("authorization audience must be the account server's host:port in lower case")]
    Audience,
    /// The account server URL is not `http(s)://host[:port][/path]`.
    #[error("account server URL must be http://host[:port] or https://host[:port]")]
    Url,
    /// `sig` is not base64url of 64 bytes.
    #[error("authorization signature is not base64url of an ed25519 signature")]
    SignatureEncoding,
    /// The signature does not match the request.
    #[error("authorization signature does not match the request")]
    BadSignature,
    /// Signing failed (the key pair has no seed).
    #[error("cannot sign with this key: {0}")]
    Sign(String),
    /// No randomness for a nonce.
    #[error("no randomness for a nonce")]
    Random,
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAuth {
    /// The caller's public user nkey (`U…`).
    pub key: String,
    /// The account server the request is for (`host:port`).
    pub aud: String,
    /// Unix seconds when the request was signed.
    pub ts: i64,
    /// 32 lower-case hex characters, never reused.
    pub nonce: String,
    /// base64url signature.
    pub sig: String,
}

/// The audience of requests to the account server at `url`: its
/// `host:port` in lower case, the port filled in from the scheme (80 for
/// http, 443 for https) when the URL has none.
pub fn audience(url: &str) -> Result<String, RequestAuthError> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, 80)
    } else {
        return Err(RequestAuthError::Url);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(RequestAuthError::Url);
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let aud = if has_port {
        authority.to_ascii_lowercase()
    } else {
        format!("{}:{default_port}", authority.to_ascii_lowercase())
    };
    check_audience(&aud).map_err(|_| RequestAuthError::Url)?;
    Ok(aud)
}

fn check_audience(aud: &str) -> Result<(), RequestAuthError> {
    let ok = (1..=255).contains(&aud.len())
        && aud.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
        });
    if ok {
        Ok(())
    } else {
        Err(RequestAuthError::Audience)
    }
}

/// The bytes that are signed.
pub fn signed_text(
    aud: &str,
    method: &str,
    path_and_query: &str,
    ts: i64,
    nonce: &str,
    body: &[u8],
) -> String {
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    format!(
        "{aud}\n{}\n{path_and_query}\n{ts}\n{nonce}\n{hex}",
        method.to_ascii_uppercase()
    )
}

/// A fresh random nonce (16 random bytes as 32 hex characters).
pub fn new_nonce() -> Result<String, RequestAuthError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| RequestAuthError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `Authorization` header value for a request to the account server
/// `aud` (see [`audience`]) signed by `key` at `ts` with `nonce`.
pub fn sign(
    key: &KeyPair,
    aud: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    ts: i64,
    nonce: &str,
) -> Result<String, RequestAuthError> {
    check_audience(aud)?;
    let text = signed_text(aud, method, path_and_query, ts, nonce, body);
    let sig = key
        .sign(text.as_bytes())
        .map_err(|e| RequestAuthError::Sign(e.to_string()))?;
    Ok(format!(
        "{SCHEME} key={},aud={aud},ts={ts},nonce={nonce},sig={}",
        key.public_key(),
        URL_SAFE_NO_PAD.encode(sig)
    ))
}

/// [`sign`] with the current time and a fresh nonce.
pub fn sign_now(
    key: &KeyPair,
    aud: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<String, RequestAuthError> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    sign(key, aud, method, path_and_query, body, ts, &new_nonce()?)
}

impl RequestAuth {
    /// Parses a header value. Each field exactly once, nothing else.
    pub fn parse(header: &str) -> Result<Self, RequestAuthError> {
        let rest = header
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(RequestAuthError::Scheme)?;
        let (mut key, mut aud, mut ts, mut nonce, mut sig) = (None, None, None, None, None);
        for field in rest.split(',') {
            let (name, value) = field
                .trim()
                .split_once('=')
                .ok_or_else(|| RequestAuthError::Field(field.trim().to_string()))?;
            let slot = match name {
                "key" => &mut key,
                "aud" => &mut aud,
                "ts" => &mut ts,
                "nonce" => &mut nonce,
                "sig" => &mut sig,
                other => return Err(RequestAuthError::Field(other.to_string())),
            };
            if slot.replace(value.to_string()).is_some() {
                return Err(RequestAuthError::Field(name.to_string()));
            }
        }
        let missing = |n: &str| RequestAuthError::Field(n.to_string());
        let key = key.ok_or_else(|| missing("key"))?;
        if !keys::is_public_key(keys::KeyKind::User, &key) {
            return Err(RequestAuthError::Key);
        }
        let aud = aud.ok_or_else(|| missing("aud"))?;
        check_audience(&aud)?;
        let ts = ts
            .ok_or_else(|| missing("ts"))?
            .parse::<i64>()
            .map_err(|_| RequestAuthError::Timestamp)?;
        let nonce = nonce.ok_or_else(|| missing("nonce"))?;
        if nonce.len() != 32
            || !nonce
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(RequestAuthError::Nonce);
        }
        let sig = sig.ok_or_else(|| missing("sig"))?;
        Ok(Self {
            key,
            aud,
            ts,
            nonce,
            sig,
        })
    }

    /// Checks the signature against the request it came with.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), RequestAuthError> {
        let sig = URL_SAFE_NO_PAD
            .decode(&self.sig)
            .map_err(|_| RequestAuthError::SignatureEncoding)?;
        if sig.len() != 64 {
            return Err(RequestAuthError::SignatureEncoding);
        }
        let text = signed_text(
            &self.aud,
            method,
            path_and_query,
            self.ts,
            &self.nonce,
            body,
        );
        if keys::verify(&self.key, text.as_bytes(), &sig) {
            Ok(())
        } else {
            Err(RequestAuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_request_verifies_and_any_change_breaks_it() {
        let kp = KeyPair::generate(keys::KeyKind::User);
        let nonce = new_nonce().unwrap();
        let h = sign(
            &kp,
            "acct.example:7370",
            "post",
            "/v1/deploys?x=1",
            b"{}",
            1_700_000_000,
            &nonce,
        )
        .unwrap();
        let auth = RequestAuth::parse(&h).unwrap();
        assert_eq!(auth.key, kp.public_key());
        assert_eq!(auth.ts, 1_700_000_000);
        auth.verify("POST", "/v1/deploys?x=1", b"{}").unwrap();
        for (m, p, b) in [
            ("GET", "/v1/deploys?x=1", &b"{}"[..]),
            ("POST", "/v1/deploys?x=2", b"{}"),
            ("POST", "/v1/deploys?x=1", b"{ }"),
        ] {
            assert_eq!(auth.verify(m, p, b), Err(RequestAuthError::BadSignature));
        }
        let other = RequestAuth {
            ts: auth.ts + 1,
            ..auth.clone()
        };
        assert_eq!(
            other.verify("POST", "/v1/deploys?x=1", b"{}"),
            Err(RequestAuthError::BadSignature)
        );
        let elsewhere = RequestAuth {
            aud: "other.example:7370".into(),
            ..auth.clone()
        };
        assert_eq!(
            elsewhere.verify("POST", "/v1/deploys?x=1", b"{}"),
            Err(RequestAuthError::BadSignature),
            "the audience is signed"
        );
        let impostor = RequestAuth {
            key: KeyPair::generate(keys::KeyKind::User)
                .public_key()
                .to_string(),
            ..auth
        };
        assert_eq!(
            impostor.verify("POST", "/v1/deploys?x=1", b"{}"),
            Err(RequestAuthError::BadSignature)
        );
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        let k = KeyPair::generate(keys::KeyKind::User)
            .public_key()
            .to_string();
        let n = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            RequestAuth::parse("Bearer x"),
            Err(RequestAuthError::Scheme)
        );
        assert_eq!(
            RequestAuth::parse(&format!("{SCHEME} key={k},aud=a.example:1,ts=1,nonce={n}")),
            Err(RequestAuthError::Field("sig".into()))
        );
        assert_eq!(
            RequestAuth::parse(&format!(
                "{SCHEME} key={k},key={k},aud=a.example:1,ts=1,nonce={n},sig=x"
            )),
            Err(RequestAuthError::Field("key".into()))
        );
        assert_eq!(
            RequestAuth::parse(&format!(
                "{SCHEME} key=UNOPE,aud=a.example:1,ts=1,nonce={n},sig=x"
            )),
            Err(RequestAuthError::Key)
        );
        assert_eq!(
            RequestAuth::parse(&format!(
                "{SCHEME} key={k},aud=a.example:1,ts=x,nonce={n},sig=x"
            )),
            Err(RequestAuthError::Timestamp)
        );
        assert_eq!(
            RequestAuth::parse(&format!(
                "{SCHEME} key={k},aud=a.example:1,ts=1,nonce=ABC,sig=x"
            )),
            Err(RequestAuthError::Nonce)
        );
        let a = RequestAuth::parse(&format!(
            "{SCHEME} key={k},aud=a.example:1,ts=1,nonce={n},sig=!!"
        ))
        .unwrap();
        assert_eq!(
            a.verify("GET", "/", b""),
            Err(RequestAuthError::SignatureEncoding)
        );
    }

    #[test]
    fn the_audience_is_the_host_and_port_of_the_url() {
        assert_eq!(audience("http://127.0.0.1:7370").unwrap(), "127.0.0.1:7370");
        assert_eq!(
            audience("https://Acct.Example/api").unwrap(),
            "acct.example:443"
        );
        assert_eq!(audience("http://acct.example").unwrap(), "acct.example:80");
        assert_eq!(audience("http://[::1]:7370/").unwrap(), "[::1]:7370");
        assert_eq!(audience("http://[::1]/").unwrap(), "[::1]:80");
        for bad in [
            "ftp://x",
            "http://",
            "http://u@h:1",
            "http://a b:1",
            "acct.example:7370",
        ] {
            assert_eq!(audience(bad), Err(RequestAuthError::Url), "{bad}");
        }
        let k = KeyPair::generate(keys::KeyKind::User);
        assert_eq!(
            sign(
                &k,
                "A,b=1",
                "GET",
                "/",
                b"",
                1,
                "0123456789abcdef0123456789abcdef"
            ),
            Err(RequestAuthError::Audience)
        );
        let n = "0123456789abcdef0123456789abcdef";
        let pk = k.public_key();
        assert_eq!(
            RequestAuth::parse(&format!("{SCHEME} key={pk},ts=1,nonce={n},sig=x")),
            Err(RequestAuthError::Field("aud".into()))
        );
    }
}
