//! The policy language: the small SQL subset Supabase policies are written in.
//! `using`/`with_check` parse into [`Expr`]; PostgreSQL gets them back as SQL text for
//! `CREATE POLICY`, SQLite gets them compiled into each query's plan.

use serde::{Deserialize, Serialize};

/// A boolean policy expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
    IsNull {
        operand: Operand,
        negate: bool,
    },
    In {
        operand: Operand,
        list: Vec<Operand>,
        negate: bool,
    },
    /// `exists (select 1 from table where cond)`
    Exists {
        table: String,
        cond: Box<Expr>,
    },
    /// A boolean operand on its own: `is_public`, `true`.
    Truthy(Operand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl CmpOp {
    pub fn sql(&self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "<>",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Operand {
    /// A column, optionally qualified by table name.
    Column {
        table: Option<String>,
        column: String,
    },
    Text(String),
    Number(String),
    Bool(bool),
    Null,
    AuthUid,
    AuthRole,
    AuthEmail,
    /// `auth.jwt() -> 'a' ->> 'b'`: (as_text, key) steps.
    AuthJwt(Vec<(bool, String)>),
}

/// Parses a policy expression.
pub fn parse(input: &str) -> Result<Expr, String> {
    let tokens = tokenize(input)?;
    let mut p = Parser { t: tokens, i: 0 };
    let e = p.or()?;
    if p.i < p.t.len() {
        return Err(format!("unexpected \"{}\"", p.t[p.i].text()));
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(String),
    Sym(&'static str),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Num(w) => w.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Sym(s) => s.to_string(),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c == '"' {
            let end = chars[i + 1..].iter().position(|&x| x == '"').ok_or("unterminated quoted identifier")?;
            out.push(Tok::Word(chars[i + 1..i + 1 + end].iter().collect::<String>().to_lowercase()));
            i += end + 2;
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect::<String>().to_lowercase()));
        } else {
            let two: String = chars[i..(i + 3).min(chars.len())].iter().collect();
            let sym =
                ["->>", "<>", "!=", "<=", ">=", "->", "::", "=", "<", ">", "(", ")", ",", "*"].into_iter().find(|s| two.starts_with(s));
            match sym {
                Some(s) => {
                    i += s.chars().count();
                    out.push(Tok::Sym(s));
                }
                None => return Err(format!("unexpected character '{c}'")),
            }
        }
    }
    Ok(out)
}

struct Parser {
    t: Vec<Tok>,
    i: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.t.get(self.i), Some(Tok::Word(x)) if x == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.peek_word(w) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        if matches!(self.t.get(self.i), Some(Tok::Sym(x)) if *x == s) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, s: &str) -> Result<(), String> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            Err(format!("expected \"{s}\" at {}", self.t.get(self.i).map(Tok::text).unwrap_or_else(|| "end".into())))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.and()?];
        while self.eat_word("or") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.not()?];
        while self.eat_word("and") {
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, String> {
        if self.eat_word("exists") {
            self.expect_sym("(")?;
            if !self.eat_word("select") {
                return Err("exists needs (select 1 from table where ...)".into());
            }
            if !matches!(self.t.get(self.i), Some(Tok::Num(_))) && !self.eat_sym("*") {
                return Err("exists needs (select 1 from table where ...)".into());
            }
            if matches!(self.t.get(self.i), Some(Tok::Num(_))) {
                self.i += 1;
            }
            if !self.eat_word("from") {
                return Err("exists needs (select 1 from table where ...)".into());
            }
            let table = match self.t.get(self.i) {
                Some(Tok::Word(w)) => w.trim_start_matches("public.").to_string(),
                _ => return Err("exists needs a table name".into()),
            };
            self.i += 1;
            if !self.eat_word("where") {
                return Err("exists needs a where clause".into());
            }
            let cond = self.or()?;
            self.expect_sym(")")?;
            return Ok(Expr::Exists { table, cond: Box::new(cond) });
        }
        if matches!(self.t.get(self.i), Some(Tok::Sym("("))) {
            // A parenthesised expression (operands in parentheses are handled by `operand`).
            let save = self.i;
            self.i += 1;
            if let Ok(e) = self.or() {
                let continues_as_operand =
                    matches!(self.t.get(self.i + 1), Some(Tok::Sym("::" | "=" | "<>" | "!=" | "<" | "<=" | ">" | ">=")))
                        || matches!(self.t.get(self.i + 1), Some(Tok::Word(w)) if w == "is" || w == "in" || w == "not");
                if !continues_as_operand && self.eat_sym(")") {
                    return Ok(e);
                }
            }
            self.i = save;
        }
        let left = self.operand()?;
        if self.eat_word("is") {
            let negate = self.eat_word("not");
            if self.eat_word("null") {
                return Ok(Expr::IsNull { operand: left, negate });
            }
            for (w, b) in [("true", true), ("false", false)] {
                if self.eat_word(w) {
                    let cmp = Expr::Cmp { left, op: CmpOp::Eq, right: Operand::Bool(b) };
                    return Ok(if negate { Expr::Not(Box::new(cmp)) } else { cmp });
                }
            }
            return Err("expected null, true or false after is".into());
        }
        let negate_in = self.peek_word("not") && matches!(self.t.get(self.i + 1), Some(Tok::Word(w)) if w == "in");
        if negate_in {
            self.i += 1;
        }
        if self.eat_word("in") {
            self.expect_sym("(")?;
            let mut list = vec![self.operand()?];
            while self.eat_sym(",") {
                list.push(self.operand()?);
            }
            self.expect_sym(")")?;
            return Ok(Expr::In { operand: left, list, negate: negate_in });
        }
        let op = match self.t.get(self.i) {
            Some(Tok::Sym("=")) => Some(CmpOp::Eq),
            Some(Tok::Sym("<>")) | Some(Tok::Sym("!=")) => Some(CmpOp::Neq),
            Some(Tok::Sym("<")) => Some(CmpOp::Lt),
            Some(Tok::Sym("<=")) => Some(CmpOp::Lte),
            Some(Tok::Sym(">")) => Some(CmpOp::Gt),
            Some(Tok::Sym(">=")) => Some(CmpOp::Gte),
            _ => None,
        };
        match op {
            Some(op) => {
                self.i += 1;
                let right = self.operand()?;
                Ok(Expr::Cmp { left, op, right })
            }
            None => Ok(Expr::Truthy(left)),
        }
    }

    fn operand(&mut self) -> Result<Operand, String> {
        if self.eat_sym("(") {
            // `(select auth.uid())`, the form Supabase recommends for speed, is the same operand:
            // Basalt renders every auth function that way on PostgreSQL.
            if self.eat_word("select") {
                let o = self.operand()?;
                if !matches!(o, Operand::AuthUid | Operand::AuthRole | Operand::AuthEmail | Operand::AuthJwt(_)) {
                    return Err("only auth.uid(), auth.role(), auth.email() and auth.jwt() may be selected in a policy".into());
                }
                self.expect_sym(")")?;
                return self.casts(o);
            }
            let o = self.operand()?;
            self.expect_sym(")")?;
            return self.casts(o);
        }
        let tok = self.t.get(self.i).cloned().ok_or("unexpected end of expression")?;
        self.i += 1;
        let o = match tok {
            Tok::Str(s) => Operand::Text(s),
            Tok::Num(n) => Operand::Number(n),
            Tok::Word(w) => match w.as_str() {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "null" => Operand::Null,
                "auth.uid" | "auth.role" | "auth.email" | "auth.jwt" => {
                    self.expect_sym("(")?;
                    self.expect_sym(")")?;
                    match w.as_str() {
                        "auth.uid" => Operand::AuthUid,
                        "auth.role" => Operand::AuthRole,
                        "auth.email" => Operand::AuthEmail,
                        _ => {
                            let mut steps = Vec::new();
                            loop {
                                let as_text = if self.eat_sym("->>") {
                                    true
                                } else if self.eat_sym("->") {
                                    false
                                } else {
                                    break;
                                };
                                match self.t.get(self.i).cloned() {
                                    Some(Tok::Str(k)) => {
                                        self.i += 1;
                                        steps.push((as_text, k));
                                    }
                                    _ => return Err("auth.jwt() paths take quoted keys".into()),
                                }
                            }
                            Operand::AuthJwt(steps)
                        }
                    }
                }
                "and" | "or" | "not" | "is" | "in" | "exists" => return Err(format!("unexpected \"{w}\"")),
                _ => {
                    let parts: Vec<&str> = w.split('.').collect();
                    match parts.as_slice() {
                        [c] => Operand::Column { table: None, column: c.to_string() },
                        [t, c] => Operand::Column { table: Some(t.to_string()), column: c.to_string() },
                        ["public", t, c] => Operand::Column { table: Some(t.to_string()), column: c.to_string() },
                        _ => return Err(format!("unknown name \"{w}\"")),
                    }
                }
            },
            Tok::Sym(s) => return Err(format!("unexpected \"{s}\"")),
        };
        self.casts(o)
    }

    /// `::uuid`, `::text` casts are accepted and ignored: Basalt compares canonical values.
    fn casts(&mut self, o: Operand) -> Result<Operand, String> {
        while self.eat_sym("::") {
            match self.t.get(self.i) {
                Some(Tok::Word(_)) => self.i += 1,
                _ => return Err("expected a type after ::".into()),
            }
        }
        Ok(o)
    }
}

/// Columns an expression names, as (table qualifier, column), for validation.
pub fn columns(e: &Expr, out: &mut Vec<(Option<String>, String, Option<String>)>, scope: Option<&str>) {
    let mut op = |o: &Operand| {
        if let Operand::Column { table, column } = o {
            out.push((table.clone(), column.clone(), scope.map(str::to_string)));
        }
    };
    match e {
        Expr::Or(v) | Expr::And(v) => v.iter().for_each(|x| columns(x, out, scope)),
        Expr::Not(x) => columns(x, out, scope),
        Expr::Cmp { left, right, .. } => {
            op(left);
            op(right);
        }
        Expr::IsNull { operand, .. } | Expr::Truthy(operand) => op(operand),
        Expr::In { operand, list, .. } => {
            op(operand);
            list.iter().for_each(op);
        }
        Expr::Exists { table, cond } => columns(cond, out, Some(table)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supabase_policies() {
        assert_eq!(parse("(select auth.uid()) = user_id").unwrap(), parse("auth.uid() = user_id").unwrap());
        assert_eq!(parse("(SELECT auth.jwt() ->> 'role')::text = 'x'").unwrap(), parse("auth.jwt() ->> 'role' = 'x'").unwrap());
        assert!(parse("(select owner) = user_id").is_err());
        let e = parse("auth.uid() = user_id").unwrap();
        assert_eq!(
            e,
            Expr::Cmp { left: Operand::AuthUid, op: CmpOp::Eq, right: Operand::Column { table: None, column: "user_id".into() } }
        );
        let e = parse("is_public = true or (auth.uid())::text = owner::text").unwrap();
        assert!(matches!(e, Expr::Or(_)));
        let e = parse("exists (select 1 from projects where projects.id = tasks.project_id and projects.owner = auth.uid())").unwrap();
        assert!(matches!(e, Expr::Exists { ref table, .. } if table == "projects"));
        let e = parse("auth.jwt() ->> 'email' = email and status not in ('a', 'b') and deleted_at is null").unwrap();
        assert!(matches!(e, Expr::And(ref v) if v.len() == 3));
        assert!(parse("user_id = ").is_err());
        assert!(parse("drop table x").is_err());
        assert!(parse("a = 'unterminated").is_err());
    }
}
