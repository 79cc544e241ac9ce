//! Property tests of the language: printing is canonical
//! (`parse(print(e)) == e` for every tree the parser can build, and printing
//! again gives the same text), the parser never panics on arbitrary text,
//! and the interpreter is a total function of the claims.

use buswarden_claims::{Claims, CmpOp, Expr, Operand, Value, interpret, parse};
use proptest::prelude::*;

fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("roles.admin".to_string()),
        Just("level".to_string()),
        Just("guest".to_string()),
        Just("name".to_string()),
        "[a-z_][a-z0-9_-]{0,6}(\\.[a-z0-9_-]{1,5}){0,2}",
    ]
    .prop_filter("literal keywords", |n| n != "true" && n != "false")
}

fn literal() -> impl Strategy<Value = Operand> {
    prop_oneof![
        "[ -~]{0,8}".prop_map(Operand::Str),
        "\\PC{0,4}".prop_map(Operand::Str),
        (-1000i64..1000).prop_map(|n| Operand::Num(n as f64)),
        (-1e6f64..1e6).prop_map(Operand::Num),
        any::<bool>().prop_map(Operand::Bool),
    ]
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        claim_name().prop_map(Expr::Claim),
        any::<bool>().prop_map(Expr::Bool),
        (claim_name(), op(), literal(), any::<bool>()).prop_filter_map(
            "booleans are not ordered",
            |(c, op, lit, flip)| {
                if op.is_ordering() && matches!(lit, Operand::Bool(_)) {
                    return None;
                }
                let c = Operand::Claim(c);
                Some(if flip {
                    Expr::Cmp(lit, op, c)
                } else {
                    Expr::Cmp(c, op, lit)
                })
            }
        ),
        (claim_name(), op(), claim_name()).prop_map(|(a, op, b)| Expr::Cmp(
            Operand::Claim(a),
            op,
            Operand::Claim(b)
        )),
        (claim_name(), "[a-z.*|()'\\\\]{0,6}", any::<bool>()).prop_filter_map(
            "the pattern compiles",
            |(claim, pattern, negated)| {
                buswarden_claims::parse::compile_pattern(&pattern).ok()?;
                Some(Expr::Match {
                    claim,
                    pattern,
                    negated,
                })
            }
        ),
    ]
}

pub fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 48, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Expr::Not(Box::new(a))),
        ]
    })
}

fn claims() -> impl Strategy<Value = Claims> {
    let value = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-10i64..10).prop_map(|n| Value::Num(n as f64)),
        "[a-z]{0,3}".prop_map(Value::Str),
        Just(Value::Container),
        Just(Value::Null),
    ];
    proptest::collection::btree_map(claim_name(), value, 0..8).prop_map(|m| {
        let mut c = Claims::new();
        for (k, v) in m {
            c.insert(k, v).unwrap();
        }
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn printing_round_trips(e in expr()) {
        let text = e.to_string();
        let back = parse(&text).unwrap_or_else(|err| panic!("{text:?}: {err}"));
        prop_assert_eq!(&back, &e, "printed as {:?}", text);
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn the_parser_never_panics(text in "[ -~]{0,40}") {
        if let Ok(e) = parse(&text) {
            let again = parse(&e.to_string());
            prop_assert_eq!(again.as_ref(), Ok(&e));
        }
    }

    #[test]
    fn operator_soup_never_panics(text in "[a()!=<>~|&' 0-9.-]{0,40}") {
        let _ = parse(&text);
    }

    #[test]
    fn negation_and_de_morgan_hold(a in expr(), b in expr(), c in claims()) {
        let not_or = Expr::Not(Box::new(Expr::Or(Box::new(a.clone()), Box::new(b.clone()))));
        let and_not = Expr::And(Box::new(Expr::Not(Box::new(a.clone()))), Box::new(Expr::Not(Box::new(b))));
        prop_assert_eq!(interpret(&not_or, &c), interpret(&and_not, &c));
        prop_assert_eq!(interpret(&Expr::Not(Box::new(a.clone())), &c), !interpret(&a, &c));
    }

    #[test]
    fn a_missing_claim_satisfies_no_comparison(name in claim_name(), op in op(), lit in literal()) {
        let e = Expr::Cmp(Operand::Claim(name), op, lit);
        prop_assert!(!interpret(&e, &Claims::new()));
    }
}
