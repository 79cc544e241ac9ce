//! The compiled form of required claims (what `claims = "…"` and
//! `claims_check!` generate) decides exactly as the reference interpreter
//! does: 300 generated expressions, compiled by the macro into
//! `claims_cases/cases.rs`, evaluated on random claims against
//! `buswarden::claims::interpret`. The cases file is regenerated from the
//! same seed and compared, so it cannot silently go stale.

#[rustfmt::skip] // generated: compared byte for byte with the generator
#[path = "claims_cases/cases.rs"]
mod cases;
#[path = "claims_cases/generator.rs"]
mod generator;

use buswarden::claims::{Claims, Value, interpret, parse};
use proptest::prelude::*;

const SEED: u64 = 0x5eed_c1a1_u64;
const COUNT: usize = 300;

#[test]
fn the_cases_file_is_current() {
    let want = generator::cases_file(&generator::expressions(SEED, COUNT));
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/claims_cases/cases.rs");
    if std::env::var_os("BUSWARDEN_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "{} is stale: BUSWARDEN_BLESS=1 to regenerate",
        path.display()
    );
    assert_eq!(cases::CASES.len(), COUNT);
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        (-4i64..4).prop_map(|n| Value::Num(n as f64)),
        Just(Value::Num(2.5)),
        prop_oneof![
            Just(""),
            Just("x"),
            Just("xy"),
            Just("abc"),
            Just("a"),
            Just("b"),
            Just("09")
        ]
        .prop_map(|s| Value::Str(s.to_string())),
        Just(Value::Container),
        Just(Value::Null),
    ]
}

fn claims() -> impl Strategy<Value = Claims> {
    proptest::collection::vec(proptest::option::of(value()), generator::NAMES.len()).prop_map(
        |vals| {
            let mut c = Claims::new();
            for (name, v) in generator::NAMES.iter().zip(vals) {
                if let Some(v) = v {
                    c.insert(*name, v).unwrap();
                }
            }
            c
        },
    )
}

static PARSED: std::sync::LazyLock<Vec<buswarden::claims::Expr>> = std::sync::LazyLock::new(|| {
    cases::CASES
        .iter()
        .map(|(t, _)| parse(t).unwrap())
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn compiled_equals_interpreted(c in claims()) {
        for ((text, compiled), expr) in cases::CASES.iter().zip(PARSED.iter()) {
            prop_assert_eq!(compiled(&c), interpret(expr, &c), "{} on {:?}", text, c);
        }
    }
}

#[test]
fn the_cases_decide_both_ways() {
    // Guard against a degenerate generator: over the claims below, the
    // cases must not all agree on one answer.
    let mut c = Claims::new();
    c.insert("a", Value::Bool(true)).unwrap();
    c.insert("level", Value::Num(3.0)).unwrap();
    c.insert("name", Value::Str("x".into())).unwrap();
    let trues = cases::CASES.iter().filter(|(_, f)| f(&c)).count();
    assert!(trues > 20 && trues < COUNT - 20, "{trues} of {COUNT} true");
}
