//! The budget model against a real nats-server 2.15.1: a CONNECT argument
//! of exactly `max_control_line` bytes, built field by field as
//! `budget::estimate` counts it, is accepted, and one byte more is refused
//! with `-ERR 'maximum control line exceeded'`. (The creds crate repeats this with a
//! real signed JWT in operator mode.)

use buswarden_rules::budget::{
    CLIENT_VERSION, ConnectModel, ConnectName, MAX_CONTROL_LINE, estimate,
};
use buswarden_rules::derive::{Call, Dest, ServiceModel, derive};
use buswarden_rules::hostname::Hostname;
use buswarden_rules::route::{Method, Route};
use buswarden_testkit::NatsServer;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The CONNECT argument the model describes, with placeholder JWT and
/// signature bytes of the modelled lengths.
fn connect_text(jwt_len: usize, name_len: usize) -> String {
    format!(
        "{{\"verbose\":false,\"pedantic\":false,\"jwt\":\"{}\",\"nkey\":null,\"sig\":\"{}\",\"name\":\"{}\",\"echo\":true,\"lang\":\"rust\",\"version\":\"{CLIENT_VERSION}\",\"protocol\":1,\"tls_required\":false,\"user\":null,\"pass\":null,\"auth_token\":null,\"headers\":true,\"no_responders\":true}}",
        "j".repeat(jwt_len),
        "s".repeat(86),
        "n".repeat(name_len)
    )
}

/// Sends `CONNECT <arg>` then `PING`; returns the first line after INFO.
fn first_answer(server: &NatsServer, arg: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut info = String::new();
    reader.read_line(&mut info).unwrap();
    assert!(info.starts_with("INFO "), "{info}");
    stream
        .write_all(format!("CONNECT {arg}\r\nPING\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

#[test]
fn the_modelled_connect_line_meets_the_server_limit_exactly() {
    let host = Hostname::parse("orders.shop.example").unwrap();
    let mut model = ServiceModel::new(host.clone());
    for i in 0..12 {
        model.calls.push(Call {
            dest: Dest::Host(Hostname::parse(&format!("svc{i}.shop.example")).unwrap()),
            method: Method::parse("GET").unwrap(),
            route: Route::parse(&format!("/items/{{id}}/detail-{i}")).unwrap(),
        });
    }
    let rules = derive(&model);
    let unnamed = ConnectModel {
        name: ConnectName::Bytes(0),
        ..ConnectModel::default()
    };
    let base = estimate(&host, &rules, &unnamed);
    assert!(base.connect < MAX_CONTROL_LINE, "{}", base.connect);
    let name_len = MAX_CONTROL_LINE - base.connect;
    let at_limit = ConnectModel {
        name: ConnectName::Bytes(name_len),
        ..ConnectModel::default()
    };
    let e = estimate(&host, &rules, &at_limit);
    assert_eq!(e.connect, MAX_CONTROL_LINE);
    assert!(e.fits());
    let text = connect_text(e.jwt, name_len);
    assert_eq!(
        text.len(),
        e.connect,
        "the model counts the text it describes"
    );

    let server = NatsServer::start("").unwrap();
    let ok = first_answer(&server, &text);
    assert_eq!(ok, "PONG\r\n", "at the limit: {ok}\n{}", server.log());

    let over = connect_text(e.jwt, name_len + 1);
    let refused = first_answer(&server, &over);
    assert!(
        refused
            .to_ascii_lowercase()
            .starts_with("-err 'maximum control line exceeded"),
        "one byte over: {refused}"
    );
    let over_model = ConnectModel {
        name: ConnectName::Bytes(name_len + 1),
        ..ConnectModel::default()
    };
    assert!(!estimate(&host, &rules, &over_model).fits());
}
