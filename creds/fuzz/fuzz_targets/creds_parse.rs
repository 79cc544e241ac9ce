//! `.creds` parsing: any bytes give credentials or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = buswarden_creds::creds::parse_creds(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = buswarden_creds::creds::parse_grants(text);
        let _ = buswarden_creds::keyfile::key_from_text(text, None, "fuzz");
    }
});
