//! stub
pub fn run(_f: &[std::path::PathBuf], _s: std::time::Duration) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
