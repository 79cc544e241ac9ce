//! Compile-fail tests of the macros: a malformed required-claims expression
//! fails the build, pointing at the literal (`tests/ui/*.stderr` hold the
//! exact messages; `TRYBUILD=overwrite` regenerates them).

#[test]
fn malformed_claims_fail_the_build() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
