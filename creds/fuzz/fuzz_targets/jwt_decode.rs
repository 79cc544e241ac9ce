//! JWT decoding: any bytes give claims or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(claims) = buswarden_creds::jwt::decode(text)
    {
        let _ = buswarden_creds::jwt::validate(&claims, 0);
    }
});
