//! stub
pub fn run(_d: &std::path::Path, _a: &crate::cli::PruneArgs) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
