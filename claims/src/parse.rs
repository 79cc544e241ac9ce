//! The grammar of required-claims expressions (Microbus's boolexp), parsed
//! into [`Expr`] with every error at a byte offset and a message that says
//! how to write it instead.
//!
//! ```text
//! expr    := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | "!" atom | primary        ("!" atom: not followed by a comparison)
//! primary := "(" expr ")" | atom (cmp atom)? | claim ("=~" | "!~") string
//! atom    := claim | string | number | "true" | "false"
//! cmp     := "==" | "!=" | "<" | "<=" | ">" | ">="
//! claim   := [A-Za-z_][A-Za-z0-9_-]* ("." [A-Za-z0-9_-]+)*
//! string  := '…' | "…" (backslash escapes the next character) | `…` (raw)
//! number  := -?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)?    (finite)
//! ```
//!
//! Where Microbus's parser authorizes by accident, this one refuses or reads
//! literally: only `true` and `false` are boolean literals (`t`, `T`, `inf`,
//! `nan` are claim names); quoted strings may hold `&&`, `||` and any other
//! operator; `!name == 'x'` is an error (write `!(name == 'x')` or
//! `name != 'x'`); a string or number alone is no condition; a comparison
//! needs a claim on one side; `<`/`>` never take a boolean; a regular
//! expression must compile (it is matched against the whole claim).

use crate::expr::{CmpOp, Expr, Operand};

/// The longest expression accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// The deepest nesting of parentheses and `!` accepted.
pub const MAX_DEPTH: usize = 64;
/// The compiled size limit of one regular expression, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A malformed expression: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {message}")]
pub struct ParseError {
    /// Byte offset in the expression text.
    pub offset: usize,
    /// What is wrong, and how to write it.
    pub message: String,
}

/// Parses a required-claims expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.len() > MAX_LEN {
        return Err(err(
            MAX_LEN,
            format!(
                "expression of {} bytes; at most {MAX_LEN} are accepted",
                text.len()
            ),
        ));
    }
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: text.len(),
    };
    if p.tokens.is_empty() {
        return Err(err(
            0,
            "empty expression: write a condition such as `roles.admin`",
        ));
    }
    let e = p.or()?;
    if let Some((tok, at)) = p.tokens.get(p.pos) {
        return Err(err(
            *at,
            format!("unexpected {} after a complete condition", tok.describe()),
        ));
    }
    Ok(e)
}

/// Compiles a pattern of `=~`/`!~` as it is matched: against the whole
/// claim. The pattern must compile on its own first (so errors name the
/// pattern as written, and a pattern such as `x)|(.*` or one ending in a
/// backslash cannot break out of the anchoring group).
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    let build = |p: &str| {
        regex::RegexBuilder::new(p)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    };
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

fn err(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Or,
    And,
    Not,
    Cmp(CmpOp),
    Match { negated: bool },
    Str(String),
    Num(f64),
    Ident(String),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
            Tok::Or => "`||`".into(),
            Tok::And => "`&&`".into(),
            Tok::Not => "`!`".into(),
            Tok::Cmp(op) => format!("`{}`", op.as_str()),
            Tok::Match { negated } => if *negated { "`!~`" } else { "`=~`" }.into(),
            Tok::Str(_) => "a string".into(),
            Tok::Num(_) => "a number".into(),
            Tok::Ident(name) => format!("`{name}`"),
        }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at = i;
        let two = |c: u8| b.get(i + 1) == Some(&c);
        let tok = match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => {
                i += 1;
                Tok::Open
            }
            b')' => {
                i += 1;
                Tok::Close
            }
            b'|' if two(b'|') => {
                i += 2;
                Tok::Or
            }
            b'&' if two(b'&') => {
                i += 2;
                Tok::And
            }
            b'=' if two(b'=') => {
                i += 2;
                Tok::Cmp(CmpOp::Eq)
            }
            b'=' if two(b'~') => {
                i += 2;
                Tok::Match { negated: false }
            }
            b'!' if two(b'=') => {
                i += 2;
                Tok::Cmp(CmpOp::Ne)
            }
            b'!' if two(b'~') => {
                i += 2;
                Tok::Match { negated: true }
            }
            b'!' => {
                i += 1;
                Tok::Not
            }
            b'<' if two(b'=') => {
                i += 2;
                Tok::Cmp(CmpOp::Le)
            }
            b'<' => {
                i += 1;
                Tok::Cmp(CmpOp::Lt)
            }
            b'>' if two(b'=') => {
                i += 2;
                Tok::Cmp(CmpOp::Ge)
            }
            b'>' => {
                i += 1;
                Tok::Cmp(CmpOp::Gt)
            }
            q @ (b'\'' | b'"' | b'`') => {
                let (s, next) = lex_string(text, i, q)?;
                i = next;
                Tok::Str(s)
            }
            c if c.is_ascii_digit()
                || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                let (n, next) = lex_number(text, i)?;
                i = next;
                Tok::Num(n)
            }
            c if is_ident_start(c) => {
                let (name, next) = lex_claim(text, i)?;
                i = next;
                Tok::Ident(name)
            }
            b'=' => return Err(err(at, "`=` alone: compare with `==`")),
            b'|' => return Err(err(at, "`|` alone: write `||`")),
            b'&' => return Err(err(at, "`&` alone: write `&&`")),
            _ => {
                let c = text[at..].chars().next().unwrap_or('?');
                return Err(err(
                    at,
                    format!(
                        "unexpected character {c:?}: claim names are ASCII letters, digits, `_`, `-` and `.`; quote text"
                    ),
                ));
            }
        };
        out.push((tok, at));
    }
    Ok(out)
}

fn lex_string(text: &str, start: usize, quote: u8) -> Result<(String, usize), ParseError> {
    let mut s = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        let at = start + 1 + off;
        if c as u32 == u32::from(quote) {
            return Ok((s, at + 1));
        }
        if c == '\\' && quote != b'`' {
            match chars.next() {
                Some((_, escaped)) => s.push(escaped),
                None => break,
            }
            continue;
        }
        s.push(c);
    }
    Err(err(
        start,
        format!("string not closed: add the closing {}", quote as char),
    ))
}

fn lex_number(text: &str, start: usize) -> Result<(f64, usize), ParseError> {
    let b = text.as_bytes();
    let mut i = start;
    if b[i] == b'-' {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > from
    };
    digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return Err(err(start, "a number needs digits after `.`"));
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return Err(err(start, "a number needs digits after its exponent"));
        }
    }
    if i < b.len() && (is_ident_char(b[i]) || b[i] == b'.') {
        return Err(err(
            start,
            "a claim name cannot start with a digit or `-`; quote text",
        ));
    }
    let n: f64 = text[start..i]
        .parse()
        .map_err(|_| err(start, "not a number"))?;
    if !n.is_finite() {
        return Err(err(start, "number out of range"));
    }
    Ok((n, i))
}

fn lex_claim(text: &str, start: usize) -> Result<(String, usize), ParseError> {
    let b = text.as_bytes();
    let mut i = start;
    loop {
        let seg = i;
        while i < b.len() && is_ident_char(b[i]) {
            i += 1;
        }
        if i == seg {
            return Err(err(i, "empty segment in a claim path"));
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            continue;
        }
        return Ok((text[start..i].to_string(), i));
    }
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(_, at)| *at)
    }

    fn bump(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.at(), format!("nested more than {MAX_DEPTH} deep")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let r = self.and()?;
            e = Expr::Or(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let r = self.unary()?;
            e = Expr::And(Box::new(e), Box::new(r));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() != Some(&Tok::Not) {
            return self.primary();
        }
        self.pos += 1;
        self.deeper()?;
        let inner = match self.peek() {
            Some(Tok::Not) | Some(Tok::Open) => self.unary()?,
            _ => {
                let at = self.at();
                let atom = self.atom()?;
                if let Some(tok @ (Tok::Cmp(_) | Tok::Match { .. })) = self.peek() {
                    return Err(err(
                        at,
                        format!(
                            "`!` applies to `{atom}` alone, not to the {} after it: write `!({atom} {} …)` or use the opposite operator",
                            tok.describe(),
                            tok.describe().trim_matches('`')
                        ),
                    ));
                }
                condition(atom, at)?
            }
        };
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Open) {
            let open = self.at();
            self.pos += 1;
            self.deeper()?;
            let e = self.or()?;
            if self.bump() != Some(Tok::Close) {
                return Err(err(open, "`(` not closed: add `)`"));
            }
            self.depth -= 1;
            return Ok(e);
        }
        let at = self.at();
        let left = self.atom()?;
        match self.peek() {
            Some(Tok::Cmp(op)) => {
                let op = *op;
                let op_at = self.at();
                self.pos += 1;
                let right = self.atom()?;
                comparison(left, op, right, op_at)
            }
            Some(Tok::Match { negated }) => {
                let negated = *negated;
                let op_at = self.at();
                self.pos += 1;
                let Operand::Claim(claim) = left else {
                    return Err(err(at, "the left side of `=~`/`!~` must be a claim"));
                };
                let pat_at = self.at();
                let Some(Tok::Str(pattern)) = self.bump() else {
                    return Err(err(
                        op_at,
                        "the right side of `=~`/`!~` must be a quoted regular expression",
                    ));
                };
                if let Err(e) = compile_pattern(&pattern) {
                    let reason = match e {
                        regex::Error::Syntax(text) => text
                            .lines()
                            .rev()
                            .find(|l| l.trim_start().starts_with("error:"))
                            .map(|l| l.trim().trim_start_matches("error:").trim().to_string())
                            .unwrap_or(text),
                        other => other.to_string(),
                    };
                    return Err(err(
                        pat_at,
                        format!("invalid regular expression {pattern:?}: {reason}"),
                    ));
                }
                Ok(Expr::Match {
                    claim,
                    pattern,
                    negated,
                })
            }
            _ => condition(left, at),
        }
    }

    fn atom(&mut self) -> Result<Operand, ParseError> {
        let at = self.at();
        match self.bump() {
            Some(Tok::Ident(name)) if name == "true" => Ok(Operand::Bool(true)),
            Some(Tok::Ident(name)) if name == "false" => Ok(Operand::Bool(false)),
            Some(Tok::Ident(name)) => Ok(Operand::Claim(name)),
            Some(Tok::Str(s)) => Ok(Operand::Str(s)),
            Some(Tok::Num(n)) => Ok(Operand::Num(n)),
            Some(tok) => Err(err(
                at,
                format!(
                    "expected a claim, a literal or `(`, found {}",
                    tok.describe()
                ),
            )),
            None => Err(err(at, "expression ends where a condition is expected")),
        }
    }
}

/// An operand standing alone as a condition: a claim or a boolean literal.
fn condition(atom: Operand, at: usize) -> Result<Expr, ParseError> {
    match atom {
        Operand::Claim(c) => Ok(Expr::Claim(c)),
        Operand::Bool(b) => Ok(Expr::Bool(b)),
        Operand::Str(_) | Operand::Num(_) => Err(err(
            at,
            "a string or number alone is no condition: compare it with a claim",
        )),
    }
}

fn comparison(left: Operand, op: CmpOp, right: Operand, at: usize) -> Result<Expr, ParseError> {
    let is_claim = |o: &Operand| matches!(o, Operand::Claim(_));
    if !is_claim(&left) && !is_claim(&right) {
        return Err(err(
            at,
            "a comparison of two literals is constant: compare a claim",
        ));
    }
    if op.is_ordering()
        && [&left, &right]
            .iter()
            .any(|o| matches!(o, Operand::Bool(_)))
    {
        return Err(err(
            at,
            format!(
                "`{}` does not order booleans: use `==` or `!=`",
                op.as_str()
            ),
        ));
    }
    Ok(Expr::Cmp(left, op, right))
}
