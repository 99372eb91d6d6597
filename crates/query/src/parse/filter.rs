//! Horizontal filters (`col=op.value`), logic trees (`or=(...)`) and `order=`.

use super::cursor::{paren_depth, unquoted, Cursor};
use super::select::json_path;
use crate::error::{Error, Result};
use crate::request::{CompareOp, Field, Filter, IsValue, Logic, Operation, OrderTerm, Quantifier};

/// Parses a field reference with an optional JSON path: `meta->a->>b`.
pub fn parse_field(input: &str) -> Result<Field> {
    let mut c = Cursor::new(input);
    let field = field(&mut c).map_err(|d| Error::parse("filter", input, d))?;
    if !c.at_end() {
        return Err(Error::parse("filter", input, format!("unexpected \"{}\"", c.rest())));
    }
    Ok(field)
}

fn field(c: &mut Cursor) -> Result<Field, String> {
    let column = c.name()?;
    let path = json_path(c)?;
    Ok(Field { column, path })
}

/// Parses the right side of a filter, `[not.]op[(any|all)].value`, for `field`.
pub fn parse_filter(field: Field, value: &str) -> Result<Filter> {
    let fail = |d: String| Error::parse("filter", value, d);
    if value.contains('\0') {
        return Err(nul_error());
    }
    let (negate, rest) = match value.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, value),
    };
    // The operator ends at the first `.` outside its modifier: `fts(pg_catalog.english).cat`.
    let modifier_end = if rest.split('.').next().is_some_and(|op| op.contains('(')) { rest.find(')').unwrap_or(0) } else { 0 };
    let (op_part, operand) = rest[modifier_end..]
        .split_once('.')
        .map(|(a, b)| (&rest[..modifier_end + a.len()], b))
        .ok_or_else(|| fail("unexpected end of input expecting operator".into()))?;
    let (op_name, modifier) = match op_part.split_once('(') {
        Some((o, m)) => (o, Some(m.strip_suffix(')').ok_or_else(|| fail(format!("unexpected \"{m}\"")))?)),
        None => (op_part, None),
    };
    if let Some(kind) = basalt_textsearch::Kind::from_operator(op_name) {
        let config = match modifier {
            Some(m) if is_config_name(m) => Some(m.to_string()),
            Some(m) => return Err(fail(format!("\"{m}\" is not a text search configuration name"))),
            None => None,
        };
        return Ok(Filter { field, negate, op: Operation::TextSearch { kind, config, query: operand.to_string() } });
    }
    let quant = match modifier {
        None => None,
        Some("any") => Some(Quantifier::Any),
        Some("all") => Some(Quantifier::All),
        Some(m) => return Err(fail(format!("unknown modifier \"{m}\", expecting any or all"))),
    };
    let cmp = |op| Operation::Compare { op, quant, value: operand.to_string() };
    let op = match op_name {
        "eq" => cmp(CompareOp::Eq),
        "neq" => cmp(CompareOp::Neq),
        "gt" => cmp(CompareOp::Gt),
        "gte" => cmp(CompareOp::Gte),
        "lt" => cmp(CompareOp::Lt),
        "lte" => cmp(CompareOp::Lte),
        "like" | "ilike" => Operation::Like { insensitive: op_name == "ilike", quant, pattern: operand.replace('*', "%") },
        "match" | "imatch" if quant.is_none() => Operation::Match { insensitive: op_name == "imatch", pattern: operand.to_string() },
        "is" => Operation::Is(match operand.to_ascii_lowercase().as_str() {
            "null" => IsValue::Null,
            "not_null" => IsValue::NotNull,
            "true" => IsValue::True,
            "false" => IsValue::False,
            "unknown" => IsValue::Unknown,
            _ => return Err(fail(format!("unexpected \"{operand}\" expecting null or trilean value (unknown, true, false)"))),
        }),
        "isdistinct" => Operation::IsDistinct(operand.to_string()),
        "in" => Operation::In(parse_list(operand, '(', ')').map_err(fail)?),
        "cs" => Operation::Contains(operand.to_string()),
        "cd" => Operation::ContainedBy(operand.to_string()),
        "ov" => Operation::Overlaps(operand.to_string()),
        "sl" | "sr" | "nxr" | "nxl" | "adj" => {
            return Err(
                Error::new(400, "PGRST127", "Feature not implemented").details(format!("the {op_name} operator is not supported yet"))
            )
        }
        other => return Err(fail(format!("unknown operator \"{other}\""))),
    };
    if quant.is_some() && !matches!(op, Operation::Compare { .. } | Operation::Like { .. }) {
        return Err(fail(format!("the {op_name} operator takes no (any)/(all) modifier")));
    }
    Ok(Filter { field, negate, op })
}

/// A text search configuration as a filter may name it: `english`, `pg_catalog.english`. Only
/// such names reach SQL, where PostgreSQL needs them as literals (an expression index on
/// `to_tsvector('english', col)` is used only when the query names the same constant).
pub fn is_config_name(s: &str) -> bool {
    let ident = |p: &str| {
        let mut c = p.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
    };
    s.len() <= 127 && !s.is_empty() && s.split('.').count() <= 2 && s.split('.').all(ident)
}

/// PostgreSQL's error for a NUL in text; SQLite would take it, so both refuse it here.
fn nul_error() -> Error {
    Error::new(400, "22021", "invalid byte sequence for encoding \"UTF8\": 0x00")
}

/// Splits `(a,"b,c",d)` (or `{...}`) into its items; double quotes protect `,` `(` `)`.
pub fn parse_list(s: &str, open: char, close: char) -> Result<Vec<String>, String> {
    let inner = s
        .strip_prefix(open)
        .and_then(|r| r.strip_suffix(close))
        .ok_or_else(|| format!("expecting a list in {open}{close}, got \"{s}\""))?;
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    split_top(inner).into_iter().map(|i| unquote(i.trim())).collect()
}

/// Splits at commas that are outside parentheses and double quotes.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start) = (0i32, 0);
    let mut out = Vec::new();
    for (i, ch) in unquoted(s) {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(s: &str) -> Result<String, String> {
    let Some(inner) = s.strip_prefix('"') else { return Ok(s.to_string()) };
    let inner = inner.strip_suffix('"').ok_or_else(|| format!("unclosed quote in \"{s}\""))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(ch);
        }
    }
    Ok(out)
}

/// How deep `and(...)`/`or(...)` trees may nest, lists in their filters included.
pub const MAX_LOGIC_DEPTH: usize = 32;

/// Parses a logic tree value: `(a.eq.1,or(b.gt.2,not.and(c.is.null,d.lt.3)))`.
pub fn parse_logic(is_or: bool, negate: bool, value: &str) -> Result<Logic> {
    if value.contains('\0') {
        return Err(nul_error());
    }
    if paren_depth(value) > MAX_LOGIC_DEPTH {
        return Err(Error::parse("logic tree", value, format!("logic trees nest more than {MAX_LOGIC_DEPTH} levels deep")));
    }
    let items = logic_items(value).map_err(|d| Error::parse("logic tree", value, d))?;
    Ok(if is_or { Logic::Or { negate, items } } else { Logic::And { negate, items } })
}

fn logic_items(value: &str) -> Result<Vec<Logic>, String> {
    let inner =
        value.strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| format!("expecting \"(\" ... \")\", got \"{value}\""))?;
    if inner.is_empty() {
        return Err("empty logic tree".into());
    }
    split_top(inner).into_iter().map(|item| logic_item(item.trim())).collect()
}

fn logic_item(item: &str) -> Result<Logic, String> {
    let (negate, rest) = match item.strip_prefix("not.") {
        Some(r) => (true, r),
        None => (false, item),
    };
    for (prefix, is_or) in [("or(", true), ("and(", false)] {
        if rest.starts_with(prefix) {
            let items = logic_items(&rest[prefix.len() - 1..])?;
            return Ok(if is_or { Logic::Or { negate, items } } else { Logic::And { negate, items } });
        }
    }
    let mut c = Cursor::new(item);
    let f = field(&mut c)?;
    if !c.eat('.') {
        return Err(format!("unexpected \"{}\" expecting \".\"", c.rest()));
    }
    let mut filter = parse_filter(f, c.rest()).map_err(|e| e.details.unwrap_or(e.message))?;
    filter.op = match filter.op {
        Operation::Compare { op, quant, value } => Operation::Compare { op, quant, value: unquote(&value)? },
        Operation::Like { insensitive, quant, pattern } => Operation::Like { insensitive, quant, pattern: unquote(&pattern)? },
        other => other,
    };
    Ok(Logic::Filter(filter))
}

/// Parses `order=a.desc.nullslast,b`.
pub fn parse_order(value: &str) -> Result<Vec<OrderTerm>> {
    let fail = |d: String| Error::parse("order", value, d);
    let mut terms = Vec::new();
    for raw in split_top(value) {
        let mut c = Cursor::new(raw.trim());
        let mut f = field(&mut c).map_err(fail)?;
        let mut relation = None;
        if f.path.is_empty() && c.eat('(') {
            relation = Some(f.column);
            f = field(&mut c).map_err(fail)?;
            if !c.eat(')') {
                return Err(fail(format!("unexpected \"{}\" expecting \")\"", c.rest())));
            }
        }
        let (mut desc, mut nulls_first) = (false, None);
        while c.eat('.') {
            match c.name().map_err(fail)?.as_str() {
                "asc" => desc = false,
                "desc" => desc = true,
                "nullsfirst" => nulls_first = Some(true),
                "nullslast" => nulls_first = Some(false),
                other => return Err(fail(format!("unexpected \"{other}\" expecting asc, desc, nullsfirst or nullslast"))),
            }
        }
        if !c.at_end() {
            return Err(fail(format!("unexpected \"{}\"", c.rest())));
        }
        terms.push(OrderTerm { relation, field: f, desc, nulls_first });
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(col: &str) -> Field {
        Field { column: col.into(), path: vec![] }
    }

    #[test]
    fn operators() {
        let x = parse_filter(f("a"), "not.in.(1,\"b,c\")").unwrap();
        assert!(x.negate);
        assert_eq!(x.op, Operation::In(vec!["1".into(), "b,c".into()]));
        let x = parse_filter(f("a"), "ilike.*Milk*").unwrap();
        assert_eq!(x.op, Operation::Like { insensitive: true, quant: None, pattern: "%Milk%".into() });
        let x = parse_filter(f("a"), "eq.a.b").unwrap();
        assert_eq!(x.op, Operation::Compare { op: CompareOp::Eq, quant: None, value: "a.b".into() });
        assert_eq!(parse_filter(f("a"), "eqq.1").unwrap_err().code, "PGRST100");
        assert_eq!(parse_filter(f("a"), "1").unwrap_err().code, "PGRST100");
        assert_eq!(parse_filter(f("a"), "is.maybe").unwrap_err().code, "PGRST100");
        assert_eq!(
            parse_filter(f("a"), "not.plfts(pg_catalog.english).fat cats").unwrap().op,
            Operation::TextSearch {
                kind: basalt_textsearch::Kind::Plain,
                config: Some("pg_catalog.english".into()),
                query: "fat cats".into()
            }
        );
        assert!(matches!(parse_filter(f("a"), "fts.cat").unwrap().op, Operation::TextSearch { config: None, .. }));
        assert_eq!(parse_filter(f("a"), "wfts(eng'lish).cat").unwrap_err().code, "PGRST100");
        assert_eq!(parse_filter(f("a"), "adj.cat").unwrap_err().code, "PGRST127");
    }

    #[test]
    fn logic_trees() {
        let l = parse_logic(true, false, "(age.lt.18,not.and(age.gte.11,title.eq.\"a,b\"))").unwrap();
        let Logic::Or { items, .. } = l else { panic!() };
        assert_eq!(items.len(), 2);
        let Logic::And { negate, items } = &items[1] else { panic!() };
        assert!(*negate);
        let Logic::Filter(fl) = &items[1] else { panic!() };
        assert_eq!(fl.op, Operation::Compare { op: CompareOp::Eq, quant: None, value: "a,b".into() });
        assert!(parse_logic(true, false, "age.lt.18").is_err());
    }

    #[test]
    fn order_terms() {
        let o = parse_order("a.desc.nullslast,meta->>x").unwrap();
        assert!(o[0].desc && o[0].nulls_first == Some(false));
        assert_eq!(o[1].field.path.len(), 1);
        assert!(parse_order("a.sideways").is_err());
    }
}
