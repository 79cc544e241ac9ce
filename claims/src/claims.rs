//! The claims of a verified actor token, flattened to the dot paths the
//! expressions name, read from the token's JSON payload by serde.
//!
//! Flattening: a nested object gives `a.b`; an array is a set, each string,
//! number or boolean member `m` giving `key.m = true` (`roles: ["admin"]`
//! gives `roles.admin`); an object or array itself is present but is no
//! value (`Value::Container`), so a bare `roles` is not true and compares
//! to nothing. Refused, so a token cannot say two things at once: a key
//! that appears twice (also through flattening: `{"a.b": 1, "a": {"b": 2}}`
//! cannot arise because keys holding a `.` are skipped: no dot path can name
//! them unambiguously), nesting deeper than [`MAX_DEPTH`], and more than
//! [`MAX_CLAIMS`] flattened entries.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The deepest nesting of objects and arrays read.
pub const MAX_DEPTH: usize = 16;
/// The most flattened entries one token may carry.
pub const MAX_CLAIMS: usize = 1024;

/// One flattened claim value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A boolean (also an array member: `roles.admin = true`).
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An object or array: present, but no value to compare.
    Container,
    /// JSON `null`: present, but no value to compare.
    Null,
}

/// The flattened claims of one token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    entries: BTreeMap<String, Value>,
}

/// Claims that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// The same dot path twice.
    #[error("claim {0:?} appears twice")]
    Duplicate(String),
    /// Nesting over [`MAX_DEPTH`].
    #[error("claims nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Over [`MAX_CLAIMS`] entries.
    #[error("more than {MAX_CLAIMS} claims")]
    TooMany,
}

impl Claims {
    /// Empty claims (no actor: every condition on a claim is false).
    pub fn new() -> Claims {
        Claims::default()
    }

    /// The value at a dot path.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.entries.get(path)
    }

    /// Every flattened entry, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The number of flattened entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no claims.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets one flattened entry (for tests and for building claims in
    /// code); refuses a path set twice and more than [`MAX_CLAIMS`] entries.
    pub fn insert(&mut self, path: impl Into<String>, value: Value) -> Result<(), ClaimsError> {
        let path = path.into();
        if self.entries.len() >= MAX_CLAIMS {
            return Err(ClaimsError::TooMany);
        }
        if self.entries.contains_key(&path) {
            return Err(ClaimsError::Duplicate(path));
        }
        self.entries.insert(path, value);
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Claims, D::Error> {
        let mut claims = Claims::new();
        d.deserialize_map(Level {
            prefix: String::new(),
            depth: 0,
            out: &mut claims,
        })?;
        Ok(claims)
    }
}

/// One object being flattened under `prefix` (empty at the top).
struct Level<'a> {
    prefix: String,
    depth: usize,
    out: &'a mut Claims,
}

impl Level<'_> {
    fn put<E: de::Error>(&mut self, path: String, value: Value) -> Result<(), E> {
        self.out.insert(path, value).map_err(E::custom)
    }
}

impl<'de> Visitor<'de> for Level<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key.is_empty() || key.contains('.') {
                // No dot path names it unambiguously: read and drop it.
                map.next_value::<de::IgnoredAny>()?;
                continue;
            }
            let path = if self.prefix.is_empty() {
                key
            } else {
                format!("{}.{key}", self.prefix)
            };
            map.next_value_seed(Node {
                path,
                depth: self.depth + 1,
                out: self.out,
            })?;
        }
        Ok(())
    }
}

/// One value at `path`.
struct Node<'a> {
    path: String,
    depth: usize,
    out: &'a mut Claims,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(ClaimsError::TooDeep));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.out
            .insert(self.path, Value::Bool(v))
            .map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.visit_f64(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.out.insert(self.path, Value::Num(v)).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out
            .insert(self.path, Value::Str(v.to_string()))
            .map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.out.insert(self.path, Value::Str(v)).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.out.insert(self.path, Value::Null).map_err(E::custom)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let mut level = Level {
            prefix: self.path,
            depth: self.depth,
            out: self.out,
        };
        let path = level.prefix.clone();
        level.put::<A::Error>(path, Value::Container)?;
        level.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out
            .insert(self.path.clone(), Value::Container)
            .map_err(de::Error::custom)?;
        while let Some(member) = seq.next_element_seed(Member {
            depth: self.depth + 1,
        })? {
            if let Some(m) = member {
                if m.is_empty() || m.contains('.') {
                    continue;
                }
                let path = format!("{}.{m}", self.path);
                // A member listed twice is still one member of the set.
                if self.out.get(&path).is_none() {
                    self.out
                        .insert(path, Value::Bool(true))
                        .map_err(de::Error::custom)?;
                }
            }
        }
        Ok(())
    }
}

/// One array member: its name in the set, or `None` for members that are
/// objects, arrays or null (they name nothing).
struct Member {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Member {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(ClaimsError::TooDeep));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Member {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array member")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value_seed(Member {
                depth: self.depth + 1,
            })?;
        }
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq
            .next_element_seed(Member {
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(None)
    }
}
