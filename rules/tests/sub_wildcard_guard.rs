//! A real nats-server 2.15.1 lets a client holding `sub.allow` `a.*`
//! subscribe to `a.>` and then delivers `a.b.c` to it. This pins that
//! behaviour for the SUB rules `derive` writes, and shows that the deny
//! entries of `RuleSet::sub_guards` take the widening away without
//! touching what the rules allow.

use buswarden_rules::derive::{Endpoint, ServiceModel, derive};
use buswarden_rules::hostname::Hostname;
use buswarden_rules::route::{Method, Route};
use buswarden_rules::rule::Verb;
use buswarden_testkit::NatsServer;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

const PLANE: &str = "p0";

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(server: &NatsServer, user: &str, pass: &str) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut info = String::new();
        reader.read_line(&mut info).unwrap();
        let mut c = Client { stream, reader };
        c.send(&format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{user}\",\"pass\":\"{pass}\",\"protocol\":1}}\r\n"
        ));
        c
    }

    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// Sends PING and returns every line up to the PONG.
    fn sync(&mut self) -> Vec<String> {
        self.send("PING\r\n");
        let mut lines = vec![];
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "PONG\r\n" {
                return lines;
            }
            assert!(!line.is_empty(), "connection closed after {lines:?}");
            lines.push(line);
        }
    }
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Subscribes `items.>` under a service whose rules allow `items.*`, and
/// returns the subjects delivered to it.
fn delivered(guarded: bool) -> Vec<String> {
    let own = Hostname::parse("kitchen.fixture").unwrap();
    let mut model = ServiceModel::new(own);
    model.endpoints.push(Endpoint {
        method: Method::parse("GET").unwrap(),
        route: Route::parse("//alt.kitchen:443/items/{id}").unwrap(),
    });
    let rules = derive(&model);
    let allow: Vec<String> = rules
        .of(Verb::Sub)
        .map(|r| r.subject_for_plane(PLANE))
        .collect();
    assert!(allow.contains(&"p0.safe.443.*.alt_kitchen.*.GET.items.*".to_string()));
    let guards = rules.sub_guards();
    assert!(guards.unguarded.is_empty(), "{guards:?}");
    let deny: Vec<String> = if guarded {
        guards
            .deny
            .iter()
            .map(|g| g.deny.replacen("{{plane}}", PLANE, 1))
            .collect()
    } else {
        vec![]
    };
    let config = format!(
        "authorization {{ users = [\n  {{user: svc, password: s, permissions: {{ publish: {{ allow: [\">\"] }}, subscribe: {{ allow: [{}], deny: [{}] }} }} }}\n  {{user: caller, password: c}}\n] }}\n",
        quoted(&allow),
        quoted(&deny)
    );
    let server = NatsServer::start(&config).unwrap();
    let mut svc = Client::connect(&server, "svc", "s");
    svc.send("SUB p0.safe.443.*.alt_kitchen.*.GET.items.> 1\r\n");
    let answer = svc.sync();
    assert!(
        answer.iter().all(|l| !l.starts_with("-ERR")),
        "the server refused the widened subscription: {answer:?}"
    );
    let mut caller = Client::connect(&server, "caller", "c");
    for path in ["items.one", "items.one.secret", "items.two.three.four"] {
        caller.send(&format!(
            "PUB p0.safe.443.x_example.alt_kitchen._.GET.{path} 2\r\nhi\r\n"
        ));
    }
    assert_eq!(caller.sync(), Vec::<String>::new());
    let mut got = vec![];
    for line in svc.sync() {
        if let Some(rest) = line.strip_prefix("MSG ") {
            got.push(rest.split(' ').next().unwrap().to_string());
        }
    }
    got
}

#[test]
fn a_sub_rule_ending_in_a_wildcard_is_widened_by_the_server() {
    assert_eq!(
        delivered(false),
        [
            "p0.safe.443.x_example.alt_kitchen._.GET.items.one",
            "p0.safe.443.x_example.alt_kitchen._.GET.items.one.secret",
            "p0.safe.443.x_example.alt_kitchen._.GET.items.two.three.four",
        ]
    );
}

#[test]
fn the_deny_guard_keeps_the_rule_to_its_meaning() {
    assert_eq!(
        delivered(true),
        ["p0.safe.443.x_example.alt_kitchen._.GET.items.one"]
    );
}
