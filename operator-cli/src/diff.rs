//! stub
pub fn run(_a: &str, _b: &str, _e: bool) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
