//! `buswarden::Method`: the method of a raw call (`Method::GET`, or a string
//! such as `"GET"`), validated when the call is made.

use crate::error::Error;
use std::borrow::Cow;
use std::fmt;

/// An HTTP-like method token; validated (1 to 32 ASCII letters, upper-cased)
/// when used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Method(Cow<'static, str>);

impl Method {
    /// `GET`.
    pub const GET: Method = Method(Cow::Borrowed("GET"));
    /// `POST`.
    pub const POST: Method = Method(Cow::Borrowed("POST"));
    /// `PUT`.
    pub const PUT: Method = Method(Cow::Borrowed("PUT"));
    /// `PATCH`.
    pub const PATCH: Method = Method(Cow::Borrowed("PATCH"));
    /// `DELETE`.
    pub const DELETE: Method = Method(Cow::Borrowed("DELETE"));
    /// `HEAD`.
    pub const HEAD: Method = Method(Cow::Borrowed("HEAD"));
    /// `OPTIONS`.
    pub const OPTIONS: Method = Method(Cow::Borrowed("OPTIONS"));
    /// `ANY`: only meaningful on endpoints; a call to `ANY` is sent as `POST`.
    pub const ANY: Method = Method(Cow::Borrowed("ANY"));

    /// The method as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Validates the token as a `buswarden_rules` method.
    pub fn to_rules(&self) -> Result<buswarden_rules::Method, Error> {
        buswarden_rules::Method::parse(&self.0).map_err(|e| Error::InvalidMethod {
            method: self.0.to_string(),
            reason: e.to_string(),
        })
    }

    /// The method a call sends: `ANY` is sent as `POST`.
    pub(crate) fn for_sending(&self) -> Result<buswarden_rules::Method, Error> {
        let m = self.to_rules()?;
        Ok(if m.is_any() {
            buswarden_rules::Method::post()
        } else {
            m
        })
    }
}

impl From<&str> for Method {
    fn from(s: &str) -> Self {
        Method(Cow::Owned(s.to_string()))
    }
}

impl From<String> for Method {
    fn from(s: String) -> Self {
        Method(Cow::Owned(s))
    }
}

impl From<&Method> for Method {
    fn from(m: &Method) -> Self {
        m.clone()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
