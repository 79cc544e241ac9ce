//! The account server (library half; `main` only parses arguments).
#![forbid(unsafe_code)]

pub mod config;
pub mod request_auth;
pub mod seal;
pub mod store;
