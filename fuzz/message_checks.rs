//! What the `decode_message` fuzz target asserts, shared with the stable
//! replay `runtime/tests/fuzz_corpus.rs`: no input panics the decoder of
//! Microbus messages, and whatever decodes re-encodes to a message that
//! decodes to the same head and body (the request URI may be normalised).

use buswarden::wire::Envelope;
use bytes::Bytes;

/// Decodes `data` as a message; a decoded message round-trips.
pub fn decode_message(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let Ok((envelope, body)) = Envelope::decode(&bytes) else {
        return;
    };
    let Ok(again) = envelope.encode(&body) else {
        return;
    };
    let (back, back_body) = Envelope::decode(&again).expect("a re-encoded message decodes");
    assert_eq!(back_body, body, "body changed");
    assert_eq!(
        (
            back.kind,
            &back.method,
            back.status,
            &back.msg_id,
            &back.from_id
        ),
        (
            envelope.kind,
            &envelope.method,
            envelope.status,
            &envelope.msg_id,
            &envelope.from_id
        )
    );
    assert_eq!(
        (
            back.time_budget,
            back.call_depth,
            back.fragment,
            &back.headers
        ),
        (
            envelope.time_budget,
            envelope.call_depth,
            envelope.fragment,
            &envelope.headers
        )
    );
}
