//! The benchmark's workload at toy size: the generated workspace is clean,
//! every service gets its rules, and a cached rescan says the same.

use gencreds::analysis::{Options, analyze, analyze_cached};

#[test]
fn synthetic_workspace_analyses_clean_and_rescans_identically() {
    let dir = tempfile::tempdir().unwrap();
    let stats = gencreds::synth::generate(dir.path(), 20).unwrap();
    assert_eq!((stats.crates, stats.files), (21, 61));
    assert!(stats.lines > 20_000, "{stats:?}");
    let an = analyze(dir.path(), Options::default()).unwrap();
    assert!(an.diags.is_empty(), "{:#?}", an.diags);
    assert_eq!(an.services.len(), 20);
    let svc0 = gencreds::cli::acl_text(&an.services[0]);
    assert_eq!(
        svc0.lines()
            .filter(|l| l.starts_with("PUB "))
            .collect::<Vec<_>>(),
        [
            "PUB {{plane}}.reply._.svc0_example.>",
            "PUB {{plane}}.safe.443.svc0_example.alt0_example.*.PUT.update3",
            "PUB {{plane}}.safe.443.svc0_example.api0_example.*.GET.items0.*",
            "PUB {{plane}}.safe.443.svc0_example.api0_example.*.POST.do1",
            "PUB {{plane}}.safe.443.svc0_example.audit_example.*.POST.events",
            "PUB {{plane}}.safe.444.svc0_example.api0_example.*.GET.files2.>",
            "PUB {{plane}}.safe.444.svc0_example.raw0_example.*.GET.status",
        ]
    );
    let cache = dir.path().join("target/cache");
    let cold = analyze_cached(dir.path(), Options::default(), &cache).unwrap();
    let warm = analyze_cached(dir.path(), Options::default(), &cache).unwrap();
    let texts = |a: &gencreds::Analysis| -> Vec<String> {
        a.services.iter().map(gencreds::cli::acl_text).collect()
    };
    assert_eq!(texts(&cold), texts(&an));
    assert_eq!(texts(&warm), texts(&an));
}

#[test]
fn synthetic_workspace_model_edges_are_its_pub_rules() {
    let dir = tempfile::tempdir().unwrap();
    gencreds::synth::generate(dir.path(), 20).unwrap();
    let an = analyze(dir.path(), Options::default()).unwrap();
    let model = gencreds::reach::model(&[&an]);
    let edges: std::collections::BTreeSet<(String, String)> = model
        .edges
        .iter()
        .filter_map(|e| Some((e.from.clone(), e.rule.clone()?)))
        .collect();
    let mut rules = std::collections::BTreeSet::new();
    for s in &an.services {
        for l in gencreds::cli::acl_text(s).lines() {
            if l.starts_with("PUB ") && !l.contains(".reply._.") {
                rules.insert((s.model.hostname.to_string(), l.to_string()));
            }
        }
    }
    assert_eq!(edges, rules);
    assert_eq!(model.services.iter().filter(|s| s.in_tree).count(), 20);
    let html = gencreds::graph::html(&model);
    assert!(html.contains("id=\"n-svc0.example\""));
}
