//! JSON bytes exactly as Go's `encoding/json` writes them, so the `jti` hash
//! and the JWT payload we produce are byte-identical to what the official Go
//! library (nats-io/jwt v2) produces for the same claims.
//!
//! Go escapes `<`, `>` and `&` (as `\u003c`, `\u003e`, `\u0026`), U+2028 and
//! U+2029, and every control byte except `\n`, `\r`, `\t` as `\u00xx`;
//! serde_json does not. Field order and omission are the claim types' job.

use serde::Serialize;
use std::io;

/// A serde_json formatter with Go's string escaping.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            let esc: Option<&[u8]> = match ch {
                '<' => Some(b"\\u003c"),
                '>' => Some(b"\\u003e"),
                '&' => Some(b"\\u0026"),
                '\u{2028}' => Some(b"\\u2028"),
                '\u{2029}' => Some(b"\\u2029"),
                _ => None,
            };
            if let Some(esc) = esc {
                writer.write_all(&bytes[start..i])?;
                writer.write_all(esc)?;
                start = i + ch.len_utf8();
            }
        }
        writer.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            // Go 1.19 (the Debian reference build) has no short forms for
            // backspace and form feed.
            CharEscape::Backspace => b"\\u0008",
            CharEscape::FormFeed => b"\\u000c",
            CharEscape::Solidus => b"/",
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let buf = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xf) as usize],
                ];
                return writer.write_all(&buf);
            }
        };
        writer.write_all(s)
    }
}

/// Serializes `value` as compact JSON with Go's escaping.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(512);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Serializes `value` into `out` as compact JSON with Go's escaping.
pub fn to_writer<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), serde_json::Error> {
    let mut ser = serde_json::Serializer::with_formatter(out, GoFormatter);
    value.serialize(&mut ser)
}

/// Length in bytes of `s` as a Go JSON string literal, quotes included.
pub fn string_len(s: &str) -> usize {
    let mut n = 2;
    for ch in s.chars() {
        n += match ch {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => 6,
            '"' | '\\' | '\n' | '\r' | '\t' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let v = serde_json::json!({"s": "a.>&<\u{2028}\"\\\n\u{1}\u{8}é/"});
        let got = String::from_utf8(to_vec(&v).unwrap()).unwrap();
        assert_eq!(
            got,
            r#"{"s":"a.\u003e\u0026\u003c\u2028\"\\\n\u0001\u0008é/"}"#
        );
        let s = "a.>&<\u{2028}\"\\\n\u{1}\u{8}é/";
        assert_eq!(string_len(s), to_vec(s).unwrap().len());
    }
}
