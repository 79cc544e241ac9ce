//! NATS subject patterns: validity, matching a subject, and whether one
//! pattern covers another (every subject the narrower one matches, the
//! broader one matches too). Subsumption of rules is built on [`covers`].

/// Whether `s` is a valid NATS subject or pattern: non-empty tokens separated
/// by `.`, no whitespace or control characters, `*` and `>` only as whole
/// tokens, `>` only last.
pub fn is_valid(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut tokens = s.split('.').peekable();
    while let Some(t) = tokens.next() {
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return false;
        }
        if t.len() > 1 && t.contains(['*', '>']) {
            return false;
        }
        if t == ">" && tokens.peek().is_some() {
            return false;
        }
    }
    true
}

/// Whether `pattern` matches the literal subject `subject` (both assumed valid).
/// A wildcard in `subject` is treated as a literal token.
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// [`covers`] over patterns already split into tokens.
pub fn covers_tokens(broad: &[&str], narrow: &[&str]) -> bool {
    for (i, b) in broad.iter().enumerate() {
        match (*b, narrow.get(i)) {
            (">", Some(_)) => return true,
            (_, Some(&">")) | (_, None) => return false,
            ("*", Some(_)) => {}
            (x, Some(y)) if x == *y => {}
            _ => return false,
        }
    }
    broad.len() == narrow.len()
}

/// Whether every subject matched by `narrow` is also matched by `broad`.
pub fn covers(broad: &str, narrow: &str) -> bool {
    let mut b = broad.split('.');
    let mut n = narrow.split('.');
    loop {
        match (b.next(), n.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(_), Some(">")) => return false,
            (Some("*"), Some(_)) => {}
            (Some(x), Some(y)) if x == y && x != "*" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject is matched by both patterns.
pub fn overlaps(a: &str, b: &str) -> bool {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some("*"), Some(_)) | (Some(_), Some("*")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        for ok in [
            "a",
            "a.b",
            "a.*",
            "a.>",
            "*.b",
            "{{plane}}.safe.443.x.y.*.GET.a%2e",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "", ".", "a.", ".a", "a..b", "a.>.b", "a*", "a.b>", "a b", "a.\t", "a\u{0}",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.d"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
    }

    #[test]
    fn covering() {
        assert!(covers("a.>", "a.b"));
        assert!(covers("a.>", "a.*.>"));
        assert!(covers("a.>", "a.>"));
        assert!(!covers("a.*", "a.>"));
        assert!(covers("a.*", "a.*"));
        assert!(covers("a.*", "a.b"));
        assert!(!covers("a.b", "a.*"));
        assert!(!covers("a.*.c", "a.*"));
        assert!(!covers("a.b.>", "a.b"));
        assert!(covers("*.*", "a.b"));
        for (b, n) in [
            ("a.>", "a.b"),
            ("a.>", "a.*.>"),
            ("a.>", "a.>"),
            ("a.*", "a.>"),
            ("a.*", "a.*"),
            ("a.*", "a.b"),
            ("a.b", "a.*"),
            ("a.*.c", "a.*"),
            ("a.b.>", "a.b"),
            ("*.*", "a.b"),
            ("a", "a.b"),
            ("a.b", "a"),
            (">", "a"),
            ("*", ">"),
            ("a.b", "a.b"),
        ] {
            let split = |s: &'static str| s.split('.').collect::<Vec<_>>();
            assert_eq!(
                covers_tokens(&split(b), &split(n)),
                covers(b, n),
                "{b} / {n}"
            );
        }
    }

    #[test]
    fn overlapping() {
        assert!(overlaps("a.*", "*.b"));
        assert!(!overlaps("a.b", "a.c"));
        assert!(overlaps("a.>", "a.b.c"));
        assert!(!overlaps("a.>", "a"));
        assert!(!overlaps("a.*", "a.b.c"));
    }
}
