//! Against a real nats-server 2.15.1 in operator mode (testkit): the server
//! trusts our operator and account JWTs; a `.creds` from the signing
//! pipeline connects with async-nats; allowed publishes are delivered,
//! others get the broker's permissions violation; expired credentials are
//! refused; what an allow of `foo.*` admits; the CONNECT budget at the
//! boundary.

mod common;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerError};
use buswarden_creds::claims::UserClaims;
use buswarden_creds::connect;
use buswarden_creds::jwt;
use buswarden_creds::keys::{KeyKind, KeyPair};
use buswarden_creds::sign::{
    self, AccountRef, AccountSigner, DeployId, ServiceAcl, ServiceProblem, SignError, SignOptions,
};
use buswarden_rules::{Hostname, Rule, RuleSet};
use buswarden_testkit::NatsServer;
use common::{Chain, implicit, write_acl};
use futures_util::StreamExt as _;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn start(chain: &Chain, extra: &str) -> NatsServer {
    NatsServer::start(&format!("{}{extra}", chain.server_config())).expect("start nats-server")
}

/// Connects with a `.creds` file, named like the runtime names connections;
/// server errors arrive on the returned channel.
async fn connect(
    url: &str,
    creds: &Path,
    name: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let opts = ConnectOptions::with_credentials_file(creds)
        .await
        .expect("async-nats parses the .creds file")
        .name(name)
        .connection_timeout(WAIT)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let Event::ServerError(e) = event {
                    let text = match e {
                        ServerError::Other(s) => s,
                        other => other.to_string(),
                    };
                    let _ = tx.send(text);
                }
            }
        });
    opts.connect(url).await.map(|c| (c, rx))
}

/// The next server error on a connection (a permissions violation, …).
async fn next_error(errors: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, errors.recv())
        .await
        .expect("a server error within the wait")
        .expect("the connection's event channel is open")
}

/// A round trip through the server on `client`'s own connection: the
/// server handles a connection's protocol in order, so every SUB sent before
/// is in place afterwards (async-nats's `flush` only empties the socket
/// buffer). `subject` must be one the client may both publish and subscribe.
async fn round_trip(client: &async_nats::Client, subject: &str) {
    let mut probe = client.subscribe(subject.to_string()).await.unwrap();
    client
        .publish(subject.to_string(), "probe".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    tokio::time::timeout(WAIT, probe.next())
        .await
        .expect("the probe comes back")
        .unwrap();
}

fn services(root: &Path) {
    let mut calc = implicit("calc_example");
    calc.push("PUB {{plane}}.safe.443.calc_example.other_example.*.GET.items.*".into());
    calc.push("PUB {{plane}}.danger.666.calc_example.other_example.*.POST.mint".into());
    // A path that ends in dashes: its grant line ends in `---` in the
    // grants block, which must not confuse credential parsers.
    calc.push("PUB {{plane}}.safe.443.calc_example.other_example.*.GET.a---".into());
    calc.push("PUB {{plane}}.safe.443.calc_example.other_example.*.GET.b---".into());
    let calc: Vec<&str> = calc.iter().map(String::as_str).collect();
    write_acl(root, "calc", "calc.example", &calc);
    let other = implicit("other_example");
    let mut other: Vec<&str> = other.iter().map(String::as_str).collect();
    other.push("SUB {{plane}}.danger.666.*.other_example.>");
    write_acl(root, "other", "other.example", &other);
}

fn options(deploy: &str) -> SignOptions {
    let mut opts = SignOptions::new();
    opts.deploy = DeployId::parse(deploy).unwrap();
    opts.sync = false;
    opts
}

#[tokio::test]
async fn signed_creds_connect_and_the_broker_enforces_the_rules() {
    let chain = Chain::new();
    let root = tempfile::tempdir().unwrap();
    services(root.path());
    let out = root.path().join("out");
    // Signed by a signing key, the account named by its JWT.
    let signer = AccountSigner::new(
        chain.signing_key.clone(),
        Some(AccountRef::parse(&chain.account_jwt).unwrap()),
    )
    .unwrap();
    let report = sign::sign_root(root.path(), &out, &signer, &options("b1")).unwrap();
    assert_eq!(report.services.len(), 2);
    let server = start(&chain, "");

    let (calc, mut calc_errors) = connect(
        server.url(),
        &out.join("calc.example_nats.creds"),
        "calc.example",
    )
    .await
    .expect("calc connects");
    let (other, _) = connect(
        server.url(),
        &out.join("other.example_nats.creds"),
        "other.example",
    )
    .await
    .expect("other connects");

    let mut inbox = other
        .subscribe("microbus.safe.*.*.other_example.>")
        .await
        .unwrap();
    let mut danger = other
        .subscribe("microbus.danger.666.*.other_example.>")
        .await
        .unwrap();
    round_trip(&other, "microbus.reply._.other_example.other_example.probe").await;

    // Allowed: delivered.
    calc.publish(
        "microbus.safe.443.calc_example.other_example._.GET.items.42",
        "hi".into(),
    )
    .await
    .unwrap();
    calc.publish(
        "microbus.danger.666.calc_example.other_example._.POST.mint",
        "m".into(),
    )
    .await
    .unwrap();
    calc.flush().await.unwrap();
    let msg = tokio::time::timeout(WAIT, inbox.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg.subject.as_str(),
        "microbus.safe.443.calc_example.other_example._.GET.items.42"
    );
    let msg = tokio::time::timeout(WAIT, danger.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg.subject.as_str(),
        "microbus.danger.666.calc_example.other_example._.POST.mint"
    );

    // Not allowed: impersonating other.example, and an endpoint not granted.
    for subject in [
        "microbus.safe.443.other_example.other_example._.GET.items.1",
        "microbus.safe.443.calc_example.other_example._.POST.items.1",
    ] {
        calc.publish(subject, "x".into()).await.unwrap();
        calc.flush().await.unwrap();
        let err = next_error(&mut calc_errors).await;
        assert_eq!(
            err,
            format!("Permissions Violation for Publish to \"{subject}\""),
        );
    }
    // Nothing of those reached the subscriber.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), inbox.next())
            .await
            .is_err()
    );
}

/// nats-py reads the same file (it scans for the BEGIN lines), grants block
/// and all, and its connection is held to the same rules.
#[tokio::test]
async fn nats_py_reads_the_creds_file_with_its_grants_block() {
    let python_nats = std::process::Command::new("python3")
        .args(["-c", "import nats, nkeys"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        python_nats,
        "nats-py is not installed: run `source ci/deps.sh` (installs nats-py[nkeys] from PyPI)"
    );
    let chain = Chain::new();
    let root = tempfile::tempdir().unwrap();
    services(root.path());
    let out = root.path().join("out");
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    sign::sign_root(root.path(), &out, &signer, &options("py")).unwrap();
    let server = start(&chain, "");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/nats_py_creds.py");
    let creds = out.join("calc.example_nats.creds");
    let run = |pub_subject: &str, wait: &str| {
        std::process::Command::new("python3")
            .arg(script)
            .arg(server.url())
            .arg(&creds)
            .arg("microbus.reply._.*.calc_example.*")
            .arg(pub_subject)
            .arg(wait)
            .output()
            .unwrap()
    };
    let ok = run("microbus.reply._.calc_example.calc_example.py", "5");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "microbus.reply._.calc_example.calc_example.py"
    );
    // A reply in another service's name is not delivered back.
    let denied = run("microbus.reply._.other_example.calc_example.py", "0.5");
    assert!(!denied.status.success());
}

#[tokio::test]
async fn expired_creds_are_refused() {
    let chain = Chain::new();
    let root = tempfile::tempdir().unwrap();
    services(root.path());
    let out = root.path().join("out");
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    let mut opts = options("old");
    opts.now = jwt::now() - 3600;
    opts.expires = Some(Duration::from_secs(60));
    sign::sign_root(root.path(), &out, &signer, &opts).unwrap();
    let server = start(&chain, "");
    let Err(err) = connect(
        server.url(),
        &out.join("calc.example_nats.creds"),
        "calc.example",
    )
    .await
    else {
        panic!("expired credentials must not connect")
    };
    assert_eq!(
        err.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );
}

/// Settles whether an allow of `foo.*` admits `SUB foo.>`: nats-server
/// matches the subscription subject against the allow list token by token,
/// and `*` matches the token `>`, so it does, and the subscriber then gets
/// messages on deeper subjects its allow list never named.
#[tokio::test]
async fn an_allow_of_foo_star_admits_sub_foo_full_wildcard() {
    let chain = Chain::new();
    let now = jwt::now();
    let creds_for = |pubs: &[&str], subs: &[&str]| {
        let user = KeyPair::generate(KeyKind::User);
        let mut c = UserClaims::new_user(user.public_key());
        c.nats.limits.publish.allow = pubs.iter().map(|s| s.to_string()).collect();
        c.nats.limits.subscribe.allow = subs.iter().map(|s| s.to_string()).collect();
        let token = jwt::encode(&mut c, &chain.account, now).unwrap();
        buswarden_creds::creds::format_user_config(&token, &user.seed())
    };
    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.creds");
    std::fs::write(&narrow, &*creds_for(&["probe"], &["foo.*", "probe"])).unwrap();
    let wide = dir.path().join("wide.creds");
    std::fs::write(&wide, &*creds_for(&["foo.>"], &["nothing"])).unwrap();
    let server = start(&chain, "");
    let (sub_client, mut errors) = connect(server.url(), &narrow, "narrow").await.unwrap();
    let (pub_client, _) = connect(server.url(), &wide, "wide").await.unwrap();

    let mut deep = sub_client.subscribe("foo.>").await.unwrap();
    round_trip(&sub_client, "probe").await;
    pub_client
        .publish("foo.a.b.c", "deep".into())
        .await
        .unwrap();
    pub_client.flush().await.unwrap();
    let got = tokio::time::timeout(WAIT, deep.next()).await;
    let violation = errors.try_recv().ok();
    // The finding: admitted, no violation, and the deeper message arrives.
    assert_eq!(violation, None);
    let msg = got
        .expect("SUB foo.> under allow foo.* receives foo.a.b.c")
        .unwrap();
    assert_eq!(msg.subject.as_str(), "foo.a.b.c");

    // For contrast, an allow that does not end in `*` refuses the wider subscription.
    let bar = dir.path().join("bar.creds");
    std::fs::write(&bar, &*creds_for(&["nothing"], &["foo.*.bar"])).unwrap();
    let (c, mut errors) = connect(server.url(), &bar, "bar").await.unwrap();
    let _s = c.subscribe("foo.>").await.unwrap();
    c.flush().await.unwrap();
    let err = next_error(&mut errors).await;
    assert_eq!(err, "Permissions Violation for Subscription to \"foo.>\"");
}

fn service_with_padding(pad: usize) -> ServiceAcl {
    let hostname = Hostname::parse("calc.example").unwrap();
    let mut rules: RuleSet = implicit("calc_example")
        .iter()
        .map(|r| Rule::parse(r).unwrap())
        .collect();
    for i in 0..20 {
        rules.insert(
            Rule::parse(&format!(
                "PUB {{{{plane}}}}.safe.443.calc_example.other_example.*.GET.endpoint-number-{i:03}"
            ))
            .unwrap(),
        );
    }
    rules.insert(
        Rule::parse(&format!(
            "PUB {{{{plane}}}}.safe.443.calc_example.other_example.*.GET.{}",
            "p".repeat(pad.max(1))
        ))
        .unwrap(),
    );
    ServiceAcl {
        path: "calc/nats.acl".into(),
        hostname,
        rules,
    }
}

/// The estimate is the exact length of the CONNECT argument async-nats sends
/// (read back from the server's trace), and the server's limit is exactly
/// where our check puts it: a user at the limit connects, one over is
/// refused by our check and by the server.
#[tokio::test]
async fn connect_budget_holds_at_the_boundary() {
    let chain = Chain::new();
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    let mut opts = options("edge");
    opts.max_control_line = usize::MAX;
    // Find a padding whose CONNECT argument is within a few bytes of 4096.
    let mut pad = 1;
    let (at, over) = loop {
        let m = sign::mint(&service_with_padding(pad), &signer, &opts).unwrap();
        if m.report.connect_len >= 4096 - 1 {
            let next = sign::mint(&service_with_padding(pad + 1), &signer, &opts).unwrap();
            assert!(next.report.connect_len > m.report.connect_len);
            break (pad, pad + 1);
        }
        pad += (4096 - 1 - m.report.connect_len).div_ceil(2).max(1);
        assert!(pad < 4096, "no padding reaches the limit");
    };
    let limit = sign::mint(&service_with_padding(at), &signer, &opts)
        .unwrap()
        .report
        .connect_len;

    // The server runs with max_control_line = exactly our estimate for `at`.
    let server = start(&chain, &format!("max_control_line: {limit}\ntrace: true\n"));
    let dir = tempfile::tempdir().unwrap();
    opts.max_control_line = limit;
    let fits = sign::sign_services(&[service_with_padding(at)], dir.path(), &signer, &opts)
        .expect("at the limit: signed");
    let path = &fits.services[0].path;
    // Named as the buswarden runtime names its connections.
    let name = "calc.example id-k3j5h7g9f1";
    let (client, _) = connect(server.url(), path, name)
        .await
        .expect("at the limit: connects");
    client.flush().await.unwrap();
    // Our CONNECT model is the exact text async-nats sent.
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("<<- [CONNECT "))
        .expect("CONNECT traced");
    let traced = line
        .split("<<- [CONNECT ")
        .nth(1)
        .unwrap()
        .trim_end()
        .trim_end_matches(']');
    // The trace redacts the nonce signature and the unset secrets; put back
    // what async-nats sent there (86 base64 characters, nulls).
    let sig = "S".repeat(jwt::SIGNATURE_B64_LEN);
    let traced = traced
        .replace("\"sig\":\"[REDACTED]\"", &format!("\"sig\":\"{sig}\""))
        .replace("[REDACTED]", "null");
    let token = buswarden_creds::creds::parse_creds(&std::fs::read(path).unwrap())
        .unwrap()
        .jwt;
    assert_eq!(traced, connect::connect_json(&token, &sig, Some(name)));
    assert_eq!(traced.len(), limit);
    drop(client);

    // One step over: our check refuses, naming the largest contributors.
    let err =
        sign::sign_services(&[service_with_padding(over)], dir.path(), &signer, &opts).unwrap_err();
    let SignError::Refused(problems) = &err else {
        panic!("{err}")
    };
    let ServiceProblem::OverBudget {
        connect_len,
        largest,
        ..
    } = &problems[0]
    else {
        panic!("{err}")
    };
    assert!(
        *connect_len > limit && *connect_len <= limit + 2,
        "one base64 step over"
    );
    assert!(largest[0].rule.ends_with(&"p".repeat(over)), "{err}");
    assert!(err.to_string().contains("largest contributors"), "{err}");

    // And the server would refuse it too: signed without our check, it cannot connect.
    opts.max_control_line = usize::MAX;
    let unchecked =
        sign::sign_services(&[service_with_padding(over)], dir.path(), &signer, &opts).unwrap();
    let refused = connect(server.url(), &unchecked.services[0].path, name).await;
    assert!(
        refused.is_err(),
        "the server accepted a CONNECT over its limit"
    );
    assert!(
        server
            .log()
            .to_lowercase()
            .contains("maximum control line exceeded"),
        "{}",
        server.log()
    );
    assert_eq!(
        connect::connect_len(0, Some(name)) + fits.services[0].jwt_len,
        limit
    );
}

/// An operator signing key signs the account, and a scoped account signing
/// key signs a user with no permissions of its own: the server trusts the
/// chain and applies the scope's template.
#[tokio::test]
async fn operator_signing_keys_and_scoped_account_keys() {
    use buswarden_creds::claims::{AccountClaims, OperatorClaims, UserScope};
    let now = jwt::now();
    let operator = KeyPair::generate(KeyKind::Operator);
    let operator_sk = KeyPair::generate(KeyKind::Operator);
    let system = KeyPair::generate(KeyKind::Account);
    let account = KeyPair::generate(KeyKind::Account);
    let scoped = KeyPair::generate(KeyKind::Account);
    let mut op = OperatorClaims::new_operator(operator.public_key());
    op.nats.signing_keys = vec![operator_sk.public_key().to_string()];
    op.nats.system_account = system.public_key().to_string();
    let op_jwt = jwt::encode(&mut op, &operator, now).unwrap();
    let mut sys = AccountClaims::new_account(system.public_key());
    let sys_jwt = jwt::encode(&mut sys, &operator_sk, now).unwrap();
    let mut acc = AccountClaims::new_account(account.public_key());
    let mut scope = UserScope::new(scoped.public_key(), "service");
    scope.template.publish.allow = vec!["scoped.>".into()];
    scope.template.subscribe.allow = vec!["scoped.>".into()];
    acc.nats.signing_keys.add_scoped(scope);
    let acc_jwt = jwt::encode(&mut acc, &operator_sk, now).unwrap();
    jwt::verify_account(&jwt::decode_account(&acc_jwt).unwrap(), &op).unwrap();

    let user = KeyPair::generate(KeyKind::User);
    let mut u = UserClaims::new_scoped_user(user.public_key());
    u.nats.issuer_account = account.public_key().to_string();
    let token = jwt::encode(&mut u, &scoped, now).unwrap();
    jwt::verify_user(&jwt::decode_user(&token).unwrap(), &acc).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("scoped.creds");
    std::fs::write(
        &creds,
        &*buswarden_creds::creds::format_user_config(&token, &user.seed()),
    )
    .unwrap();

    let config = format!(
        "operator: {op_jwt}\nsystem_account: {sys}\nresolver: MEMORY\nresolver_preload: {{\n  {sys}: {sys_jwt}\n  {acc}: {acc_jwt}\n}}\n",
        sys = system.public_key(),
        acc = account.public_key(),
    );
    let server = NatsServer::start(&config).expect("start nats-server");
    let (client, mut errors) = connect(server.url(), &creds, "scoped").await.unwrap();
    round_trip(&client, "scoped.probe").await;
    client.publish("elsewhere.x", "x".into()).await.unwrap();
    client.flush().await.unwrap();
    let err = next_error(&mut errors).await;
    assert_eq!(err, "Permissions Violation for Publish to \"elsewhere.x\"");
}

/// A SUB rule ending in `*` (an event hook with a path argument) cannot be
/// widened: the signed `sub.deny` guard keeps deeper subjects away from a
/// `SUB ….>` the server lets through.
#[tokio::test]
async fn signed_sub_guards_stop_the_star_to_full_wildcard_widening() {
    let chain = Chain::new();
    let root = tempfile::tempdir().unwrap();
    let mut sink = implicit("sink_example");
    sink.push("SUB {{plane}}.safe.417.*.src_example.*.POST.on-x.*".into());
    let sink: Vec<&str> = sink.iter().map(String::as_str).collect();
    write_acl(root.path(), "sink", "sink.example", &sink);
    let mut src = implicit("src_example");
    src.push("PUB {{plane}}.safe.417.src_example.src_example.*.POST.>".into());
    let src: Vec<&str> = src.iter().map(String::as_str).collect();
    write_acl(root.path(), "src", "src.example", &src);
    let out = root.path().join("out");
    let signer = AccountSigner::new(chain.account.clone(), None).unwrap();
    sign::sign_root(root.path(), &out, &signer, &options("guards")).unwrap();
    let server = start(&chain, "");
    let (sink, _) = connect(server.url(), &out.join("sink.example_nats.creds"), "sink")
        .await
        .unwrap();
    let (src, _) = connect(server.url(), &out.join("src.example_nats.creds"), "src")
        .await
        .unwrap();
    // A hook is signed pinned to the sink's own queue group.
    let mut wide = sink
        .queue_subscribe(
            "microbus.safe.417.*.src_example.*.POST.on-x.>",
            "sink_example".into(),
        )
        .await
        .unwrap();
    round_trip(&sink, "microbus.reply._.sink_example.sink_example.probe").await;
    src.publish(
        "microbus.safe.417.src_example.src_example._.POST.on-x.a.b",
        "deep".into(),
    )
    .await
    .unwrap();
    src.publish(
        "microbus.safe.417.src_example.src_example._.POST.on-x.a",
        "ok".into(),
    )
    .await
    .unwrap();
    src.flush().await.unwrap();
    let msg = tokio::time::timeout(WAIT, wide.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg.subject.as_str(),
        "microbus.safe.417.src_example.src_example._.POST.on-x.a"
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), wide.next())
            .await
            .is_err(),
        "a subject deeper than the rule was delivered"
    );
}
