//! Fuzz target `parse_claims`: see `checks.rs` for what it asserts. (No
//! `forbid(unsafe_code)` here: libFuzzer's entry point is a `no_mangle`
//! function, which that lint refuses; the checks themselves use none.)
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::parse_claims(data));
