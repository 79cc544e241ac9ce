//! The meaning of an expression: the leaf tests on [`Claims`] that the
//! macro-compiled endpoint checks call, and [`interpret`], the reference
//! interpreter over the same leaves (used where no compiled form exists and
//! as the oracle the compiled form is tested against).
//!
//! Every comparison is false unless both sides are present values of one
//! type: a missing claim, `null`, an object or array, or a claim of another
//! type never satisfies any operator, `!=` included (Microbus's `!=` is true
//! across types, so a missing claim satisfies `missing != 'x'`). Numbers
//! compare as numbers, strings bytewise, booleans only with `==`/`!=`. So
//! `a != b` is not `!(a == b)`: the latter is true when `a` is missing.

use std::cmp::Ordering;

use crate::claims::{Claims, Value};
use crate::expr::{CmpOp, Expr, Operand};

fn holds(op: CmpOp, ord: Option<Ordering>) -> bool {
    let Some(ord) = ord else {
        return false;
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

fn order(a: &Value, b: &Value, op: CmpOp) -> Option<Ordering> {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
        (Value::Str(x), Value::Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) if !op.is_ordering() => Some(x.cmp(y)),
        _ => None,
    }
}

impl Claims {
    /// `claim` alone: the claim is the boolean `true`.
    pub fn is_true(&self, path: &str) -> bool {
        matches!(self.get(path), Some(Value::Bool(true)))
    }

    /// `claim OP 'text'`.
    pub fn cmp_str(&self, path: &str, op: CmpOp, lit: &str) -> bool {
        match self.get(path) {
            Some(Value::Str(s)) => holds(op, Some(s.as_bytes().cmp(lit.as_bytes()))),
            _ => false,
        }
    }

    /// `claim OP number`.
    pub fn cmp_num(&self, path: &str, op: CmpOp, lit: f64) -> bool {
        match self.get(path) {
            Some(Value::Num(n)) => holds(op, n.partial_cmp(&lit)),
            _ => false,
        }
    }

    /// `claim == true` and the like (ordering operators never hold).
    pub fn cmp_bool(&self, path: &str, op: CmpOp, lit: bool) -> bool {
        match self.get(path) {
            Some(Value::Bool(b)) if !op.is_ordering() => holds(op, Some(b.cmp(&lit))),
            _ => false,
        }
    }

    /// `claim OP other_claim`.
    pub fn cmp_claims(&self, left: &str, op: CmpOp, right: &str) -> bool {
        match (self.get(left), self.get(right)) {
            (Some(a), Some(b)) => holds(op, order(a, b, op)),
            _ => false,
        }
    }

    /// `claim =~ 're'` (`negated`: `!~`): the claim is a string, and the
    /// anchored pattern matches it (does not, for `!~`).
    pub fn matches(&self, path: &str, pattern: &regex::Regex, negated: bool) -> bool {
        match self.get(path) {
            Some(Value::Str(s)) => pattern.is_match(s) != negated,
            _ => false,
        }
    }

    fn cmp_operands(&self, left: &Operand, op: CmpOp, right: &Operand) -> bool {
        match (left, right) {
            (Operand::Claim(a), Operand::Claim(b)) => self.cmp_claims(a, op, b),
            (Operand::Claim(a), lit) => self.cmp_lit(a, op, lit),
            (lit, Operand::Claim(b)) => self.cmp_lit(b, op.flip(), lit),
            // The parser never builds a comparison of two literals.
            _ => false,
        }
    }

    fn cmp_lit(&self, path: &str, op: CmpOp, lit: &Operand) -> bool {
        match lit {
            Operand::Str(s) => self.cmp_str(path, op, s),
            Operand::Num(n) => self.cmp_num(path, op, *n),
            Operand::Bool(b) => self.cmp_bool(path, op, *b),
            Operand::Claim(other) => self.cmp_claims(path, op, other),
        }
    }
}

/// Evaluates `expr` on `claims` by walking the tree (regular expressions
/// are compiled on the way; endpoints use the macro-compiled form).
pub fn interpret(expr: &Expr, claims: &Claims) -> bool {
    match expr {
        Expr::Or(a, b) => interpret(a, claims) || interpret(b, claims),
        Expr::And(a, b) => interpret(a, claims) && interpret(b, claims),
        Expr::Not(a) => !interpret(a, claims),
        Expr::Claim(c) => claims.is_true(c),
        Expr::Bool(b) => *b,
        Expr::Cmp(l, op, r) => claims.cmp_operands(l, *op, r),
        Expr::Match {
            claim,
            pattern,
            negated,
        } => match crate::parse::compile_pattern(pattern) {
            Ok(re) => claims.matches(claim, &re, *negated),
            // The parser refuses a pattern that does not compile.
            Err(_) => false,
        },
    }
}
