//! Every busop command run in-process: init, inspect, audit, diff (files,
//! folders, git revisions, Markdown snapshot), import-nsc, completions, man,
//! and the guarantees across them (no seed in any output, clear errors on
//! bad files, the `\.danger\.` audit).

mod common;

use buswarden_creds::jwt;
use common::*;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_private_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let keys = dir.path().join("keys");
    assert_eq!(mode(&keys), 0o700);
    let mut nk = 0;
    for e in walk(&keys) {
        if e.is_dir() {
            assert_eq!(mode(&e), 0o700, "{}", e.display());
        } else {
            assert_eq!(mode(&e), 0o600, "{}", e.display());
            nk += 1;
        }
    }
    assert_eq!(
        nk, 6,
        "operator, operator signing, 2 accounts with a signing key each"
    );
    assert_eq!(mode(&dir.path().join("creds")), 0o700);
    assert_eq!(mode(&dir.path().join("creds/sys.creds")), 0o600);
    let gi = std::fs::read_to_string(dir.path().join(".gitignore")).unwrap();
    assert!(gi.contains("keys/") && gi.contains("*.creds") && gi.contains("*.nk"));
    let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
    assert!(conf.contains("type: full") && conf.contains("resolver_preload"));

    let before = std::fs::read_to_string(dir.path().join("operator.jwt")).unwrap();
    let again = busop(dir.path(), &["init"]);
    assert_eq!(again.code, 2);
    assert!(
        again.stderr.contains("already exists") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("operator.jwt")).unwrap(),
        before
    );
    let forced = busop(dir.path(), &["init", "--force"]);
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_ne!(
        std::fs::read_to_string(dir.path().join("operator.jwt")).unwrap(),
        before
    );

    let url = tempfile::tempdir().unwrap();
    let out = busop(
        url.path(),
        &[
            "init",
            "--url-resolver",
            "http://accounts.internal:9090/jwt/v1/accounts/",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let conf = std::fs::read_to_string(url.path().join("nats-server.conf")).unwrap();
    assert!(
        conf.contains("resolver: URL(\"http://accounts.internal:9090/jwt/v1/accounts/\")"),
        "{conf}"
    );
    assert!(
        !conf.contains("resolver_preload"),
        "a URL resolver takes no preload"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn inspect_verifies_the_chain_and_marks_danger() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let creds_dir = dir.path().join("deploy");
    let (creds, user) = mint_creds(
        dir.path(),
        CALC_ACL,
        &creds_dir,
        Some(7 * 86400),
        jwt::now(),
    );
    let app = dir.path().join("accounts/APP.jwt");
    let op = dir.path().join("operator.jwt");
    let out = busop(
        dir.path(),
        &[
            "inspect",
            creds.to_str().unwrap(),
            app.to_str().unwrap(),
            op.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&user));
    assert!(
        out.stdout.contains("chain       verified"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not revoked"));
    let danger: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("danger"))
        .collect();
    assert_eq!(danger.len(), 1, "{}", out.stdout);
    assert!(danger[0].contains("microbus.danger.666.calc_example.shell_core.*.POST.execute"));
    assert!(
        out.stdout
            .contains("wildcard microbus.safe.443.calc_example.*.*.GET.items.*"),
        "{}",
        out.stdout
    );

    let json = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "inspect",
            creds.to_str().unwrap(),
            app.to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let f = &v["files"][0];
    assert_eq!(f["kind"], "user");
    assert_eq!(
        f["chain"]["status"], "verified",
        "the setup's operator (--dir) completes the chain"
    );
    let json = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "inspect",
            "--no-setup",
            creds.to_str().unwrap(),
            app.to_str().unwrap(),
        ],
    );
    let v2: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v2["files"][0]["chain"]["status"], "partial");
    let alone = tempfile::tempdir().unwrap();
    let json = busop(
        alone.path(),
        &["--format", "json", "inspect", creds.to_str().unwrap()],
    );
    let v3: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v3["files"][0]["chain"]["status"], "unverified");
    assert_eq!(v3["files"][0]["revoked"], serde_json::Value::Null);
    assert_eq!(f["revoked"], false);
    assert_eq!(
        f["danger"][0],
        "PUB microbus.danger.666.calc_example.shell_core.*.POST.execute"
    );
    assert_eq!(
        f["permissions"]["PUB"]["allow"].as_array().unwrap().len(),
        3
    );
    assert_eq!(f["tags"][0], "deploy:d1");

    // Revoked and expired are reported.
    let out = busop(dir.path(), &["revoke", "--user", &user, "--no-push"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = busop(
        dir.path(),
        &["inspect", creds.to_str().unwrap(), app.to_str().unwrap()],
    );
    assert!(out.stdout.contains("REVOKED"), "{}", out.stdout);
    let (old, _) = mint_creds(
        dir.path(),
        CALC_ACL,
        &dir.path().join("old"),
        Some(60),
        jwt::now() - 3600,
    );
    let out = busop(dir.path(), &["inspect", old.to_str().unwrap()]);
    assert!(out.stdout.contains("EXPIRED"), "{}", out.stdout);
}

#[test]
fn bad_files_get_a_clear_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let d = dir.path().join("bad");
    std::fs::create_dir_all(&d).unwrap();
    let (good, _) = mint_creds(dir.path(), CALC_ACL, &d, Some(3600), jwt::now());
    let text = std::fs::read_to_string(&good).unwrap();
    let token = text.lines().nth(1).unwrap().to_string();
    let app = std::fs::read_to_string(dir.path().join("accounts/APP.jwt")).unwrap();

    // Tampered: one payload character changed.
    let mut tampered = token.clone();
    let i = tampered.len() - 20;
    let c = if &tampered[i..i + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(i..i + 1, c);
    // A foreign creds: the JWT of one user with the seed of another.
    let other = buswarden_creds::KeyPair::generate(buswarden_creds::KeyKind::User);
    let foreign = buswarden_creds::creds::format_user_config(&token, &other.seed());
    // An account JWT whose signature was made by another operator.
    let mut acc = jwt::decode_account(app.trim()).unwrap();
    let stranger = buswarden_creds::KeyPair::generate(buswarden_creds::KeyKind::Operator);
    let foreign_account = jwt::encode(&mut acc, &stranger, jwt::now()).unwrap();
    let seed_file = dir
        .path()
        .join("keys")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let seed_file = walk(&seed_file).into_iter().find(|p| p.is_file()).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("tampered.jwt", tampered.clone().into_bytes(), "signature"),
        (
            "tampered.creds",
            text.replace(&token, &tampered).into_bytes(),
            "signature",
        ),
        (
            "truncated.creds",
            text.as_bytes()[..text.len() / 3].to_vec(),
            "",
        ),
        (
            "truncated.jwt",
            token.as_bytes()[..token.len() - 30].to_vec(),
            "",
        ),
        (
            "garbage.jwt",
            b"hello world, not a token".to_vec(),
            "not a NATS JWT",
        ),
        ("empty.creds", Vec::new(), "empty"),
        ("binary.jwt", vec![0xff, 0xfe, 0x00, 0x80], "UTF-8"),
        ("foreign.creds", foreign.to_vec(), "belongs to"),
        ("segments.jwt", b"eyJhbGciOi.eyJzdWIi".to_vec(), "segments"),
        (
            "acl/nats.acl",
            b"# nats.acl for x.example\nPUB not a rule\n".to_vec(),
            "",
        ),
    ];
    for (name, bytes, want) in &cases {
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        let out = busop(dir.path(), &["inspect", p.to_str().unwrap()]);
        assert_eq!(out.code, 2, "{name}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains(p.to_str().unwrap()),
            "{name}: error must name the file: {}",
            out.stderr
        );
        assert!(out.stderr.contains(want), "{name}: {}", out.stderr);
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "{name}: one clear line: {}",
            out.stderr
        );
    }
    let out = busop(dir.path(), &["inspect", seed_file.to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("seed") && out.stderr.contains(seed_file.to_str().unwrap()),
        "{}",
        out.stderr
    );
    let p = d.join("foreign-account.jwt");
    std::fs::write(&p, &foreign_account).unwrap();
    let op = dir.path().join("operator.jwt");
    let out = busop(
        dir.path(),
        &["inspect", p.to_str().unwrap(), op.to_str().unwrap()],
    );
    assert!(
        out.stdout.contains("broken") && out.stdout.contains("not operator"),
        "{}",
        out.stdout
    );
    let missing = d.join("missing.creds");
    let out = busop(dir.path(), &["inspect", missing.to_str().unwrap()]);
    assert!(out.stderr.contains("missing.creds"), "{}", out.stderr);

    // audit over the folder: one line per bad file, the good one still audited, exit 2.
    let out = busop(
        dir.path(),
        &["--format", "json", "audit", d.to_str().unwrap()],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["summary"]["services"], 1);
    assert_eq!(v["errors"].as_array().unwrap().len(), 5, "{}", out.stdout);
    for e in v["errors"].as_array().unwrap() {
        assert!(
            e["error"]
                .as_str()
                .unwrap()
                .contains(e["file"].as_str().unwrap())
        );
    }
}

#[test]
fn audit_reports_policy_violations_expiry_and_the_precise_danger_grep() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let deploy = dir.path().join("deploy");
    let (zone, _) = mint_creds(
        dir.path(),
        DANGER_ZONE_ACL,
        &deploy,
        Some(30 * 86400),
        jwt::now(),
    );
    let (calc, _) = mint_creds(dir.path(), CALC_ACL, &deploy, Some(3600), jwt::now());
    std::fs::write(
        deploy.join("buswarden.toml"),
        "version = 1\n[caller.\"danger-zone.example\"]\ntrust-root = [\"POST access.token.core:666/mint\"]\n",
    )
    .unwrap();
    let out = busop(
        dir.path(),
        &["--format", "json", "audit", deploy.to_str().unwrap()],
    );
    assert_eq!(
        out.code, 1,
        "calc's :666 grant is not in the policy: {}{}",
        out.stdout, out.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["summary"]["violations"], 2, "{}", out.stdout); // unlisted trust-root + unlisted wildcard
    assert_eq!(v["summary"]["danger"], 2);
    assert_eq!(v["summary"]["expiring_soon"], 1);
    assert_eq!(v["grep"], r"grep '\.danger\.'");
    let calc_v = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "calc.example")
        .unwrap();
    let codes: Vec<&str> = calc_v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["unlisted-trust-root-grant", "unlisted-wildcard-grant"]
    );
    let human = busop(dir.path(), &["audit", deploy.to_str().unwrap()]);
    assert!(
        human.stdout.contains(r"grep '\.danger\.'"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("VIOLATION [unlisted-trust-root-grant]")
    );

    // A bare `grep danger` also matches the host danger-zone and the path
    // /dangerous; `grep '\.danger\.'` lists exactly the trust-root grants.
    let grep = |pattern: &str, file: &Path| -> Vec<String> {
        let out = Command::new("grep")
            .arg(pattern)
            .arg(file)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let bare = grep("danger", &zone);
    let precise = grep(r"\.danger\.", &zone);
    assert!(bare.len() > precise.len() + 3, "bare: {bare:#?}");
    assert!(
        bare.iter()
            .any(|l| l.contains("GET.dangerous") && !l.contains(".danger.666"))
    );
    assert!(
        bare.iter()
            .any(|l| l.starts_with("# SUB") && l.contains("danger-zone_example"))
    );
    let zone_v = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "danger-zone.example")
        .unwrap();
    let audited: Vec<String> = zone_v["danger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("# {}", d.as_str().unwrap()))
        .collect();
    assert_eq!(
        precise, audited,
        "grep '\\.danger\\.' = busop audit's trust-root list"
    );
    assert!(zone_v["violations"].as_array().unwrap().is_empty());
    let _ = calc;

    // nats.acl files audit the same way; expired creds are counted.
    let src = dir.path().join("src/zone");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("nats.acl"), DANGER_ZONE_ACL).unwrap();
    mint_creds(
        dir.path(),
        CALC_ACL,
        &dir.path().join("src/old"),
        Some(10),
        jwt::now() - 100,
    );
    let out = busop(
        dir.path(),
        &[
            "--format",
            "json",
            "audit",
            dir.path().join("src").to_str().unwrap(),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["summary"]["services"], 2);
    assert_eq!(v["summary"]["expired"], 1);
    assert_eq!(v["policy"], serde_json::Value::Null);
    assert_eq!(
        out.code, 0,
        "without a policy file, static trust-root grants are warnings"
    );
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn diff_between_git_revisions_reads_well_as_a_pull_request_comment() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let write = |path: &str, text: &str| {
        let p = r.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "services/calc/nats.acl",
        "# nats.acl for calc.example
PUB {{plane}}.reply._.calc_example.>
PUB {{plane}}.safe.443.calc_example.store_example.*.GET.items.*

SUB {{plane}}.reply._.*.calc_example.*
SUB {{plane}}.safe.*.*.calc_example.>
SUB {{plane}}.safe.888.*.all.>
",
    );
    write(
        "services/ingress/nats.acl",
        "# nats.acl for ingress.core
PUB {{plane}}.reply._.ingress_core.>
PUB {{plane}}.safe.443.ingress_core.calc_example.*.GET.arithmetic

SUB {{plane}}.reply._.*.ingress_core.*
SUB {{plane}}.safe.*.*.ingress_core.>
SUB {{plane}}.safe.888.*.all.>
",
    );
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "one"]);
    write(
        "services/calc/nats.acl",
        "# nats.acl for calc.example
PUB {{plane}}.danger.666.calc_example.access_token_core.*.POST.mint
PUB {{plane}}.reply._.calc_example.>
PUB {{plane}}.safe.443.calc_example.store_example.*.GET.items.*
PUB {{plane}}.safe.443.calc_example.store_example.*.PUT.items.*

SUB {{plane}}.reply._.*.calc_example.*
SUB {{plane}}.safe.*.*.calc_example.>
SUB {{plane}}.safe.888.*.all.>
",
    );
    write(
        "services/ingress/nats.acl",
        "# nats.acl for ingress.core
PUB {{plane}}.reply._.ingress_core.>

SUB {{plane}}.reply._.*.ingress_core.*
SUB {{plane}}.safe.*.*.ingress_core.>
SUB {{plane}}.safe.888.*.all.>
",
    );
    write(
        "services/audit/nats.acl",
        "# nats.acl for audit.example
PUB {{plane}}.reply._.audit_example.>

SUB {{plane}}.reply._.*.audit_example.*
SUB {{plane}}.safe.*.*.audit_example.>
SUB {{plane}}.safe.417.*.calc_example.*.POST.on-overflow
SUB {{plane}}.safe.888.*.all.>
",
    );
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "two"]);

    let cwd = std::env::current_dir().unwrap();
    // git runs in the current folder; the test binary's cwd is the crate, so point git at the repo.
    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args([
            "diff",
            "--format",
            "markdown",
            "git:HEAD~1:services",
            "git:HEAD:services",
        ])
        .current_dir(r)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("diff_markdown_pull_request", md);
    assert_eq!(std::env::current_dir().unwrap(), cwd);

    // Danger first in the text output; JSON counts; --exit-code.
    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args([
            "diff",
            "--exit-code",
            "git:HEAD~1:services",
            "git:HEAD:services",
        ])
        .current_dir(r)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let first_change = text.lines().nth(1).unwrap();
    assert!(
        first_change.contains("danger +PUB {{plane}}.danger.666"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args([
            "--format",
            "json",
            "diff",
            "git:HEAD~1:services/calc/nats.acl",
            "services/calc/nats.acl",
        ])
        .current_dir(r)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["danger"], 1);
    assert_eq!(v["services"][0]["widens"], true);
    // A folder the change adds: the old side is empty, the service is added.
    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args([
            "--format",
            "json",
            "diff",
            "git:HEAD~1:services/audit",
            "git:HEAD:services/audit",
        ])
        .current_dir(r)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["services"][0]["status"], "added");
    // Paths are relative to the current folder, as in git.
    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args(["diff", "git:HEAD~1:calc", "git:HEAD:calc"])
        .current_dir(r.join("services"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("calc.example (changed, git:HEAD:services/calc/nats.acl)"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args(["diff", "git:nope:services", "git:HEAD:services"])
        .current_dir(r)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("git ls-tree"));
}

#[test]
fn diff_of_folders_compares_creds_with_nats_acl() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let (creds, _) = mint_creds(
        dir.path(),
        CALC_ACL,
        &dir.path().join("live"),
        Some(3600),
        jwt::now(),
    );
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("nats.acl"), CALC_ACL).unwrap();
    let out = busop(
        dir.path(),
        &["diff", creds.to_str().unwrap(), src.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "no grant changes\n");
}

#[test]
fn import_nsc_takes_over_a_store_without_rekeying() {
    use buswarden_creds::{AccountClaims, KeyKind, KeyPair, OperatorClaims, UserClaims};
    let nsc = tempfile::tempdir().unwrap();
    let store = nsc.path().join("stores");
    let keys = nsc.path().join("nkeys");
    let put_key = |kp: &KeyPair| {
        let p = busop::setup::key_path(&keys.join("keys"), kp.public_key());
        buswarden_creds::keyfile::write_key_file(kp, &p).unwrap();
    };
    let op = KeyPair::generate(KeyKind::Operator);
    let op_sk = KeyPair::generate(KeyKind::Operator);
    let sys = KeyPair::generate(KeyKind::Account);
    let app = KeyPair::generate(KeyKind::Account);
    let app_sk = KeyPair::generate(KeyKind::Account);
    let sys_user = KeyPair::generate(KeyKind::User);
    for k in [&op, &op_sk, &sys, &app, &app_sk] {
        put_key(k);
    }
    let now = jwt::now();
    let mut oc = OperatorClaims::new_operator(op.public_key());
    oc.data.name = "acme".into();
    oc.nats.signing_keys = vec![op_sk.public_key().into()];
    oc.nats.system_account = sys.public_key().into();
    let op_jwt = jwt::encode(&mut oc, &op, now).unwrap();
    let mut sc = AccountClaims::new_account(sys.public_key());
    sc.data.name = "SYS".into();
    let sys_jwt = jwt::encode(&mut sc, &op, now).unwrap(); // nsc signs with the identity key by default
    let mut ac = AccountClaims::new_account(app.public_key());
    ac.data.name = "orders".into();
    ac.nats.signing_keys.add_plain(app_sk.public_key());
    let app_jwt = jwt::encode(&mut ac, &op_sk, now).unwrap();
    let mut uc = UserClaims::new_user(sys_user.public_key());
    uc.data.name = "sys".into();
    let user_jwt = jwt::encode(&mut uc, &sys, now).unwrap();
    let od = store.join("acme");
    std::fs::create_dir_all(od.join("accounts/SYS/users")).unwrap();
    std::fs::create_dir_all(od.join("accounts/orders/users")).unwrap();
    std::fs::write(od.join("acme.jwt"), &op_jwt).unwrap();
    std::fs::write(od.join("accounts/SYS/SYS.jwt"), &sys_jwt).unwrap();
    std::fs::write(od.join("accounts/SYS/users/sys.jwt"), &user_jwt).unwrap();
    std::fs::write(od.join("accounts/orders/orders.jwt"), &app_jwt).unwrap();
    let cd = keys.join("creds/acme/SYS");
    std::fs::create_dir_all(&cd).unwrap();
    std::fs::write(
        cd.join("sys.creds"),
        &*buswarden_creds::creds::format_user_config(&user_jwt, &sys_user.seed()),
    )
    .unwrap();

    let target = tempfile::tempdir().unwrap();
    let out = busop(
        target.path(),
        &[
            "--format",
            "json",
            "import-nsc",
            store.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--listen",
            "127.0.0.1:-1",
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["application_account"], "orders");
    assert!(
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["imported"] == true),
        "{}",
        out.stdout
    );
    assert!(
        v["system_user"]
            .as_str()
            .unwrap()
            .starts_with(sys_user.public_key())
    );
    let setup = busop::setup::Setup::open(target.path()).unwrap();
    assert_eq!(
        setup.account(None).unwrap().claims.data.sub,
        app.public_key()
    );
    assert_eq!(
        setup.operator_signer().unwrap().public_key(),
        op_sk.public_key()
    );
    assert_eq!(
        mode(&busop::setup::key_path(
            &setup.keys_dir(),
            app_sk.public_key()
        )),
        0o600
    );

    // The imported setup runs: the server accepts its config, and a change
    // to the application account pushes and is confirmed.
    let conf = std::fs::read_to_string(target.path().join("nats-server.conf")).unwrap();
    let server = buswarden_testkit::NatsServer::start(&conf).expect("imported config runs");
    let u = KeyPair::generate(KeyKind::User);
    let out = busop(
        target.path(),
        &[
            "--format",
            "json",
            "revoke",
            "--user",
            u.public_key(),
            "--server",
            server.url(),
        ],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["change"]["push"]["confirmed"], true, "{}", out.stdout);
    // A second import refuses to overwrite.
    let again = busop(
        target.path(),
        &[
            "import-nsc",
            store.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ],
    );
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("already exists"));
}

#[test]
fn completions_man_and_reference_come_from_the_clap_definitions() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = busop(dir.path(), &["completions", shell]);
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("import-nsc"), "{shell}");
    }
    let man = busop(dir.path(), &["man"]);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH busop"),
        "{}",
        &man.stdout[..200]
    );
    assert!(man.stdout.contains("audit"));
    // docs/busop.md embeds the generated reference; it must be current.
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/busop.md"))
            .unwrap();
    let reference = busop::reference::markdown();
    assert!(
        doc.contains(&reference),
        "docs/busop.md is stale: cargo run -p busop --example reference -- --write docs/busop.md"
    );
}

#[test]
fn help_of_every_command_is_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = String::new();
    let commands: &[&[&str]] = &[
        &[],
        &["init"],
        &["inspect"],
        &["audit"],
        &["diff"],
        &["why"],
        &["revoke"],
        &["rotate"],
        &["rotate", "account-key"],
        &["rotate", "operator-key"],
        &["rotate", "check"],
        &["push"],
        &["prune"],
        &["import-nsc"],
        &["account-server"],
        &["completions"],
        &["man"],
    ];
    for c in commands {
        let mut args: Vec<&str> = c.to_vec();
        args.push("--help");
        let out = busop(dir.path(), &args);
        assert_eq!(out.code, 0, "{c:?}: {}", out.stderr);
        all.push_str(&format!(
            "===== busop {} --help\n{}\n",
            c.join(" "),
            out.stdout
        ));
    }
    insta::assert_snapshot!("help", all);
}

#[test]
fn a_seed_inside_a_crafted_file_is_never_echoed() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let kp = buswarden_creds::KeyPair::generate(buswarden_creds::KeyKind::Account);
    let seed = kp.seed().expose().to_string();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = b64.encode(format!(
        r#"{{"iss":"{seed}","sub":"{}","nats":{{"type":"user","version":2}}}}"#,
        kp.public_key()
    ));
    let token = format!("{header}.{payload}.{}", b64.encode([7u8; 64]));
    let p = dir.path().join("crafted.jwt");
    std::fs::write(&p, &token).unwrap();
    for format in ["human", "json"] {
        let out = busop(
            dir.path(),
            &["--format", format, "inspect", p.to_str().unwrap()],
        );
        assert_eq!(out.code, 2);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(!text.contains(&seed), "{text}");
        assert!(
            text.contains("crafted.jwt") && text.contains("<seed redacted>"),
            "{text}"
        );
    }
}

#[test]
fn audit_catches_a_grants_block_that_hides_a_danger_grant_from_grep() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let deploy = dir.path().join("deploy");
    let (creds, _) = mint_creds(dir.path(), CALC_ACL, &deploy, Some(3600), jwt::now());
    let text = std::fs::read_to_string(&creds).unwrap();
    let edited: String = text
        .lines()
        .filter(|l| !(l.starts_with("# PUB") && l.contains(".danger.")))
        .map(|l| format!("{l}\n"))
        .collect();
    // A block whose header no longer counts its lines is not a `.creds`
    // file the strict reader accepts: refused outright.
    std::fs::write(&creds, &edited).unwrap();
    let out = busop(dir.path(), &["audit", deploy.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("line 15"), "{}", out.stderr);
    // A careful edit fixes the counts too: it parses, and the audit
    // compares the block with the JWT.
    let pubs = text.lines().filter(|l| l.starts_with("# PUB")).count();
    let edited = edited.replacen(
        &format!("; {pubs} PUB, "),
        &format!("; {} PUB, ", pubs - 1),
        1,
    );
    std::fs::write(&creds, edited).unwrap();
    let grep = Command::new("grep")
        .arg(r"\.danger\.")
        .arg(&creds)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "the edited block hides the grant from grep"
    );
    let out = busop(
        dir.path(),
        &["--format", "json", "audit", deploy.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let found = &v["services"][0]["violations"];
    let mismatch = found
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "grants-block-mismatch")
        .unwrap();
    assert_eq!(
        mismatch["rule"],
        "PUB microbus.danger.666.calc_example.shell_core.*.POST.execute"
    );
    assert_eq!(
        v["services"][0]["danger"][0],
        "PUB microbus.danger.666.calc_example.shell_core.*.POST.execute"
    );
}

/// The fixture application's committed grants, before and after a pull
/// request in which the orders service starts calling the access token
/// service's trust-root Mint and stops calling one catalog endpoint: the
/// comment a reviewer sees.
#[test]
fn diff_of_the_fixture_applications_grants_reads_well_as_a_pull_request_comment() {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/app");
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let mut acls = vec![];
    for entry in walkdir_acls(&app) {
        let rel = entry.strip_prefix(&app).unwrap().to_path_buf();
        let dest = r.join("app").join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
        acls.push(rel);
    }
    assert_eq!(
        acls.len(),
        4,
        "the fixture application has four services of its own"
    );
    git(r, &["add", "."]);
    git(r, &["commit", "-qm", "base"]);

    let orders = r.join("app/orders/service/nats.acl");
    let text = std::fs::read_to_string(&orders).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let dropped = lines
        .iter()
        .position(|l| l.starts_with("PUB {{plane}}.safe.") && l.contains(".catalog_example."))
        .expect("orders calls the catalog");
    lines.remove(dropped);
    lines.insert(
        2,
        "PUB {{plane}}.danger.666.orders_example.access_token_core.*.POST.mint".to_string(),
    );
    std::fs::write(&orders, lines.join("\n") + "\n").unwrap();
    git(r, &["commit", "-qam", "orders mints tokens"]);

    let out = Command::new(env!("CARGO_BIN_EXE_busop"))
        .args([
            "diff",
            "--format",
            "markdown",
            "git:HEAD~1:app",
            "git:HEAD:app",
        ])
        .current_dir(r)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("diff_markdown_fixture_application", md);
}

/// Every `nats.acl` under `root`, sorted.
fn walkdir_acls(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() && e.file_name() != "target" {
                stack.push(p);
            } else if e.file_name() == "nats.acl" {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A `.creds` file for `hostname` signed with `sub_allow` as its SUB allow
/// list, without the validator (what a signer lacking it produced), with a
/// grants block that matches the JWT.
fn hand_minted(setup: &Path, acl: &str, sub_allow: &[&str], out: &Path) -> std::path::PathBuf {
    use buswarden_creds::creds::{GrantsBlock, format_creds};
    use buswarden_creds::keys::{KeyKind, KeyPair};
    use buswarden_creds::sign::{UserGrant, user_claims};
    use buswarden_rules::Verb;
    let (app, key) = app_signer(setup);
    let parsed = buswarden_rules::acl::parse(acl).unwrap();
    let user = KeyPair::generate(KeyKind::User);
    let plane = buswarden_rules::Plane::parse("microbus").unwrap();
    let mut claims = user_claims(
        user.public_key(),
        &parsed.hostname,
        &parsed.rules,
        &UserGrant {
            plane: &plane,
            deploy: "d1",
            exp: jwt::now() + 3600,
            issuer_account: Some(app.claims.data.sub.as_str()),
        },
    );
    claims.nats.limits.subscribe.allow = sub_allow.iter().map(|s| s.to_string()).collect();
    let token = jwt::encode(&mut claims, &key, jwt::now()).unwrap();
    let mut pubs = claims.nats.limits.publish.allow.clone();
    let mut subs = claims.nats.limits.subscribe.allow.clone();
    pubs.sort();
    subs.sort();
    let block = GrantsBlock {
        hostname: parsed.hostname.to_string(),
        plane: "microbus".into(),
        deploy: "d1".into(),
        expires: claims.data.exp,
        grants: pubs
            .into_iter()
            .map(|s| (Verb::Pub, s))
            .chain(subs.into_iter().map(|s| (Verb::Sub, s)))
            .collect(),
    };
    std::fs::create_dir_all(out).unwrap();
    let path = out.join(format!("{}_nats.creds", parsed.hostname));
    std::fs::write(&path, &*format_creds(&token, &user.seed(), &block)).unwrap();
    path
}

/// Issue 15, High 1 and 3: `busop audit` flags a user holding a SUB on
/// another host's requests (the validator every signer runs) and SUB entries
/// not pinned to the service's own queue group.
#[test]
fn audit_flags_foreign_sub_grants_and_unpinned_queue_groups() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let deploy = dir.path().join("deploy");
    let own = [
        "microbus.reply._.*.calc_example.*",
        "microbus.safe.*.*.calc_example.>",
        "microbus.safe.*.*.calc_example.> calc_example",
        "microbus.safe.888.*.all.>",
    ];
    let mut subs = own.to_vec();
    subs.push("microbus.safe.*.*.orders_example.> calc_example");
    subs.push("microbus.safe.417.*.catalog_example.*.POST.on-item-changed");
    subs.push("microbus.safe.417.*.catalog_example.*.POST.on-x orders_example");
    hand_minted(dir.path(), CALC_ACL, &subs, &deploy);
    let out = busop(
        dir.path(),
        &["--format", "json", "audit", deploy.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let found: Vec<(String, String)> = v["services"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let has = |code: &str, rule: &str| found.iter().any(|(c, r)| c == code && r == rule);
    assert!(
        has(
            "foreign-destination",
            "SUB {{plane}}.safe.*.*.orders_example.>"
        ),
        "{found:?}"
    );
    assert!(
        has(
            "queue-group-not-pinned",
            "SUB microbus.safe.417.*.catalog_example.*.POST.on-item-changed"
        ),
        "{found:?}"
    );
    assert!(
        has(
            "queue-group-not-pinned",
            "SUB microbus.safe.417.*.catalog_example.*.POST.on-x orders_example"
        ),
        "{found:?}"
    );
    assert_eq!(found.len(), 3, "{found:?}");
    let human = busop(dir.path(), &["audit", deploy.to_str().unwrap()]);
    assert!(
        human.stdout.contains("VIOLATION [foreign-destination]"),
        "{}",
        human.stdout
    );

    // The same user signed true to code: nothing to report.
    std::fs::remove_dir_all(&deploy).unwrap();
    hand_minted(dir.path(), CALC_ACL, &own, &deploy);
    let out = busop(dir.path(), &["audit", deploy.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

/// Issue 15, Medium 6: a `.creds` file with a decoy block (which grep and
/// the old audit read as one JWT while the runtime connected with another)
/// is refused by `busop audit` and `inspect`, naming the line, never
/// showing the seed.
#[test]
fn audit_and_inspect_refuse_a_creds_file_with_a_decoy_block() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let deploy = dir.path().join("deploy");
    let (creds, _) = mint_creds(dir.path(), CALC_ACL, &deploy, Some(3600), jwt::now());
    let real = std::fs::read_to_string(&creds).unwrap();
    let seed = real.lines().nth(9).unwrap().to_string();
    let marker = "-----BEGIN NATS USER JWT-----\n";
    let decoy = real.replacen(
        marker,
        &format!(
            "{marker}-----BEGIN DECOY-----\neyJ0eXAiOiJKV1QifQ.eyJ9.c2ln\n------END DECOY------\n\n"
        ),
        1,
    );
    for text in [decoy, real.replace('\n', "\r\n"), format!("{real}{real}")] {
        std::fs::write(&creds, &text).unwrap();
        for args in [
            vec!["audit", deploy.to_str().unwrap()],
            vec!["inspect", creds.to_str().unwrap()],
        ] {
            let out = busop(dir.path(), &args);
            assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(all.contains("line "), "{args:?}: {all}");
            assert!(!all.contains(&seed), "{args:?}: the seed is never shown");
        }
    }
}
