//! The analyzer fixtures (`fixtures/analyzer`): one test per case, each
//! comparing the exact `nats.acl` and the exact findings (code, file, line,
//! column, message) with the committed goldens. `BUSWARDEN_BLESS=1`
//! rewrites the goldens; review the diff before committing.

use gencreds::analysis::{Analysis, Options, analyze};
use gencreds::diagnostic::{Code, Diagnostic};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/analyzer")
}

fn analysis() -> &'static Analysis {
    static A: OnceLock<Analysis> = OnceLock::new();
    A.get_or_init(|| analyze(&root(), Options::default()).expect("fixtures analyse"))
}

fn bless() -> bool {
    std::env::var_os("BUSWARDEN_BLESS").is_some()
}

fn golden(path: &Path, actual: Option<&str>) {
    let committed = std::fs::read_to_string(path).ok();
    if bless() {
        match actual {
            Some(a) => std::fs::write(path, a).unwrap(),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
        return;
    }
    assert_eq!(
        committed.as_deref(),
        actual,
        "golden {} differs (BUSWARDEN_BLESS=1 rewrites it)",
        path.display()
    );
}

/// Checks one folder (a case or an API crate) against its goldens.
fn check(dir: &str) {
    let an = analysis();
    let prefix = format!("{dir}/");
    let diags: Vec<&Diagnostic> = an
        .diags
        .iter()
        .filter(|d| d.file.starts_with(&prefix) || d.file == dir)
        .collect();
    let json = serde_json::to_string_pretty(&diags).unwrap() + "\n";
    let expected = root().join(dir).join("expected-diagnostics.json");
    golden(&expected, if diags.is_empty() { None } else { Some(&json) });
    let acl = root().join(dir).join("nats.acl");
    match an.services.iter().find(|s| s.dir == dir) {
        Some(s) if !s.blocked => golden(&acl, Some(&gencreds::cli::acl_text(s))),
        Some(_) => {
            assert!(
                diags.iter().any(|d| d.is_error()) || bless(),
                "{dir} blocked without an error in it"
            );
            golden(&acl, None);
        }
        None => golden(&acl, None),
    }
}

macro_rules! cases {
    ($($name:ident => $dir:literal,)*) => {
        $(#[test] fn $name() { check($dir); })*

        #[test]
        fn every_case_folder_has_a_test() {
            let listed: BTreeSet<&str> = [$($dir),*].into_iter().collect();
            let mut found = BTreeSet::new();
            for group in ["apis", "cases"] {
                for e in std::fs::read_dir(root().join(group)).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        found.insert(format!("{group}/{}", e.file_name().to_string_lossy()));
                    }
                }
            }
            let found: BTreeSet<&str> = found.iter().map(String::as_str).collect();
            assert_eq!(found, listed);
        }
    };
}

cases! {
    api_calculator_api => "apis/calculator-api",
    api_calculator_service_fires_its_own_event => "apis/calculator",
    api_bus_helpers => "apis/bus-helpers",
    api_shared_store_helpers => "apis/shared-store-helpers",
    per_service_hosts_a => "cases/per-service-a",
    per_service_hosts_b => "cases/per-service-b",
    api_dev_helper => "apis/dev-helper",
    api_broken_api_reports_each_mistake_once => "apis/broken-api",
    form01_chained => "cases/form01-chained",
    claims_endpoints_fetch_the_access_issuers_keys => "cases/claims-endpoints",
    diag_invalid_claims => "cases/diag-invalid-claims",
    form02_let_bound_shadowing_annotations => "cases/form02-let-bound",
    form03_parameter_typed => "cases/form03-params",
    form04_struct_fields => "cases/form04-fields",
    form05_helpers_across_crates_with_a_cycle => "cases/form05-helpers",
    form06_for_host_literal_and_computed => "cases/form06-for-host",
    form06_computed_host_on_trust_root_is_an_error => "cases/form06-trust-root-dynamic",
    locality_and_instance_addressed_calls_grant_the_host => "cases/locality-addressed",
    form07_multicast => "cases/form07-multicast",
    form08_hook => "cases/form08-hook",
    form08_foreign_trigger_and_raw_event_publish => "cases/form08-foreign-trigger",
    form09_raw_calls => "cases/form09-raw",
    field_hosts_per_construction_site => "cases/field-per-site",
    form10_names_uses_reexports_paths_cargo_renames => "cases/form10-names",
    form11_closures_async_spawn_match_macros => "cases/form11-closures-macros",
    exclusions_never_grant => "cases/exclusions",
    cfg_test_files_never_grant_and_every_alternative_does => "cases/cfg-alternatives",
    api_cfg_helpers => "apis/cfg-helpers",
    path_modules_resolve_as_rustc => "cases/path-modules",
    diag_duplicate_hostname => "cases/diag-duplicate-hostname",
    diag_call_outside_service => "cases/diag-call-outside-service",
    diag_private_runtime_api => "cases/diag-private-runtime-api",
    diag_outside_root_is_never_read => "cases/diag-outside-root",
    diag_port_zero_is_for_subscriptions_only => "cases/diag-port-zero",
    url_special_characters_in_hosts_flatten => "cases/url-special-hosts",
    diag_reserved_all_is_not_a_service_hostname => "cases/diag-reserved-all",
    workspace_exclude_is_honoured => "cases/excluded-member",
    escape_hatch_grants => "cases/escape-hatch",
    edge_proxy_is_granted_the_edge_s_open_ports => "cases/edge-proxy",
    diag_edge_proxy_outside_the_ingress_and_dynamic_calls_elsewhere => "cases/diag-edge-proxy",
    diag_unresolved_call => "cases/diag-unresolved-call",
    diag_unresolved_macro => "cases/diag-unresolved-macro",
    diag_dynamic_url => "cases/diag-dynamic-url",
    diag_unknown_endpoint => "cases/diag-unknown-endpoint",
    diag_ambiguous_receiver => "cases/diag-ambiguous-receiver",
    diag_hostname_mismatch => "cases/diag-hostname-mismatch",
    diag_invalid_route => "cases/diag-invalid-route",
    diag_invalid_grant => "cases/diag-invalid-grant",
    diag_parse_error_rest_still_analysed => "cases/diag-parse-error",
    diag_missing_module => "cases/diag-missing-module",
    diag_trust_root_grant => "cases/diag-trust-root-grant",
    diag_invalid_manifest => "cases/bad-manifest",
    api_store_common_names_and_helpers => "apis/store-api",
    escape_collections => "cases/escape-collections",
    escape_connector_values => "cases/escape-connector",
    connector_values_followed => "cases/connector-followed",
    escape_alias => "cases/escape-alias",
    escape_static => "cases/escape-static",
    escape_enum_tuple_assignment_pattern => "cases/escape-enum-pattern",
    escape_generic_impl_trait_dyn => "cases/escape-generic",
    escape_trait_provided_method => "cases/escape-trait-default",
    escape_macro_rules_and_closure => "cases/escape-macro",
    followed_result_option_mutex_deref => "cases/followed-wrappers",
    host_travels_through_helpers_fields_params => "cases/host-travels",
    computed_host_through_helper_on_trust_root => "cases/host-travels-trust-root",
    endpoint_names_first => "cases/endpoint-names-first",
    client_helpers_form5 => "cases/client-helpers",
}

#[test]
fn orphan_sources_are_reported() {
    let an = analysis();
    let d: Vec<&Diagnostic> = an
        .diags
        .iter()
        .filter(|d| d.file == "orphan-sources")
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].code, Code::NoManifest);
}

/// Codes triggered by the robustness, check and policy tests instead.
const ELSEWHERE: &[Code] = &[
    Code::UnreadableFile,
    Code::FileTooLarge,
    Code::NestingTooDeep,
    Code::SymlinkLoop,
    Code::OutsideRoot,
    Code::BudgetExceeded,
    Code::InvalidRules,
    Code::PolicyViolation,
    Code::InvalidPolicy,
    Code::AclDrift,
    Code::AclMissing,
    Code::InvalidAcl,
    Code::ForeignEndpointHost,    // tests/foreign_endpoint.rs
    Code::PublicEndpointUnlisted, // tests/reach.rs
];

#[test]
fn every_code_is_triggered_by_a_fixture_or_named_elsewhere() {
    let seen: BTreeSet<Code> = analysis().diags.iter().map(|d| d.code).collect();
    for c in Code::ALL {
        assert!(
            seen.contains(c) || ELSEWHERE.contains(c),
            "no test triggers {c}"
        );
    }
}

#[test]
fn output_is_byte_identical_across_runs_and_thread_counts() {
    let one = analyze(
        &root(),
        Options {
            threads: 1,
            ..Options::default()
        },
    )
    .unwrap();
    let an = analysis();
    assert_eq!(one.diags, an.diags);
    let texts =
        |a: &Analysis| -> Vec<String> { a.services.iter().map(gencreds::cli::acl_text).collect() };
    assert_eq!(texts(&one), texts(an));
}

#[test]
fn explain_names_library_call_sites_and_the_service_call_that_reaches_them() {
    let root = root().to_string_lossy().into_owned();
    let mut out = vec![];
    let mut err = vec![];
    let code = gencreds::cli::run(
        [
            "gencreds",
            "explain",
            "form05-helpers.example",
            "PUB {{plane}}.safe.443.*.calculator_example.*.GET.arithmetic",
            "--root",
            &root,
        ],
        &mut out,
        &mut err,
    );
    assert_eq!(code, 0);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "# form05-helpers.example (form05-helpers, cases/form05-helpers/nats.acl)\n\
         PUB {{plane}}.safe.443.form05-helpers_example.calculator_example.*.GET.arithmetic\n    \
         apis/bus-helpers/src/lib.rs:12:7  CalculatorClient::arithmetic (reached from cases/form05-helpers/src/main.rs:9:5)\n"
    );
}
