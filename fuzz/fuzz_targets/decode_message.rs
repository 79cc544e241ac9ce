//! Fuzz target `decode_message`: see `message_checks.rs` for what it
//! asserts. (No `forbid(unsafe_code)` here: libFuzzer's entry point is a
//! `no_mangle` function, which that lint refuses; the checks use none.)
#![no_main]

#[path = "../message_checks.rs"]
mod message_checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| message_checks::decode_message(data));
