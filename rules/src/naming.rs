//! The names `#[buswarden::api]` generates next to an API trait: one
//! definition for the macro that generates them and the analyzer that
//! resolves them, so the two cannot drift apart.

/// `CalculatorApi` -> `CALCULATOR_API` (an acronym stays one word:
/// `HTTPIngress` -> `HTTP_INGRESS`).
pub fn screaming_snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// The hostname constant of an API trait: `Calculator` -> `CALCULATOR_HOST`.
pub fn host_const(trait_name: &str) -> String {
    format!("{}_HOST", screaming_snake(trait_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(screaming_snake("Calculator"), "CALCULATOR");
        assert_eq!(screaming_snake("AccessToken"), "ACCESS_TOKEN");
        assert_eq!(screaming_snake("HTTPIngress"), "HTTP_INGRESS");
        assert_eq!(screaming_snake("Api2Go"), "API2_GO");
        assert_eq!(host_const("BearerToken"), "BEARER_TOKEN_HOST");
    }
}
