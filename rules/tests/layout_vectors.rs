//! Every vector of the subject-layout reference's "More vectors" section
//! (Microbus's own tests), one test per group. Where buswarden differs on
//! purpose the test asserts our behaviour and `docs/formats.md` ("Where we
//! differ from Microbus's layout vectors") says why.

use buswarden_rules::hostname::{flatten, unflatten};
use buswarden_rules::pattern::covers;
use buswarden_rules::subject::{escape_segment, reply, reply_subscription};
use buswarden_rules::{Hostname, HostnameError, Plane, Position, Route, Url};

fn seg(s: &str) -> String {
    let mut out = String::new();
    escape_segment(&mut out, s);
    out
}

/// Escaping: `UPPER.xml` -> `UPPER%2exml`. Microbus escapes an empty path
/// part and an empty hostname to `""`; we write `_` for both (an empty
/// token would make two dots, which NATS refuses): a deliberate difference.
#[test]
fn escaping() {
    assert_eq!(seg("UPPER.xml"), "UPPER%2exml");
    assert_eq!(seg(""), "_");
    assert_eq!(flatten(""), "_");
}

fn p0() -> Plane {
    Plane::parse("p0").unwrap()
}

/// Reply subjects, subscribe and publish forms; upper case lower-cased.
#[test]
fn reply_subjects() {
    let id = |s: &str| Position::parse(s).unwrap();
    assert_eq!(
        reply_subscription(&p0(), "example.com", &id("id-1234")),
        "p0.reply._.*.example_com.id-1234"
    );
    assert_eq!(
        reply_subscription(&p0(), "www.example.com", &id("id-abcd1234")),
        "p0.reply._.*.www_example_com.id-abcd1234"
    );
    assert_eq!(
        reply(&p0(), "by.com", "example.com", &id("id-1234")),
        "p0.reply._.by_com.example_com.id-1234"
    );
    assert_eq!(
        reply(&p0(), "by.com", "www.EXAMPLE.com", &id("ID-ABCD1234")),
        "p0.reply._.by_com.www_example_com.id-abcd1234"
    );
}

/// Flattening, and why `_` is refused in hostnames (`a_b.c` and `a.b.c`
/// flatten alike).
#[test]
fn flatten_vectors() {
    assert_eq!(flatten("www.example.com"), "www_example_com");
    assert_eq!(flatten("example.com"), "example_com");
    assert_eq!(flatten("hostname"), "hostname");
    assert_eq!(flatten("a_b.c"), "a_b_c");
    assert_eq!(flatten("a.b.c"), "a_b_c");
    assert!(matches!(
        Hostname::parse("a_b.c"),
        Err(HostnameError::Underscore { .. })
    ));
}

/// Unflattening (token -> hostname) and round trips.
#[test]
fn unflatten_vectors() {
    for (token, host) in [
        ("www_sub_example_com", "www.sub.example.com"),
        ("example_com", "example.com"),
        ("com", "com"),
        ("my%24_xml", "my$.xml"),
        ("a%21b_c", "a!b.c"),
    ] {
        assert_eq!(unflatten(token).as_deref(), Some(host), "{token}");
    }
    for host in ["example.com", "my-service.core"] {
        assert_eq!(unflatten(&flatten(host)).as_deref(), Some(host));
    }
}

/// Localities: Microbus turns `us` into `loc-us` and `US-WEST` into
/// `loc-us-west` (a service's own locality, `Position::locality`, as the
/// runtime's `Connector::with_locality` reads it). A position in a subject
/// or a host label is its full token (`loc-us`, case-insensitive): a bare
/// word there is never a position.
#[test]
fn locality_tokens() {
    assert_eq!(
        Position::locality("us").unwrap(),
        Position::Loc("loc-us".into())
    );
    assert_eq!(
        Position::locality("US-WEST").unwrap(),
        Position::Loc("loc-us-west".into())
    );
    assert_eq!(
        Position::parse("loc-us").unwrap(),
        Position::Loc("loc-us".into())
    );
    assert_eq!(
        Position::parse("LOC-US-WEST").unwrap(),
        Position::Loc("loc-us-west".into())
    );
    assert!(Position::parse("us").is_err());
    assert!(Position::parse("US-WEST").is_err());
}

/// The leading id/locality label of a host is a position, never part of a
/// hostname: `loc-us-west.example.com` and `ID-ABC123.example.com` split
/// into a position and `example.com` (the runtime's target parser does the
/// split; here: the position parses, the rest is the hostname, and the whole
/// is refused as a hostname). `singleton` and `other.example.com` have none.
#[test]
fn leading_position_labels() {
    for (host, pos, rest) in [
        ("loc-us-west.example.com", "loc-us-west", "example.com"),
        ("ID-ABC123.example.com", "id-abc123", "example.com"),
    ] {
        let (first, tail) = host.split_once('.').unwrap();
        assert_eq!(Position::parse(first).unwrap().token(), pos);
        assert_eq!(Hostname::parse(tail).unwrap().as_str(), rest);
        assert!(Hostname::parse(host).is_err(), "{host}");
        let (p, r) = Position::split_host(host).unwrap();
        assert_eq!((p.token(), r), (pos, rest));
    }
    for host in ["singleton", "other.example.com"] {
        let first = host.split('.').next().unwrap();
        assert!(Position::parse(first).is_err(), "{first}");
        assert!(Hostname::parse(host).is_ok());
        assert_eq!(Position::split_host(host).unwrap(), (Position::Any, host));
    }
}

/// Hostname validation: reserved first labels, the reserved last label
/// `all`, length; accepted look-alikes.
#[test]
fn hostname_validation() {
    for bad in [
        "id-abc",
        "loc-us-west",
        "ID-ABC.example.com",
        "LOC-US-WEST.example.com",
    ] {
        assert!(
            matches!(
                Hostname::parse(bad),
                Err(HostnameError::ReservedLabel { .. })
            ),
            "{bad}"
        );
    }
    for bad in ["all", "foo.all", "my.service.all", "ALL", "My.Service.ALL"] {
        assert!(
            matches!(Hostname::parse(bad), Err(HostnameError::ReservedAll { .. })),
            "{bad}: {:?}",
            Hostname::parse(bad)
        );
    }
    // 253 bytes or more: Microbus refuses 253; we follow DNS and accept up
    // to 253 (a deliberate difference, documented), refusing 254 and up.
    let label = "a".repeat(63);
    let host_253 = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(host_253.len(), 253);
    assert!(Hostname::parse(&host_253).is_ok());
    assert!(matches!(
        Hostname::parse(&format!("{host_253}c")),
        Err(HostnameError::TooLong { .. })
    ));
    for good in [
        "foo.loc-bar.example.com",
        "identity.example.com",
        "local.example.com",
    ] {
        assert!(Hostname::parse(good).is_ok(), "{good}");
    }
}

/// Route hosts: reserved first labels refused, look-alikes accepted; the
/// broadcast host `all` is a destination only; `x.all` is refused.
#[test]
fn route_hosts() {
    for bad in [
        "//id-abc/path",
        "//id-abc.example.com/path",
        "//loc-us-west.example.com/path",
        "//foo.all/path",
    ] {
        assert!(Route::parse(bad).is_err(), "{bad}");
    }
    for good in ["//id.example.com/path", "//loc.example.com/path"] {
        assert!(Route::parse(good).is_ok(), "{good}");
    }
    let all = Route::parse("//all:888/flush").unwrap();
    assert!(all.host.unwrap().is_broadcast());
    assert!(Hostname::parse("all").is_err());
}

/// Route and URL hosts with URL special characters are legal and flatten by
/// escaping: `//my$.xml/lookup` -> destination token `my%24_xml`. They are
/// never a service's hostname.
#[test]
fn url_special_characters_in_route_hosts_flatten() {
    let r = Route::parse("//my$.xml/lookup").unwrap();
    let host = r.host.unwrap();
    assert_eq!(host.as_str(), "my$.xml");
    assert_eq!(host.flatten(), "my%24_xml");
    assert_eq!(unflatten(&host.flatten()).as_deref(), Some("my$.xml"));
    let u = Url::parse("https://a!b.c/x").unwrap();
    assert_eq!(u.host.flatten(), "a%21b_c");
    assert!(Hostname::parse("my$.xml").is_err());
    // `_`, `%`, `*`-free dots and non-ASCII stay refused in route hosts.
    for bad in ["//a_b.c/x", "//a%24.c/x", "//é.c/x", "//a b/x", "//a>.c/x"] {
        assert!(Route::parse(bad).is_err(), "{bad}");
    }
}

/// Subsumption: which pattern covers which.
#[test]
fn subsumption() {
    for (broad, narrow, want) in [
        ("x.>", "x.y.z", true),
        ("x.>", "x.y.z.w", true),
        (">", "a", true),
        (">", "a.b.c", true),
        ("a.*.c", "a.b.c", true),
        ("*.b.c", "a.b.c", true),
        ("a.*", "a", false),
        ("a.*", "a.b.c", false),
        ("a.*.>", "a.b.c", true),
        ("a.*.>", "a.b.c.d", true),
        ("a.*.>", "a.b", false),
        ("a.b", "a.c", false),
        ("a.c", "a.b", false),
        ("a.b.c", "a.b.d", false),
        ("a.b.d", "a.b.c", false),
        ("a.*", "*.b", false),
        ("*.b", "a.*", false),
    ] {
        assert_eq!(covers(broad, narrow), want, "{broad} covers {narrow}");
    }
}
