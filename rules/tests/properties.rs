//! Property tests over arbitrary hostnames, paths, routes and rule sets,
//! including `.`, `*`, `>`, `_`, `%`, spaces, control bytes and multi-byte
//! UTF-8: the subject layout cannot be bent by any input.

use buswarden_rules::derive::{Call, Dest, call_rule, derive};
use buswarden_rules::hostname::{Hostname, flatten, flattens_to};
use buswarden_rules::pattern;
use buswarden_rules::policy::Policy;
use buswarden_rules::route::{Method, Route, Segment, Url};
use buswarden_rules::rule::{Rule, RuleSet, Verb};
use buswarden_rules::subject::{
    Plane, Position, RequestSubject, Subject, Trust, decode, request, subscription,
};
use buswarden_rules::{ServiceModel, acl};
use proptest::prelude::*;

/// Characters that have a meaning somewhere in the layout, plus ordinary
/// and multi-byte ones.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '.', '*', '>', '_', '%', ' ', '/', '{', '}', '-', '\t', '\n', '\r', '\0', '\u{7f}',
            '\u{1b}', 'é', '漢', '😀', '\u{2028}', '?', '#', ':', '$', '@',
        ]),
        4 => prop::char::range('a', 'z'),
        1 => prop::char::range('A', 'Z'),
        1 => prop::char::range('0', '9'),
        1 => any::<char>(),
    ]
}

fn nasty_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

fn segment_text() -> impl Strategy<Value = String> {
    nasty_text(8).prop_map(|s| s.replace('/', ""))
}

fn hostname() -> impl Strategy<Value = Hostname> {
    prop_oneof![
        // A small pool so that different tuples often share hosts.
        3 => prop::sample::select(vec!["a.example", "b.example", "a-b.example", "ab.example", "a.b.example", "x"])
            .prop_map(|s| Hostname::parse(s).unwrap()),
        1 => prop::collection::vec("[a-z0-9-]{1,6}", 1..4).prop_filter_map("reserved", |labels| {
            Hostname::parse(&labels.join(".")).ok()
        }),
    ]
}

fn plane() -> impl Strategy<Value = Plane> {
    "[a-z0-9-]{1,8}".prop_map(|s| Plane::parse(&s).unwrap())
}

fn position() -> impl Strategy<Value = Position> {
    prop_oneof![
        Just(Position::Any),
        "id-[a-z0-9]{1,10}".prop_map(|s| Position::parse(&s).unwrap()),
        "loc-[a-z0-9-]{1,10}".prop_map(|s| Position::parse(&s).unwrap()),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec!["GET", "POST", "ANY", "DELETE"]),
        "[A-Za-z]{1,8}".prop_map(|s| Box::leak(s.into_boxed_str()) as &str),
    ]
    .prop_map(|m| Method::parse(m).unwrap())
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => prop::sample::select(vec![0u16, 80, 443, 444, 417, 666, 888]),
        1 => any::<u16>(),
    ]
}

/// A path with its leading `/`: canonical input of the publish form.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => segment_text(),
            1 => prop::sample::select(vec!["a", "b", "", "*", ">", "{x}", "_", "%2e", "a.b"])
                .prop_map(String::from),
        ],
        1..5,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")))
}

/// A route as the analyzer builds it: literals (any text), `{arg}`, `*`, and
/// possibly a final greedy argument.
fn route() -> impl Strategy<Value = Route> {
    (
        port(),
        prop::collection::vec(
            prop_oneof![
                3 => segment_text().prop_map(Segment::Literal),
                2 => prop::sample::select(vec!["a", "b", "", "*", ">", "{x}"])
                    .prop_map(|s| Segment::Literal(s.to_string())),
                1 => Just(Segment::Arg("x".into())),
                1 => Just(Segment::Star),
            ],
            1..4,
        ),
        any::<bool>(),
    )
        .prop_map(|(port, mut segments, greedy)| {
            if greedy {
                segments.push(Segment::Greedy("rest".into()));
            }
            Route {
                host: None,
                port,
                segments,
            }
        })
}

fn path_segments(path: &str) -> Vec<&str> {
    path.strip_prefix('/').unwrap_or(path).split('/').collect()
}

/// Whether a concrete request tuple is one the call may make: the meaning of
/// a grant, written without subjects.
fn call_covers(
    src: &Hostname,
    call: &Call,
    b_src: &Hostname,
    b_dest: &Hostname,
    b_port: u16,
    b_method: &Method,
    b_path: &str,
) -> bool {
    let port_ok = if call.route.port == 0 {
        Trust::of_port(b_port) == Trust::Safe
    } else {
        call.route.port == b_port
    };
    let dest_ok = match &call.dest {
        Dest::Host(h) => h == b_dest,
        Dest::Any => true,
    };
    let segs = path_segments(b_path);
    let mut i = 0;
    let mut path_ok = true;
    for seg in &call.route.segments {
        match seg {
            Segment::Greedy(_) => {
                path_ok = i < segs.len();
                i = segs.len();
                break;
            }
            Segment::Arg(_) | Segment::Star => {
                if i >= segs.len() {
                    path_ok = false;
                    break;
                }
            }
            Segment::Literal(l) => {
                if segs.get(i) != Some(&l.as_str()) {
                    path_ok = false;
                    break;
                }
            }
        }
        i += 1;
    }
    path_ok &= i == segs.len();
    src == b_src && dest_ok && port_ok && &call.method == b_method && path_ok
}

/// A concrete path the route accepts, its arguments filled with `fill`.
fn instantiate(route: &Route, fill: &[String]) -> String {
    let mut out = String::new();
    for (i, seg) in route.segments.iter().enumerate() {
        out.push('/');
        match seg {
            Segment::Literal(l) => out.push_str(l),
            Segment::Arg(_) | Segment::Star => out.push_str(&fill[i % fill.len()]),
            Segment::Greedy(_) => {
                out.push_str(&fill[i % fill.len()]);
                out.push_str("/x");
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// `flattens_to` agrees with `flatten` on any host and any token,
    /// including the host's own flattening and near misses of it.
    #[test]
    fn flattens_to_agrees_with_flatten(host in nasty_text(16), other in nasty_text(16), cut in 0usize..8) {
        let flat = flatten(&host);
        prop_assert!(flattens_to(&host, &flat));
        prop_assert_eq!(flattens_to(&host, &flatten(&other)), flatten(&other) == flat);
        let mut shorter = flat.clone();
        shorter.truncate(flat.len().saturating_sub(cut + 1));
        prop_assert_eq!(flattens_to(&host, &shorter), shorter == flat);
        prop_assert_eq!(flattens_to(&host, &other), other == flat);
    }

    /// Any text in the host and path positions yields a valid NATS subject
    /// with the fixed token structure: the wildcards and dots of the input
    /// never become tokens or separators.
    #[test]
    fn published_subjects_have_the_fixed_structure(
        plane in plane(), port in any::<u16>(), src in nasty_text(12), dest in nasty_text(12),
        pos in position(), method in method(), path in nasty_text(24),
    ) {
        let s = request(&plane, port, &src, &dest, &pos, &method, &path);
        prop_assert!(pattern::is_valid(&s), "{s:?}");
        prop_assert!(s.is_ascii(), "{s:?}");
        let t: Vec<&str> = s.split('.').collect();
        prop_assert!(t.len() >= 8);
        prop_assert!(t.iter().all(|t| *t != "*" && *t != ">"), "{s:?}");
        prop_assert_eq!(t[0], plane.as_str());
        prop_assert_eq!(t[1], Trust::of_port(port).as_str());
        let port_text = port.to_string();
        prop_assert_eq!(t[2], port_text.as_str());
        prop_assert_eq!(t[3].to_string(), flatten(&src));
        prop_assert_eq!(t[4].to_string(), flatten(&dest));
        prop_assert_eq!(t[5], pos.token());
        prop_assert_eq!(t[6], method.as_str());
        prop_assert_eq!(t.len() - 7, path_segments(&path).len());
    }

    /// Reply subjects keep their six tokens whatever the hosts, and a
    /// service's implicit reply rules match only replies in its own name.
    #[test]
    fn reply_subjects_are_pinned_to_the_responder(
        plane in plane(), me in hostname(), responder in hostname(), caller in hostname(),
        raw_responder in nasty_text(12), raw_caller in nasty_text(12), id in position(),
    ) {
        let raw = buswarden_rules::subject::reply(&plane, &raw_responder, &raw_caller, &id);
        prop_assert!(pattern::is_valid(&raw), "{raw:?}");
        prop_assert_eq!(raw.split('.').count(), 6);
        let implicit = buswarden_rules::derive::implicit_rules(&me, false);
        let fill = |r: &Rule| r.subject_for_plane(plane.as_str());
        let pub_reply = implicit.iter().find(|r| r.verb == Verb::Pub).unwrap();
        let s = buswarden_rules::subject::reply(&plane, responder.as_str(), caller.as_str(), &id);
        prop_assert_eq!(pattern::matches(&fill(pub_reply), &s), responder == me);
        prop_assert!(!pattern::matches(&fill(pub_reply), &raw) || flatten(&raw_responder) == me.flatten());
        let sub_reply = buswarden_rules::subject::reply_subscription(&plane, me.as_str(), &id);
        prop_assert_eq!(pattern::matches(&sub_reply, &s), caller == me);
    }

    /// The subscribe form of any route is a valid pattern whose wildcards
    /// are exactly the ones the layout writes.
    #[test]
    fn subscriptions_have_the_fixed_structure(
        plane in plane(), host in hostname(), pos in position(), method in method(), route in route(),
    ) {
        let s = subscription(&plane, host.as_str(), &pos, &method, &route);
        prop_assert!(pattern::is_valid(&s), "{s:?}");
        let t: Vec<&str> = s.split('.').collect();
        prop_assert_eq!(t[3], "*");
        prop_assert_eq!(t[4], host.flatten());
        prop_assert_eq!(t[6], if method.is_any() { "*" } else { method.as_str() });
        prop_assert_eq!(t.len() - 7, route.segments.len());
        for (tok, seg) in t[7..].iter().zip(&route.segments) {
            let want_wild = match seg {
                Segment::Literal(_) => None,
                Segment::Arg(_) | Segment::Star => Some("*"),
                Segment::Greedy(_) => Some(">"),
            };
            match want_wild {
                Some(w) => prop_assert_eq!(*tok, w),
                None => prop_assert!(*tok != "*" && *tok != ">"),
            }
        }
    }

    /// decode(encode(x)) == x for every valid input (path with its leading `/`).
    #[test]
    fn decode_inverts_encode(
        plane in plane(), port in any::<u16>(), src in hostname(), dest in hostname(),
        pos in position(), method in method(), path in path(),
    ) {
        let s = request(&plane, port, src.as_str(), dest.as_str(), &pos, &method, &path);
        let want = Subject::Request(RequestSubject {
            plane, trust: Trust::of_port(port), port,
            src: src.to_string(), dest: dest.to_string(), pos, method, path,
        });
        prop_assert_eq!(decode(&s), Ok(want));
    }

    /// Decoding is injective: a subject that decodes re-encodes to itself.
    #[test]
    fn decoded_subjects_re_encode_to_themselves(tokens in prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec!["p0", "safe", "danger", "443", "666", "0", "a_b", "_", "id-x", "GET", "%2e", "%41", "%2f", "a%2fb", "%c3%a9", "a"])
                .prop_map(String::from),
            "[a-z0-9%_-]{1,6}",
        ],
        6..11,
    )) {
        let s = tokens.join(".");
        if let Ok(Subject::Request(r)) = decode(&s) {
            let again = request(&r.plane, r.port, &r.src, &r.dest, &r.pos, &r.method, &r.path);
            prop_assert_eq!(again, s);
        }
    }

    /// A rule derived for call A matches the published subject of tuple B
    /// exactly when A's route (its arguments included) covers B: no escaping
    /// trick can widen a grant.
    #[test]
    fn a_grant_matches_exactly_the_tuples_its_call_covers(
        plane in plane(), a_src in hostname(), a_dest in prop::option::of(hostname()),
        a_method in method(), a_route in route(),
        b_src in hostname(), b_dest in hostname(), b_port in port(), b_method in method(),
        b_pos in position(), b_path in path(), fill in prop::collection::vec(segment_text(), 1..3),
        related in any::<bool>(),
    ) {
        let call = Call {
            dest: a_dest.map_or(Dest::Any, Dest::Host),
            method: a_method,
            route: a_route,
        };
        let rule = call_rule(&a_src, &call);
        // Half the time B is built from A so the interesting boundary is hit.
        let (b_src, b_dest, b_port, b_method, b_path) = if related {
            let dest = match &call.dest { Dest::Host(h) => h.clone(), Dest::Any => b_dest };
            let port = if call.route.port == 0 { b_port } else { call.route.port };
            (a_src.clone(), dest, port, call.method.clone(), instantiate(&call.route, &fill))
        } else {
            (b_src, b_dest, b_port, b_method, b_path)
        };
        let subject = request(&plane, b_port, b_src.as_str(), b_dest.as_str(), &b_pos, &b_method, &b_path);
        let matched = pattern::matches(&rule.subject_for_plane(plane.as_str()), &subject);
        let covered = call_covers(&a_src, &call, &b_src, &b_dest, b_port, &b_method, &b_path);
        prop_assert_eq!(matched, covered, "rule {} subject {}", rule, subject);
    }

    /// The same for the SUB rule of an event hook and of an endpoint served
    /// under another host: it receives exactly the requests its route
    /// covers, from any caller.
    #[test]
    fn a_hook_receives_exactly_what_its_route_covers(
        plane in plane(), source in hostname(), method in method(), route in route(),
        b_src in hostname(), b_dest in hostname(), b_port in port(), b_method in method(),
        b_pos in position(), b_path in path(), fill in prop::collection::vec(segment_text(), 1..3),
        related in any::<bool>(),
    ) {
        let hook = buswarden_rules::derive::Hook { source: source.clone(), method: method.clone(), route: route.clone() };
        let rule = buswarden_rules::derive::hook_rule(&hook);
        let endpoint = buswarden_rules::derive::endpoint_rule(
            &Hostname::parse("own.example").unwrap(),
            &buswarden_rules::derive::Endpoint {
                method: method.clone(),
                route: Route { host: Some(source.clone()), ..route.clone() },
            },
        );
        prop_assert_eq!(Some(&rule), endpoint.as_ref(), "hooks and foreign endpoints share a shape");
        let (b_dest, b_port, b_method, b_path) = if related {
            let port = if route.port == 0 { b_port } else { route.port };
            let m = if method.is_any() { b_method } else { method.clone() };
            (source.clone(), port, m, instantiate(&route, &fill))
        } else {
            (b_dest, b_port, b_method, b_path)
        };
        let subject = request(&plane, b_port, b_src.as_str(), b_dest.as_str(), &b_pos, &b_method, &b_path);
        let as_call = Call {
            dest: Dest::Host(source.clone()),
            method: if method.is_any() { b_method.clone() } else { method.clone() },
            route: route.clone(),
        };
        let covered = call_covers(&b_src, &as_call, &b_src, &b_dest, b_port, &b_method, &b_path);
        let matched = pattern::matches(&rule.subject_for_plane(plane.as_str()), &subject);
        prop_assert_eq!(matched, covered, "rule {} subject {}", rule, subject);
    }

    /// Dropping subsumed rules never changes which subjects a set matches.
    #[test]
    fn minimize_keeps_what_a_set_matches(
        rules in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(prop::sample::select(vec!["a", "b", "*"]), 0..8), any::<bool>()),
            0..12,
        ),
        subjects in prop::collection::vec(prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..10), 1..32),
    ) {
        let set: RuleSet = rules.iter().filter_map(|(pub_, toks, tail)| {
            let mut toks: Vec<&str> = toks.clone();
            if *tail || toks.is_empty() { toks.push(">"); }
            Rule::new(if *pub_ { Verb::Pub } else { Verb::Sub }, toks.join(".")).ok()
        }).collect();
        let mut min = set.clone();
        min.minimize();
        prop_assert!(min.len() <= set.len());
        for s in &subjects {
            let s = s.join(".");
            for verb in [Verb::Pub, Verb::Sub] {
                prop_assert_eq!(set.allows(verb, &s), min.allows(verb, &s), "{} {}", verb, s);
            }
        }
        // The SUB deny guards never deny a subject a SUB rule allows, and
        // every SUB rule ending in `*` is either guarded or listed.
        let guards = set.sub_guards();
        for s in &subjects {
            let s = s.join(".");
            if set.allows(Verb::Sub, &s) {
                prop_assert!(!guards.deny.iter().any(|g| pattern::matches(&g.deny, &s)), "{}", s);
            }
        }
        let ending_in_star = set.of(Verb::Sub).filter(|r| r.subject.ends_with('*') && r.subject.split('.').next_back() == Some("*")).count();
        prop_assert_eq!(guards.deny.len() + guards.unguarded.len(), ending_in_star);
        // Minimizing is idempotent, and no kept rule covers another.
        let mut again = min.clone();
        again.minimize();
        prop_assert_eq!(&again, &min);
        for a in min.iter() {
            for b in min.iter() {
                prop_assert!(a == b || !a.covers(b), "{} covers {}", a, b);
            }
        }
    }

    /// Derived rule sets are minimal and match every call they were derived from.
    #[test]
    fn derived_sets_match_their_calls(
        own in hostname(), calls in prop::collection::vec((hostname(), method(), route()), 0..8),
        plane in plane(), fill in prop::collection::vec(segment_text(), 1..3),
    ) {
        let mut model = ServiceModel::new(own.clone());
        for (dest, method, route) in &calls {
            model.calls.push(Call { dest: Dest::Host(dest.clone()), method: method.clone(), route: route.clone() });
        }
        let set = derive(&model);
        let filled: RuleSet = set.iter().map(|r| Rule::new(r.verb, r.subject_for_plane(plane.as_str())).unwrap()).collect();
        for c in &model.calls {
            let Dest::Host(dest) = &c.dest else { unreachable!("only hosts are generated") };
            let subject = request(&plane, c.route.port, own.as_str(), dest.as_str(), &Position::Any, &c.method, &instantiate(&c.route, &fill));
            prop_assert!(filled.allows(Verb::Pub, &subject), "{subject}");
        }
        // The only refusals are a call to another host's event port (:417):
        // only the source fires its own events; and a call to port 0 (any
        // port: for subscriptions only).
        let any_port = model.calls.iter().any(|c| c.route.port == 0);
        if let Err(errors) = buswarden_rules::validate::validate(&own, &set) {
            for e in errors {
                use buswarden_rules::validate::ValidationError as V;
                prop_assert!(
                    matches!(e, V::ForeignEvent { .. }) || (any_port && matches!(e, V::PortWildcard { .. })),
                    "{e}"
                );
            }
        }
    }

    /// Nothing panics on any input.
    #[test]
    fn parsers_never_panic(text in nasty_text(64), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let lossy = String::from_utf8_lossy(&raw).into_owned();
        for t in [&text, &lossy] {
            let _ = Hostname::parse(t);
            let _ = Hostname::parse_exact(t);
            let _ = Route::parse(t);
            let _ = Url::parse(t);
            let _ = Url::parse(&format!("https://{t}"));
            let _ = Url::parse(&format!("http://a.example{t}"));
            let _ = Method::parse(t);
            let _ = Position::parse(t);
            let _ = Plane::parse(t);
            let _ = decode(t);
            let _ = decode(&format!("p0.safe.443.a.b._.GET.{t}"));
            let _ = decode(&format!("p0.reply._.{t}"));
            let _ = Rule::parse(t);
            let _ = Rule::parse(&format!("PUB {t}"));
            let _ = acl::parse(t);
            let _ = acl::parse(&format!("# nats.acl for a.example\n{t}"));
            let _ = Policy::parse(t);
            let _ = Policy::parse(&format!("version = 1\n[caller.\"a.example\"]\n{t}"));
            let _ = Policy::parse(&format!("version = 1\n[caller.\"a.example\"]\ntrust-root = [\"{}\"]\n", t.replace(['"', '\\'], "")));
            let _ = Policy::parse(&format!("version = 1\n[caller.\"a.example\"]\nwildcards = [\"{}\"]\n", t.replace(['"', '\\'], "")));
            let _ = flatten(t);
            let _ = buswarden_rules::hostname::unflatten(t);
            if let Ok(rule) = Rule::parse(&format!("PUB {t}")) {
                let _ = buswarden_rules::validate::validate_rule("a_example", &rule);
                let _ = buswarden_rules::policy::is_trust_root_grant("a_example", &rule);
                let _ = buswarden_rules::policy::is_wildcard_grant(&rule);
            }
        }
    }
}
