//! `gencreds sign` end to end: credentials for every service of the fixture
//! application, files 0600 in a 0700 folder, the grants readable in each
//! file; refusal (nothing written) while `check` finds drift; argument
//! errors before any analysis verdict.

use buswarden_creds::keyfile;
use buswarden_creds::keys::KeyKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/app")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut argv = vec!["gencreds"];
    argv.extend_from_slice(args);
    let code = gencreds::cli::run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn signs_every_fixture_service_when_the_tree_is_true_to_code() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/account.nk");
    let account = keyfile::generate_key_file(KeyKind::Account, &key).unwrap();
    let out = dir.path().join("creds");
    let app = app();
    let (code, stdout, stderr) = run(&[
        "sign",
        app.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--deploy",
        "t1",
        "--expires",
        "12h",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["account"], account.public_key());
    assert_eq!(report["deploy"], "t1");
    let services = report["services"].as_array().unwrap();
    // The shop's four services (the token services are core's, signed from
    // core/).
    assert_eq!(services.len(), 4, "{stdout}");
    assert_eq!(mode(&out), 0o700);
    for s in services {
        let host = s["hostname"].as_str().unwrap();
        let path = out.join(format!("{host}_nats.creds"));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        let creds = buswarden_creds::parse_creds(text.as_bytes()).unwrap();
        let user = buswarden_creds::jwt::decode_user(&creds.jwt).unwrap();
        assert_eq!(user.data.name, host);
        // 12 hours from the signing time.
        assert_eq!(user.data.exp - user.data.iat, 12 * 3600, "{host}");
        // `grep '\.danger\.'` on the file lists exactly the danger grants the
        // report names.
        let danger_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with('#') && l.contains(".danger."))
            .collect();
        assert_eq!(
            danger_lines.len(),
            s["danger_grants"].as_array().unwrap().len(),
            "{host}"
        );
    }
    // The gateway calls both Mint endpoints; the order service calls none.
    let gateway = services
        .iter()
        .find(|s| s["hostname"].as_str().unwrap().starts_with("gateway"))
        .expect("a gateway service");
    assert_eq!(gateway["danger_grants"].as_array().unwrap().len(), 2);
    // No seed on any output.
    let seed = regex_free_seed_check(&stdout) || regex_free_seed_check(&stderr);
    assert!(!seed, "a seed was printed");
}

/// Whether `text` holds something shaped like an nkey seed (`S[OAUNC]`
/// followed by 56 base32 characters).
fn regex_free_seed_check(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
        w.len() == 58
            && w.starts_with('S')
            && matches!(w.as_bytes()[1], b'O' | b'A' | b'U' | b'N' | b'C')
            && w[2..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    })
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(from).unwrap();
        if rel.components().any(|c| c.as_os_str() == "target") {
            continue;
        }
        let dest = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn refuses_and_writes_nothing_while_check_finds_drift() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("app");
    copy_tree(&app(), &tree);
    // A hand-edited grant the code does not make.
    let acl = walkdir::WalkDir::new(&tree)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_name() == "nats.acl")
        .expect("a committed nats.acl")
        .into_path();
    let text = std::fs::read_to_string(&acl).unwrap();
    let host = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("# nats.acl for ")
        .unwrap()
        .replace('.', "_");
    let edited = text.replacen(
        "\n\n",
        &format!("\nPUB {{{{plane}}}}.safe.443.{host}.ledger_example.*.GET.all\n\n"),
        1,
    );
    std::fs::write(&acl, edited).unwrap();

    let key = dir.path().join("account.nk");
    keyfile::generate_key_file(KeyKind::Account, &key).unwrap();
    let out = dir.path().join("creds");
    let (code, stdout, stderr) = run(&[
        "sign",
        tree.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("acl-drift"), "{stderr}");
    assert!(stderr.contains("nothing was signed"), "{stderr}");
    assert!(
        stdout.contains("ledger_example"),
        "the diff names the rule: {stdout}"
    );
    assert!(!out.exists(), "creds folder written despite the refusal");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let user_key = dir.path().join("user.nk");
    keyfile::generate_key_file(KeyKind::User, &user_key).unwrap();
    let out = dir.path().join("creds");
    let app = app();
    let sign_with = |extra: &[&str]| {
        let mut args = vec![
            "sign",
            app.to_str().unwrap(),
            "--signing-key",
            user_key.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (code, _, stderr) = sign_with(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("account key"), "{stderr}");
    let (code, _, stderr) = sign_with(&["--expires", "soon"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("soon"), "{stderr}");
    let (code, _, stderr) = sign_with(&["--plane", "Bad.Plane"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("Bad.Plane"), "{stderr}");
    assert!(!out.exists());
    assert!(!regex_free_seed_check(&stderr), "{stderr}");
}

/// Issue 15, Low: a signing key file group or others may read is refused
/// (exit 2, the path and `chmod 600` named) before anything is signed.
#[test]
fn a_signing_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/account.nk");
    keyfile::generate_key_file(KeyKind::Account, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = dir.path().join("creds");
    let app = app();
    let (code, stdout, stderr) = run(&[
        "sign",
        app.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("account.nk") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

/// Issue 15, High 1: the catalog's committed `nats.acl` edited to add
/// `SUB {{plane}}.safe.*.*.orders_example.>` (the CI request of the issue):
/// `gencreds sign` refuses and writes nothing.
#[test]
fn refuses_a_foreign_sub_grant_in_a_committed_acl() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("app");
    copy_tree(&app(), &tree);
    let acl = tree.join("catalog/service/nats.acl");
    let text = std::fs::read_to_string(&acl).unwrap();
    let edited = text.replacen(
        "SUB {{plane}}.safe.*.*.catalog_example.>\n",
        "SUB {{plane}}.safe.*.*.catalog_example.>\nSUB {{plane}}.safe.*.*.orders_example.>\n",
        1,
    );
    assert_ne!(edited, text);
    std::fs::write(&acl, edited).unwrap();
    let key = dir.path().join("account.nk");
    keyfile::generate_key_file(KeyKind::Account, &key).unwrap();
    let out = dir.path().join("creds");
    let (code, stdout, stderr) = run(&[
        "sign",
        tree.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("orders_example") || stderr.contains("orders_example"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stderr.contains("nothing was signed"), "{stderr}");
    assert!(!out.exists(), "creds folder written despite the refusal");
}
