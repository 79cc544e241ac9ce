//! stub
pub fn configure(_d: &std::path::Path, _u: &str) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
