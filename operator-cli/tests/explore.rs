use busop::sys::*;
#[test]
fn explore() {
    let dir = tempfile::tempdir().unwrap();
    let out = busop::run([
        "busop",
        "init",
        dir.path().to_str().unwrap(),
        "--listen",
        "127.0.0.1:-1",
    ]);
    eprintln!("{} {}", out.stdout, out.stderr);
    let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
    let server = buswarden_testkit::NatsServer::start(&conf).unwrap();
    let creds = std::fs::read_to_string(dir.path().join("creds/sys.creds")).unwrap();
    let setup = busop::setup::Setup::open(dir.path()).unwrap();
    let app = setup.account(None).unwrap();
    let rt = runtime().unwrap();
    rt.block_on(async {
        let fleet = Fleet::connect(
            &[server.url().to_string()],
            &creds,
            std::time::Duration::from_secs(2),
        )
        .await
        .unwrap();
        let sk = setup
            .key(app.claims.nats.signing_keys.0.keys().next().unwrap(), "sk")
            .unwrap();
        let u = buswarden_creds::KeyPair::generate(buswarden_creds::KeyKind::User);
        let mut uc = buswarden_creds::UserClaims::new_user(u.public_key());
        uc.nats.issuer_account = app.claims.data.sub.clone();
        uc.nats.limits.publish.allow = vec!["x".into()];
        uc.nats.limits.subscribe.allow = vec!["x".into()];
        let t = buswarden_creds::jwt::encode(&mut uc, &sk, buswarden_creds::jwt::now()).unwrap();
        let c = buswarden_creds::creds::format_user_config(&t, &u.seed());
        let uclient =
            async_nats::ConnectOptions::with_credentials(std::str::from_utf8(&c).unwrap())
                .unwrap()
                .connect(server.url())
                .await
                .unwrap();
        for (s, p) in [
            ("$SYS.REQ.SERVER.PING.STATSZ".to_string(), "".to_string()),
            (lookup_subject(&app.claims.data.sub), "".into()),
            (info_subject(&app.claims.data.sub), "".into()),
            (update_subject(&app.claims.data.sub), app.token.clone()),
            (info_subject(&app.claims.data.sub), "".into()),
            ("$SYS.REQ.SERVER.PING.VARZ".into(), "".into()),
        ] {
            let r = fleet
                .request_all(&s, p.as_bytes(), None, std::time::Duration::from_secs(1))
                .await
                .unwrap();
            for x in r {
                if s.contains("VARZ") {
                    for (k, v) in x.body["data"].as_object().unwrap() {
                        if k.contains("trust") || k.contains("operator") {
                            eprintln!("VARZ {k} = {v}");
                        }
                    }
                } else if s.contains("INFO") {
                    eprintln!(
                        "== {s}\n{}\n",
                        serde_json::to_string_pretty(&x.body["data"])
                            .unwrap()
                            .chars()
                            .take(3000)
                            .collect::<String>()
                    );
                }
            }
        }
        drop(uclient);
    });
}
