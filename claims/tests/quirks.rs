//! Every row of the quirks table in `shared/reference/edge-layers.md`
//! (where Microbus's boolexp authorizes by accident), with our answer, plus
//! the grammar's refusals and the flattening of token JSON.

use buswarden_claims::{Claims, ClaimsError, Expr, Value, interpret, parse};

fn claims(json: &str) -> Claims {
    serde_json::from_str(json).expect("claims parse")
}

fn eval(expr: &str, json: &str) -> bool {
    interpret(&parse(expr).expect("expression parses"), &claims(json))
}

#[test]
fn a_missing_claim_never_satisfies_not_equal() {
    // Go: true (nil != "x" across types).
    assert!(!eval("missing != 'x'", "{}"));
    assert!(!eval("missing != ''", "{}"));
    // A claim of another type does not either.
    assert!(!eval("level != 'x'", r#"{"level": 3}"#));
    // The explicit negation is what says "absent or different".
    assert!(eval("!(missing == 'x')", "{}"));
    assert!(eval("name != 'x'", r#"{"name": "y"}"#));
    assert!(!eval("name != 'x'", r#"{"name": "x"}"#));
}

#[test]
fn two_missing_claims_are_not_equal() {
    // Go: true (nil == nil).
    assert!(!eval("missing == other", "{}"));
    assert!(!eval("missing != other", "{}"));
    assert!(eval("a == b", r#"{"a": "x", "b": "x"}"#));
    assert!(!eval("a == b", r#"{"a": "x", "b": 1}"#));
}

#[test]
fn t_inf_nan_are_claim_names_not_literals() {
    // Go: true (parsed as bool/float literals).
    for name in ["t", "T", "inf", "nan", "True", "TRUE", "f", "F"] {
        assert_eq!(parse(name).unwrap(), Expr::Claim(name.to_string()));
        assert!(!eval(name, "{}"), "{name} with no such claim");
    }
    assert!(eval("t", r#"{"t": true}"#));
    assert!(eval("true", "{}"));
    assert!(!eval("false", "{}"));
}

#[test]
fn regular_expressions_match_the_whole_claim() {
    // Go: substring match (RE2 is unanchored).
    assert!(!eval(
        "iss =~ 'access.token.core'",
        r#"{"iss": "https://access.token.core"}"#
    ));
    assert!(!eval(
        "iss =~ 'access.token.core'",
        r#"{"iss": "access.token.core.evil.example"}"#
    ));
    assert!(eval(
        "iss =~ 'access.token.core'",
        r#"{"iss": "access.token.core"}"#
    ));
    assert!(eval(
        r"iss =~ '(https://)?access\.token\.core'",
        r#"{"iss": "https://access.token.core"}"#
    ));
    assert!(eval(
        "iss =~ '.*token.*'",
        r#"{"iss": "https://access.token.core"}"#
    ));
    // `!~` needs a string claim too.
    assert!(eval("iss !~ 'x.*'", r#"{"iss": "abc"}"#));
    assert!(!eval("iss !~ 'x.*'", "{}"));
    assert!(!eval("iss !~ 'x.*'", r#"{"iss": 5}"#));
    // Nothing escapes the anchors: not an alternation, not a pattern that
    // closes the anchoring group itself or escapes its closing parenthesis.
    assert!(parse("iss =~ 'x)|(.*'").is_err());
    assert!(parse(r"iss =~ 'x\\'").is_err());
    assert!(!eval("iss =~ 'a|b'", r#"{"iss": "ab"}"#));
    assert!(eval("iss =~ 'a|b'", r#"{"iss": "b"}"#));
}

#[test]
fn quoted_strings_may_hold_operators() {
    // Go: error (the `&&`/`||` split is not quote-aware).
    assert!(eval("name == 'a&&b'", r#"{"name": "a&&b"}"#));
    assert!(eval(
        r#"name == "x || y" && ok"#,
        r#"{"name": "x || y", "ok": true}"#
    ));
    assert!(eval("name == `(!=)`", r#"{"name": "(!=)"}"#));
    assert!(eval(r"name == 'it\'s'", r#"{"name": "it's"}"#));
}

#[test]
fn negating_a_comparison_needs_parentheses() {
    // Go: error.
    let e = parse("!name == 'bob'").unwrap_err();
    assert_eq!(e.offset, 1);
    assert!(e.message.contains("!(name"), "{}", e.message);
    assert!(eval("!(name == 'bob')", r#"{"name": "alice"}"#));
    assert!(parse("!name =~ 'b.*'").is_err());
}

#[test]
fn no_comparison_across_types() {
    // Go: false; ours too.
    assert!(!eval("strlevel > 5", r#"{"strlevel": "7"}"#));
    assert!(!eval("strlevel == 7", r#"{"strlevel": "7"}"#));
    assert!(eval("level > 5", r#"{"level": 7}"#));
    assert!(eval("level >= 7.0", r#"{"level": 7}"#));
    assert!(eval("5 < level", r#"{"level": 7}"#));
    assert!(!eval("level < 5", r#"{"level": 7}"#));
    assert!(eval("name < 'b'", r#"{"name": "a"}"#));
    assert!(eval("admin == true", r#"{"admin": true}"#));
    assert!(!eval("admin == true", r#"{"admin": "true"}"#));
}

#[test]
fn empty_arrays_and_objects_are_not_true() {
    // Go: true (arrays/maps are never "empty").
    assert!(!eval("roles", r#"{"roles": []}"#));
    assert!(!eval("roles", r#"{"roles": ["admin"]}"#));
    assert!(!eval("org", r#"{"org": {"id": 1}}"#));
    assert!(!eval("roles == ''", r#"{"roles": []}"#));
    assert!(eval("roles.admin", r#"{"roles": ["admin"]}"#));
    assert!(eval("org.id == 1", r#"{"org": {"id": 1}}"#));
}

#[test]
fn the_reference_examples() {
    let c = r#"{"roles": ["admin", "manager"], "level": 3, "iss": "https://access.token.core"}"#;
    assert!(eval("roles.admin", c));
    assert!(!eval("level>5 && !guest", c));
    assert!(eval("level>2 && !guest", c));
    assert!(eval("iss!=''", c));
    assert!(eval("roles.manager && level>2", c));
    assert!(eval("roles.admin || (level > 5 && !guest)", c));
}

#[test]
fn malformed_expressions_are_refused_with_a_place() {
    for (text, offset) in [
        ("", 0),
        ("a ==", 4),
        ("a = 'b'", 2),
        ("a & b", 2),
        ("a | b", 2),
        ("(a", 0),
        ("a)", 1),
        ("'text'", 0),
        ("5", 0),
        ("'a' == 'b'", 4),
        ("admin < true", 6),
        ("a =~ b", 2),
        ("'a' =~ 'b'", 0),
        ("a =~ '('", 5),
        ("a == 'open", 5),
        ("5abc", 0),
        ("1e999 < a", 0),
        ("a..b", 2),
        ("a == b == c", 7),
        ("é", 0),
        ("a ||", 4),
        ("&& a", 0),
    ] {
        let e = parse(text).expect_err(text);
        assert_eq!(e.offset, offset, "{text}: {e}");
        assert!(!e.message.is_empty());
    }
}

#[test]
fn nesting_and_length_are_bounded() {
    let deep = format!("{}a{}", "(".repeat(65), ")".repeat(65));
    assert!(parse(&deep).is_err());
    let ok = format!("{}a{}", "(".repeat(60), ")".repeat(60));
    assert!(parse(&ok).is_ok());
    assert!(parse(&"!".repeat(100_000)).is_err());
    let nots = format!("{}a", "!".repeat(100));
    assert!(parse(&nots).unwrap_err().message.contains("nested"));
    assert!(parse(&format!("{}a", "!".repeat(64))).is_ok());
    let long = vec!["a"; 3000].join(" || ");
    assert!(parse(&long).is_err());
}

#[test]
fn token_json_flattens_and_refuses_ambiguity() {
    let c = claims(
        r#"{"sub": "u1", "roles": ["admin", "admin", 7, true, {"x": 1}], "org": {"id": 5, "name": null},
            "a.b": true, "": 1}"#,
    );
    assert_eq!(c.get("sub"), Some(&Value::Str("u1".into())));
    assert_eq!(c.get("roles"), Some(&Value::Container));
    assert_eq!(c.get("roles.admin"), Some(&Value::Bool(true)));
    assert_eq!(c.get("roles.7"), Some(&Value::Bool(true)));
    assert_eq!(c.get("roles.true"), Some(&Value::Bool(true)));
    assert_eq!(c.get("org.id"), Some(&Value::Num(5.0)));
    assert_eq!(c.get("org.name"), Some(&Value::Null));
    // A key holding a dot cannot forge a nested path.
    assert_eq!(c.get("a.b"), None);
    let dup = serde_json::from_str::<Claims>(r#"{"a": 1, "a": 2}"#).unwrap_err();
    assert!(dup.to_string().contains("twice"), "{dup}");
    let deep = format!("{}1{}", r#"{"a":"#.repeat(40), "}".repeat(40));
    assert!(serde_json::from_str::<Claims>(&deep).is_err());
    let many: Vec<String> = (0..2000).map(|i| format!("\"k{i}\": {i}")).collect();
    let many = format!("{{{}}}", many.join(","));
    assert!(serde_json::from_str::<Claims>(&many).is_err());
    assert!(serde_json::from_str::<Claims>("[1]").is_err());
    let mut built = Claims::new();
    built.insert("x", Value::Bool(true)).unwrap();
    assert_eq!(
        built.insert("x", Value::Bool(false)),
        Err(ClaimsError::Duplicate("x".into()))
    );
}
