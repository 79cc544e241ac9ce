//! stub
pub fn run(
    _d: &std::path::Path,
    _a: &[String],
    _l: &crate::cli::LiveArgs,
) -> crate::Result<crate::Report> {
    Err(crate::BusopError::Usage("todo".into()))
}
