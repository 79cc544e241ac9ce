//! The syntax tree of a required-claims expression and its canonical
//! printing: the fewest parentheses that keep the tree, strings in single
//! quotes, numbers in Rust's shortest round-trip form. `parse(&e.to_string())`
//! gives `e` back for every tree the parser can produce.

use std::fmt;

/// A required-claims expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `!a`
    Not(Box<Expr>),
    /// A bare claim path: true when the claim is the boolean `true` (an
    /// array member flattens to `key.member = true`).
    Claim(String),
    /// `true` or `false`.
    Bool(bool),
    /// A comparison; at least one side is a claim.
    Cmp(Operand, CmpOp, Operand),
    /// `claim =~ 'regex'` (or `!~` when `negated`): the whole string claim
    /// matches (the pattern is anchored at both ends).
    Match {
        /// The claim path on the left.
        claim: String,
        /// The regular expression, as written between the quotes.
        pattern: String,
        /// `!~`: the claim is a string that does not match.
        negated: bool,
    },
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A claim path (`roles.admin`).
    Claim(String),
    /// A string literal.
    Str(String),
    /// A number literal (finite).
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// The operator with its sides swapped (`5 < level` is `level > 5`).
    pub fn flip(self) -> CmpOp {
        match self {
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::Ne => CmpOp::Ne,
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
        }
    }

    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    /// Whether the operator orders its sides (anything but `==`/`!=`).
    pub fn is_ordering(self) -> bool {
        !matches!(self, CmpOp::Eq | CmpOp::Ne)
    }
}

impl Expr {
    /// Binding strength when printed: `||` 1, `&&` 2, `!` 3, atoms 4.
    fn strength(&self) -> u8 {
        match self {
            Expr::Or(..) => 1,
            Expr::And(..) => 2,
            Expr::Not(_) => 3,
            _ => 4,
        }
    }

    /// The claim paths the expression reads, in order of appearance.
    pub fn claims(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_claims(&mut out);
        out
    }

    fn collect_claims<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Or(a, b) | Expr::And(a, b) => {
                a.collect_claims(out);
                b.collect_claims(out);
            }
            Expr::Not(a) => a.collect_claims(out),
            Expr::Claim(c) | Expr::Match { claim: c, .. } => out.push(c),
            Expr::Bool(_) => {}
            Expr::Cmp(l, _, r) => {
                for side in [l, r] {
                    if let Operand::Claim(c) = side {
                        out.push(c);
                    }
                }
            }
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            f.write_str("\\")?;
        }
        write!(f, "{c}")?;
    }
    f.write_str("'")
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Claim(c) => f.write_str(c),
            Operand::Str(s) => write_quoted(f, s),
            Operand::Num(n) => write!(f, "{n}"),
            Operand::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Left operands bind at the operator's own strength (the operators
        // associate to the left); right operands need a stronger binding.
        let side = |f: &mut fmt::Formatter<'_>, e: &Expr, min: u8| {
            if e.strength() < min {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        };
        match self {
            Expr::Or(a, b) => {
                side(f, a, 1)?;
                f.write_str(" || ")?;
                side(f, b, 2)
            }
            Expr::And(a, b) => {
                side(f, a, 2)?;
                f.write_str(" && ")?;
                side(f, b, 3)
            }
            Expr::Not(a) => {
                f.write_str("!")?;
                // `!` applies to a claim, a literal, another `!` or a
                // parenthesised expression; a comparison is parenthesised.
                match **a {
                    Expr::Claim(_) | Expr::Bool(_) | Expr::Not(_) => write!(f, "{a}"),
                    _ => write!(f, "({a})"),
                }
            }
            Expr::Claim(c) => f.write_str(c),
            Expr::Bool(b) => write!(f, "{b}"),
            Expr::Cmp(l, op, r) => write!(f, "{l} {} {r}", op.as_str()),
            Expr::Match {
                claim,
                pattern,
                negated,
            } => {
                write!(f, "{claim} {} ", if *negated { "!~" } else { "=~" })?;
                write_quoted(f, pattern)
            }
        }
    }
}
