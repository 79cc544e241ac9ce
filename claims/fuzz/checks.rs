//! What the fuzz target asserts, shared by the libFuzzer target and by the
//! stable test `claims/tests/fuzz_corpus.rs` that replays every corpus file:
//! no input panics the parser, the claims reader or the interpreter, and
//! whatever parses prints canonically and parses back to the same tree.

use buswarden_claims::{Claims, interpret, parse};

/// An input is an expression, optionally followed by a NUL byte and the
/// JSON claims to evaluate it on.
pub fn parse_claims(data: &[u8]) {
    let (expr, json) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(expr) else {
        return;
    };
    let claims = json
        .and_then(|j| serde_json::from_slice::<Claims>(j).ok())
        .unwrap_or_default();
    match parse(text) {
        Ok(e) => {
            let printed = e.to_string();
            let again = parse(&printed).expect("printed expression parses");
            assert_eq!(again, e, "round trip through {printed:?}");
            assert_eq!(again.to_string(), printed, "printing is canonical");
            let _ = interpret(&e, &claims);
        }
        Err(err) => {
            assert!(err.offset <= text.len(), "error offset past the end");
            let _ = err.to_string();
        }
    }
}
