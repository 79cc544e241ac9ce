//! stub
pub fn run(
    _f: &std::path::Path,
    _p: Option<&std::path::Path>,
    _s: std::time::Duration,
) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
