//! The pipeline templates' plain shell versions (`ci/templates/*.sh`), run
//! end to end on loopback against the fixture shop: a real nats-server
//! 2.15.1 in operator mode whose URL resolver is a real account server, the
//! workspace's own binaries, and a git repository holding a copy of
//! `fixtures/app`.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// The call a pull request adds: notify mints access tokens.
const PR_CALL: &str = r#"
/// Mints an access token for a digest subscriber.
pub async fn mint_for_digest(svc: &Connector) -> Result<(), Error> {
    svc.post("https://access.token.core:666/mint", Vec::new()).await?;
    Ok(())
}
"#;
const PR_RULE: &str = "PUB {{plane}}.danger.666.notify_example.access_token_core.*.POST.mint";
const GATEWAY_MINTS: [&str; 2] = [
    "PUB {{plane}}.danger.666.gateway_example.access_token_core.*.POST.mint",
    "PUB {{plane}}.danger.666.gateway_example.bearer_token_core.*.POST.mint",
];

struct Bed {
    repo: PathBuf,
    templates: PathBuf,
    path: String,
}

impl Bed {
    fn sh(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(self.templates.join(script));
        cmd.args(args)
            .current_dir(&self.repo)
            .env("PATH", &self.path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_limited(&mut cmd, LIMIT)
    }

    fn tool(&self, bin: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(&self.repo)
            .env("PATH", &self.path);
        run_limited(&mut cmd, LIMIT)
    }

    fn git(&self, args: &[&str]) {
        let out = self.tool("git", args);
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    }
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

#[test]
fn templates_end_to_end_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    // The shop and the framework's services its API dependencies point at.
    copy_shop(&repo);
    // The repository carries the templates, as the README says to.
    copy_tree(
        &repo_root().join("ci/templates"),
        &repo.join("ci/templates"),
    );
    let bed = Bed {
        repo: repo.clone(),
        templates: repo_root().join("ci/templates"),
        path: path_env(),
    };
    bed.git(&["init", "-q", "-b", "main"]);
    bed.git(&["config", "user.email", "ci@example.invalid"]);
    bed.git(&["config", "user.name", "ci"]);
    bed.git(&["add", "-A"]);
    bed.git(&["commit", "-q", "-m", "the shop"]);

    pull_request(&bed);
    bed.git(&["checkout", "-q", "main"]);
    deploy_and_audit(&bed, tmp.path());
}

/// A pull request adding a `:666` call fails the check until the policy
/// allows it; the grant diff and the SARIF report say why.
fn pull_request(bed: &Bed) {
    let pr_env = [
        ("BUSWARDEN_ROOT", "fixtures/app"),
        ("BUSWARDEN_BASE", "main"),
        ("BUSWARDEN_OUT", "out"),
    ];
    // The untouched tree passes.
    let clean = bed.sh("pr-check.sh", &[], &pr_env);
    assert_eq!(clean.status.code(), Some(0), "{}", show(&clean));

    bed.git(&["checkout", "-q", "-b", "mint"]);
    let lib = bed.repo.join("fixtures/app/notify/service/src/lib.rs");
    let mut code = std::fs::read_to_string(&lib).unwrap();
    code.push_str(PR_CALL);
    std::fs::write(&lib, code).unwrap();
    bed.git(&["commit", "-q", "-am", "notify mints"]);

    let failing = bed.sh("pr-check.sh", &[], &pr_env);
    assert_eq!(failing.status.code(), Some(1), "{}", show(&failing));
    let log = text(&failing.stderr);
    assert!(log.contains("error[policy-violation]"), "{log}");
    assert!(log.contains("error[acl-drift]"), "{log}");
    let sarif = std::fs::read_to_string(bed.repo.join("out/gencreds.sarif")).unwrap();
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let results: BTreeSet<&str> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        BTreeSet::from(["acl-drift", "policy-violation"]),
        "{sarif}"
    );

    base_branch_scripts_check_a_pull_request_that_rewrites_them(bed, &pr_env);

    // Rescanning is not enough: gencreds will not write a nats.acl over a
    // policy violation, and the check still fails.
    let scan = bed.tool("gencreds", &["scan", "fixtures/app"]);
    assert_eq!(scan.status.code(), Some(1), "{}", show(&scan));
    let still = bed.sh("pr-check.sh", &[], &pr_env);
    assert_eq!(still.status.code(), Some(1), "{}", show(&still));

    // The policy lists the new trust-root grant: scan, commit, pass.
    let policy = bed.repo.join("fixtures/app/buswarden.toml");
    let mut toml = std::fs::read_to_string(&policy).unwrap();
    toml.push_str(
        "\n[caller.\"notify.example\"]\ntrust-root = [\"POST access.token.core:666/mint\"]\n",
    );
    std::fs::write(&policy, toml).unwrap();
    let scan = bed.tool("gencreds", &["scan", "fixtures/app"]);
    assert_eq!(scan.status.code(), Some(0), "{}", show(&scan));
    bed.git(&[
        "commit",
        "-q",
        "-am",
        "policy: notify may mint access tokens",
    ]);
    let passing = bed.sh("pr-check.sh", &[], &pr_env);
    assert_eq!(passing.status.code(), Some(0), "{}", show(&passing));
    let grants = std::fs::read_to_string(bed.repo.join("out/grants.md")).unwrap();
    assert!(grants.contains(&format!("+{PR_RULE}")), "{grants}");
    assert!(grants.contains("`notify.example` | changed"), "{grants}");
    // The comment opens with reachability, read from both sides' models.
    let reach = &grants[..grants.find("### Grants").expect("a Grants section")];
    assert!(reach.contains("### Reachability"), "{grants}");
    assert!(
        reach.contains("- `notify.example` → `ANY access.token.core:666/mint`"),
        "{grants}"
    );
    assert!(!reach.contains("Read from the `PUB` rules"), "{grants}");
    assert!(bed.repo.join("out/reach-base.json").is_file());
    let sarif = std::fs::read_to_string(bed.repo.join("out/gencreds.sarif")).unwrap();
    let sarif: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(sarif["runs"][0]["results"], serde_json::json!([]));
}

/// Issue 15, Low: the failing pull request also rewrites its own copy of
/// `pr-check.sh` to pass. Run from the pull request's checkout (the old
/// templates) the check would pass; run as the templates now do, from the
/// base branch's scripts (`git archive main ci/templates`, as the GitLab
/// template does; the GitHub one checks the base out), it still fails.
fn base_branch_scripts_check_a_pull_request_that_rewrites_them(bed: &Bed, pr_env: &[(&str, &str)]) {
    let own = bed.repo.join("ci/templates/pr-check.sh");
    std::fs::write(&own, "#!/usr/bin/env bash\nexit 0\n").unwrap();
    bed.git(&["commit", "-q", "-am", "the check always passes"]);
    let run = |script: &Path| {
        let mut cmd = Command::new(script);
        cmd.current_dir(&bed.repo).env("PATH", &bed.path);
        for (k, v) in pr_env {
            cmd.env(k, v);
        }
        run_limited(&mut cmd, LIMIT)
    };
    let own_run = run(&own);
    assert_eq!(
        own_run.status.code(),
        Some(0),
        "the attack works on the pull request's own script"
    );
    let base = bed.repo.join(".buswarden-base");
    std::fs::create_dir_all(&base).unwrap();
    let extract = run_limited(
        Command::new("bash")
            .arg("-c")
            .arg("git archive main ci/templates | tar -x -C .buswarden-base")
            .current_dir(&bed.repo)
            .env("PATH", &bed.path),
        LIMIT,
    );
    assert!(extract.status.success(), "{}", show(&extract));
    let base_run = run(&base.join("ci/templates/pr-check.sh"));
    assert_eq!(base_run.status.code(), Some(1), "{}", show(&base_run));
    assert!(
        text(&base_run.stderr).contains("error[policy-violation]"),
        "{}",
        show(&base_run)
    );
    // Back to the pull request without the rewrite.
    std::fs::remove_dir_all(&base).unwrap();
    bed.git(&["checkout", "-q", "main", "--", "ci/templates"]);
    bed.git(&["commit", "-q", "-m", "the check script restored"]);
}

/// The pull-request templates run the base branch's scripts, and the job
/// that reads the pull request holds a read-only token and no credentials:
/// whatever writes (the PR comment, the SARIF upload, the MR note) happens
/// in a job that runs nothing from the pull request.
#[test]
fn pull_request_templates_run_base_branch_scripts_with_a_read_only_token() {
    let dir = repo_root().join("ci/templates");
    let github = std::fs::read_to_string(dir.join("github/buswarden-pr.yml")).unwrap();
    let (head, report) = github
        .split_once("\n  report:\n")
        .expect("a separate report job");
    let grants = head.split_once("\n  grants:\n").expect("the check job").1;
    let steps: Vec<&str> = github
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    for line in &steps {
        for (n, _) in line.match_indices("ci/templates/") {
            assert!(
                line[..n].ends_with(".buswarden-base/"),
                "a script from the pull request's checkout: {line}"
            );
        }
    }
    assert!(
        steps
            .iter()
            .any(|l| l.contains(".buswarden-base/ci/templates/pr-check.sh"))
    );
    assert!(
        grants.contains("ref: ${{ github.base_ref }}") && grants.contains("path: .buswarden-base")
    );
    assert_eq!(
        grants.matches("persist-credentials: false").count(),
        2,
        "{grants}"
    );
    assert!(
        !grants.contains("write"),
        "the check job's token is read-only: {grants}"
    );
    assert!(!grants.contains("secrets."), "{grants}");
    let top = github.split_once("\njobs:").unwrap().0;
    assert!(
        !top.contains("write"),
        "the workflow default is read-only: {top}"
    );
    assert!(
        !report.contains("checkout") && !report.contains(".sh"),
        "{report}"
    );
    assert!(report.contains("pull-requests: write"));

    let gitlab = std::fs::read_to_string(dir.join("gitlab/buswarden.gitlab-ci.yml")).unwrap();
    let pr = gitlab
        .split_once("buswarden:pull-request:\n")
        .unwrap()
        .1
        .split_once("\nbuswarden:pull-request-note:\n")
        .expect("a separate note job");
    let (check, note) = (pr.0, pr.1.split_once("\nbuswarden:deploy:").unwrap().0);
    for (n, _) in check.match_indices("ci/templates/") {
        let script = check[n..].split_whitespace().next().unwrap();
        if script.ends_with(".sh") {
            assert!(check[..n].ends_with(".buswarden-base/"), "{script}");
        }
    }
    assert!(
        check.contains("git archive \"origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME\" ci/templates")
    );
    assert!(
        !check.contains("TOKEN") && !check.contains("extends"),
        "{check}"
    );
    assert!(
        note.contains("GIT_STRATEGY: none") && !note.contains(".sh"),
        "{note}"
    );
}

/// Bootstraps operator mode with the account server as URL resolver,
/// deploys the shop with `deploy.sh` (the first deploy's trust-root grants
/// approved by an operator with `approve.sh`), connects the bundled services
/// with the creds, refuses the pull request's new `:666` grant at the
/// account server too, and audits the creds.
fn deploy_and_audit(bed: &Bed, tmp: &Path) {
    let nats_port = free_port();
    let as_port = free_port();
    let setup = tmp.join("setup");
    let init = bed.tool(
        "busop",
        &[
            "init",
            setup.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{nats_port}"),
            "--url-resolver",
            &format!("http://127.0.0.1:{as_port}/jwt/v1/accounts/"),
            "--server",
            &format!("nats://127.0.0.1:{nats_port}"),
            "--format",
            "json",
        ],
    );
    assert!(init.status.success(), "{}", show(&init));
    let init: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let op_key = init["operator_signing_key"].as_str().unwrap();
    let op_seed = setup.join(format!("keys/O/{}/{op_key}.nk", &op_key[1..3]));
    assert!(op_seed.is_file());

    let state = tmp.join("account-server");
    std::fs::create_dir_all(&state).unwrap();
    let keygen = |name: &str| {
        let out = bed.tool(
            "buswarden-ci",
            &["keygen", state.join(name).to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", show(&out));
        text(&out.stdout).trim().to_string()
    };
    let ci_pub = keygen("ci.nk");
    let operator_pub = keygen("operator.nk");
    let kek = bed.tool(
        "account-server",
        &["gen-kek", state.join("kek").to_str().unwrap()],
    );
    assert!(kek.status.success(), "{}", show(&kek));
    let config = format!(
        r#"listen = "127.0.0.1:{as_port}"
store = "account-server.redb"
kek_file = "kek"
plane = "microbus"
policy_file = "{policy}"
[operator]
signing_key_file = "{op_seed}"
[account]
jwt_file = "{setup}/accounts/APP.jwt"
[system_account]
jwt_file = "{setup}/accounts/SYS.jwt"
creds_file = "{setup}/creds/sys.creds"
[nats]
servers = ["nats://127.0.0.1:{nats_port}"]
push_wait = "2s"
[deploys]
grace = "0s"
default_user_expiry = "7d"
max_user_expiry = "30d"
[[keys]]
key = "{ci_pub}"
role = "ci"
hostnames = ["*"]
[[keys]]
key = "{operator_pub}"
role = "operator"
"#,
        policy = bed.repo.join("fixtures/app/buswarden.toml").display(),
        op_seed = op_seed.display(),
        setup = setup.display(),
    );
    std::fs::write(state.join("account-server.toml"), config).unwrap();
    let _account_server = Running(
        Command::new(bin_dir().join("account-server"))
            .args(["serve", "--config"])
            .arg(state.join("account-server.toml"))
            .arg("--init")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(state.join("log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("the account server", LIMIT, || {
        std::net::TcpStream::connect(("127.0.0.1", as_port)).is_ok()
    });
    let _nats = Running(
        Command::new(nats_server())
            .arg("-c")
            .arg(setup.join("nats-server.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("nats-server", LIMIT, || {
        std::net::TcpStream::connect(("127.0.0.1", nats_port)).is_ok()
    });

    let server = format!("http://127.0.0.1:{as_port}");
    let ci_key = state.join("ci.nk");
    let creds = tmp.join("creds");
    let deploy_env = |deploy: &'static str| {
        vec![
            ("BUSWARDEN_ACCOUNT_SERVER", server.clone()),
            ("BUSWARDEN_CI_KEY_FILE", ci_key.display().to_string()),
            ("BUSWARDEN_DEPLOY", deploy.to_string()),
            ("BUSWARDEN_ROOT", "fixtures/app".to_string()),
            ("BUSWARDEN_CREDS_OUT", creds.display().to_string()),
        ]
    };
    let sh = |script: &str, args: &[&str], env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        bed.sh(script, args, &env)
    };

    // The first deploy: its trust-root grants are new, so refused until an
    // operator approves them; nothing is written meanwhile.
    let refused = sh("deploy.sh", &["sign"], &deploy_env("d1"));
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    assert!(
        text(&refused.stderr).contains("POST /v1/approvals"),
        "{}",
        show(&refused)
    );
    assert!(!creds.exists());
    let mut approve_args = vec!["d1"];
    approve_args.extend(GATEWAY_MINTS);
    let approved = sh(
        "approve.sh",
        &approve_args,
        &[
            ("BUSWARDEN_ACCOUNT_SERVER", server.clone()),
            (
                "BUSWARDEN_OPERATOR_KEY_FILE",
                state.join("operator.nk").display().to_string(),
            ),
        ],
    );
    assert!(approved.status.success(), "{}", show(&approved));
    let signed = sh("deploy.sh", &["sign"], &deploy_env("d1"));
    assert!(signed.status.success(), "{}", show(&signed));
    let mut files: Vec<String> = std::fs::read_dir(&creds)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "catalog.example_nats.creds",
            "gateway.example_nats.creds",
            "notify.example_nats.creds",
            "orders.example_nats.creds"
        ]
    );
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for f in &files {
        let mode = std::fs::metadata(creds.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // A service connects with them: the bundle runs catalog and orders, each
    // on its own connection with its own creds, and says so.
    let bundle = run_limited(
        Command::new(bin_dir().join("shop-bundle"))
            .env(
                "BUSWARDEN_NATS_URL",
                format!("nats://127.0.0.1:{nats_port}"),
            )
            .env("BUSWARDEN_CREDS_DIR", &creds),
        LIMIT,
    );
    assert!(bundle.status.success(), "{}", show(&bundle));
    let ready = text(&bundle.stdout);
    assert!(ready.contains("ready catalog.example "), "{ready}");
    assert!(ready.contains("ready orders.example "), "{ready}");
    let activated = sh("deploy.sh", &["activate"], &deploy_env("d1"));
    assert!(activated.status.success(), "{}", show(&activated));
    assert!(
        text(&activated.stdout).contains("\"state\":\"active\""),
        "{}",
        show(&activated)
    );

    // The pull request's tree (its own buswarden.toml allows notify's Mint):
    // the account server still refuses the new trust-root grant unapproved.
    bed.git(&["checkout", "-q", "mint"]);
    let pr_creds = tmp.join("pr-creds");
    let mut env = deploy_env("d2");
    env[4].1 = pr_creds.display().to_string();
    let refused = sh("deploy.sh", &["sign"], &env);
    assert_eq!(refused.status.code(), Some(1), "{}", show(&refused));
    assert!(
        text(&refused.stderr).contains("notify_example.access_token_core"),
        "{}",
        show(&refused)
    );
    assert!(!pr_creds.exists());
    bed.git(&["checkout", "-q", "main"]);

    // The audit lists exactly the shop's trust-root grants.
    let audit_out = tmp.join("audit");
    let audit = sh(
        "audit.sh",
        &[creds.to_str().unwrap()],
        &[
            (
                "BUSWARDEN_POLICY",
                bed.repo
                    .join("fixtures/app/buswarden.toml")
                    .display()
                    .to_string(),
            ),
            ("BUSWARDEN_OUT", audit_out.display().to_string()),
        ],
    );
    assert_eq!(audit.status.code(), Some(0), "{}", show(&audit));
    let grep: BTreeSet<String> = text(&audit.stdout)
        .lines()
        .filter(|l| l.contains(".danger."))
        .filter_map(|l| l.split_once("_nats.creds:# "))
        .map(|(file, rule)| {
            let host = file.rsplit('/').next().unwrap();
            format!("{host}: {}", rule.replace("microbus.", "{{plane}}."))
        })
        .collect();
    let expected: BTreeSet<String> = GATEWAY_MINTS
        .iter()
        .map(|r| format!("gateway.example: {r}"))
        .collect();
    assert_eq!(grep, expected, "{}", show(&audit));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(audit_out.join("audit.json")).unwrap())
            .unwrap();
    let mut danger = BTreeSet::new();
    for s in json["services"].as_array().unwrap() {
        for d in s["danger"].as_array().unwrap() {
            danger.insert(format!(
                "{}: {}",
                s["name"].as_str().unwrap(),
                d.as_str().unwrap_or_else(|| d["rule"].as_str().unwrap())
            ));
        }
    }
    let expected: BTreeSet<String> = GATEWAY_MINTS
        .iter()
        .map(|r| format!("gateway.example: {}", r.replace("{{plane}}", "microbus")))
        .collect();
    assert_eq!(danger, expected, "{json}");
    assert_eq!(json["summary"]["violations"], 0, "{json}");
}

/// The YAML templates only call the plain shell versions (so the logic is
/// tested once, above), and every script they name exists, is executable and
/// parses.
#[test]
fn yaml_templates_call_the_tested_shell_scripts() {
    let dir = repo_root().join("ci/templates");
    let mut yamls = 0;
    for sub in ["github", "gitlab"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let scripts: Vec<&str> = text
                .split("ci/templates/")
                .skip(1)
                .filter_map(|rest| rest.split_once(".sh").map(|(name, _)| name))
                .filter(|name| !name.contains(char::is_whitespace) && !name.contains('*'))
                .collect();
            assert!(
                !scripts.is_empty(),
                "{} calls no template script",
                path.display()
            );
            for name in scripts {
                let script = dir.join(format!("{name}.sh"));
                let mode = std::fs::metadata(&script)
                    .unwrap_or_else(|e| panic!("{}: {name}.sh: {e}", path.display()))
                    .permissions()
                    .mode();
                assert!(mode & 0o111 != 0, "{} is not executable", script.display());
            }
            yamls += 1;
        }
    }
    assert_eq!(yamls, 4);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sh") {
            let out = Command::new("bash").arg("-n").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
        }
    }
}
