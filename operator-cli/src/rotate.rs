//! stub
pub fn run(_d: &std::path::Path, _a: &crate::cli::RotateArgs) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
