//! `select=` grammar: fields with aliases, JSON paths and casts; embeds with hints and joins.

use super::cursor::{paren_depth, Cursor};
use crate::error::{Error, Result};
use crate::request::{AggregateFunc, Field, JoinKind, PathKey, PathStep, SelectItem};

/// How deep embeds may nest: SQLite refuses expression trees deeper than 1,000, which about
/// twenty levels of embedding (each a correlated subquery with its join and policies) reach.
pub const MAX_EMBED_DEPTH: usize = 16;

/// Parses a `select` value (already URL-decoded).
pub fn parse_select(input: &str) -> Result<Vec<SelectItem>> {
    if paren_depth(input) > MAX_EMBED_DEPTH {
        return Err(Error::parse("select parameter", input, format!("embeds nest more than {MAX_EMBED_DEPTH} levels deep")));
    }
    let cleaned = strip_spaces(input);
    let mut c = Cursor::new(&cleaned);
    let items = select_list(&mut c).map_err(|d| Error::parse("select parameter", input, d))?;
    if !c.at_end() {
        return Err(Error::parse("select parameter", input, format!("unexpected \"{}\" expecting \",\" or end of input", c.rest())));
    }
    Ok(items)
}

/// Whitespace outside double quotes carries no meaning (postgrest-js strips it too).
fn strip_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut quoted = false;
    for ch in s.chars() {
        if ch == '"' {
            quoted = !quoted;
        }
        if quoted || !ch.is_whitespace() {
            out.push(ch);
        }
    }
    out
}

fn select_list(c: &mut Cursor) -> Result<Vec<SelectItem>, String> {
    let mut items = Vec::new();
    if c.peek() == Some(')') || c.at_end() {
        return Ok(items);
    }
    loop {
        items.push(select_item(c)?);
        if !c.eat(',') {
            return Ok(items);
        }
    }
}

fn select_item(c: &mut Cursor) -> Result<SelectItem, String> {
    if c.eat('*') {
        return Ok(SelectItem::Star);
    }
    if c.rest().starts_with("...") {
        for _ in 0..3 {
            c.bump();
        }
        let relation = c.name()?;
        match embed(c, None, relation)? {
            SelectItem::Embed { relation, hint, select, .. } => return Ok(SelectItem::Spread { relation, hint, select }),
            _ => return Err("a spread needs a column list".into()),
        }
    }
    let first = c.name()?;
    let (alias, name) = if c.peek() == Some(':') && !c.rest().starts_with("::") {
        c.bump();
        (Some(first), c.name()?)
    } else {
        (None, first)
    };
    // `count()` counts rows; a relation named `count` embedded with no columns would read the same.
    if name == "count" && c.rest().starts_with("()") {
        c.bump();
        c.bump();
        let result_cast = cast(c)?;
        return Ok(SelectItem::Aggregate { alias, func: AggregateFunc::Count, field: None, cast: None, result_cast });
    }
    if matches!(c.peek(), Some('!') | Some('(')) {
        return embed(c, alias, name);
    }
    let path = json_path(c)?;
    let col_cast = cast(c)?;
    let field = Field { column: name, path };
    if c.eat('.') {
        let fname = c.name()?;
        let func = AggregateFunc::parse(&fname).ok_or_else(|| format!("unknown aggregate function \"{fname}\""))?;
        if !c.rest().starts_with("()") {
            return Err(format!("unexpected \"{}\" expecting \"()\"", c.rest()));
        }
        c.bump();
        c.bump();
        let result_cast = cast(c)?;
        return Ok(SelectItem::Aggregate { alias, func, field: Some(field), cast: col_cast, result_cast });
    }
    Ok(SelectItem::Field { alias, field, cast: col_cast })
}

/// An optional `::type`.
fn cast(c: &mut Cursor) -> Result<Option<String>, String> {
    if !c.rest().starts_with("::") {
        return Ok(None);
    }
    c.bump();
    c.bump();
    c.name().map(Some)
}

fn embed(c: &mut Cursor, alias: Option<String>, relation: String) -> Result<SelectItem, String> {
    let mut hint = None;
    let mut join = JoinKind::Left;
    while c.eat('!') {
        let h = c.name()?;
        match h.as_str() {
            "inner" => join = JoinKind::Inner,
            "left" => join = JoinKind::Left,
            _ => hint = Some(h),
        }
    }
    if !c.eat('(') {
        return Err(format!("unexpected \"{}\" expecting \"(\"", c.rest()));
    }
    let select = select_list(c)?;
    if !c.eat(')') {
        return Err(format!("unexpected \"{}\" expecting \")\"", c.rest()));
    }
    if let [SelectItem::Field { alias: None, field, cast: None }] = select.as_slice() {
        if field.column == "count" && field.path.is_empty() {
            return Ok(SelectItem::Count { alias, relation });
        }
    }
    Ok(SelectItem::Embed { alias, relation, hint, join, select })
}

/// `->key`, `->>key`, `->0` steps after a column name.
pub fn json_path(c: &mut Cursor) -> Result<Vec<PathStep>, String> {
    let mut path = Vec::new();
    while c.rest().starts_with("->") {
        c.bump();
        c.bump();
        let as_text = c.eat('>');
        let raw = c.name_or_number()?;
        let key = match raw.parse::<i64>() {
            Ok(i) if !raw.starts_with('"') => PathKey::Index(i),
            _ => PathKey::Name(raw),
        };
        path.push(PathStep { as_text, key });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(col: &str) -> Field {
        Field { column: col.into(), path: vec![] }
    }

    #[test]
    fn fields_aliases_casts_paths() {
        let s = parse_select("id, t:title, rank::text, meta->a->>b").unwrap();
        assert_eq!(s[0], SelectItem::Field { alias: None, field: field("id"), cast: None });
        assert_eq!(s[1], SelectItem::Field { alias: Some("t".into()), field: field("title"), cast: None });
        assert_eq!(s[2], SelectItem::Field { alias: None, field: field("rank"), cast: Some("text".into()) });
        let SelectItem::Field { field, .. } = &s[3] else { panic!() };
        assert_eq!(field.output_name(), "b");
        assert!(field.path[1].as_text);
    }

    #[test]
    fn aggregates() {
        let s = parse_select("status, total:amount::int.sum()::text, count(), n:count(), meta->>k.max()").unwrap();
        assert_eq!(s[0], SelectItem::Field { alias: None, field: field("status"), cast: None });
        assert_eq!(
            s[1],
            SelectItem::Aggregate {
                alias: Some("total".into()),
                func: AggregateFunc::Sum,
                field: Some(field("amount")),
                cast: Some("int".into()),
                result_cast: Some("text".into())
            }
        );
        assert_eq!(s[2], SelectItem::Aggregate { alias: None, func: AggregateFunc::Count, field: None, cast: None, result_cast: None });
        assert!(matches!(&s[3], SelectItem::Aggregate { alias: Some(a), field: None, .. } if a == "n"));
        assert!(matches!(&s[4], SelectItem::Aggregate { func: AggregateFunc::Max, field: Some(f), .. } if f.path.len() == 1));
        assert!(s.iter().skip(1).all(SelectItem::has_aggregate));
        assert!(parse_select("amount.median()").is_err());
        assert!(parse_select("amount.sum").is_err());
        assert!(parse_select("rel(amount.sum())").unwrap()[0].has_aggregate());
    }

    #[test]
    fn embeds() {
        let s = parse_select("*,owner:lists!list_id!inner(name),comments(*,x(count))").unwrap();
        assert_eq!(s[0], SelectItem::Star);
        let SelectItem::Embed { alias, relation, hint, join, select } = &s[1] else { panic!() };
        assert_eq!(
            (alias.as_deref(), relation.as_str(), hint.as_deref(), *join),
            (Some("owner"), "lists", Some("list_id"), JoinKind::Inner)
        );
        assert_eq!(select.len(), 1);
        let SelectItem::Embed { select, .. } = &s[2] else { panic!() };
        assert_eq!(select[1], SelectItem::Count { alias: None, relation: "x".into() });
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_select("id,(").unwrap_err().code, "PGRST100");
        assert_eq!(parse_select("a(b").unwrap_err().code, "PGRST100");
        assert_eq!(parse_select("a:").unwrap_err().code, "PGRST100");
    }
}
