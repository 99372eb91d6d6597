//! Name and value resolution shared by the read and write planners.

use basalt_schema::{Column, ColumnType, Table};

use super::{ColExpr, Cond, PlanOp, QuantBase};
use crate::error::{Error, Result};
use crate::parse::parse_list;
use crate::request::{Field, Filter, Logic, Operation, Quantifier};
use crate::value::{from_text, Param};

/// Resolves a column (with JSON path) of `table`, aliased `alias` in SQL.
pub fn column(table: &Table, alias: &str, field: &Field) -> Result<ColExpr> {
    let col = table
        .column(&field.column)
        .ok_or_else(|| Error::unknown_column(&table.name, &field.column, table.suggest_column(&field.column)))?;
    if !field.path.is_empty() && col.ty != ColumnType::Jsonb {
        return Err(Error::new(404, "42883", format!("operator does not exist: {} -> unknown", col.ty.pg_display()))
            .hint("JSON paths apply to jsonb columns."));
    }
    Ok(ColExpr { path: field.path.clone(), ..column_of(alias, col) })
}

/// A column of a table aliased `alias`, as it is stored (no path, no cast).
pub fn column_of(alias: &str, col: &Column) -> ColExpr {
    ColExpr { alias: alias.to_string(), column: col.name.clone(), column_type: col.ty, path: Vec::new(), cast: None }
}

/// Casts allowed in `select=col::type`.
pub fn cast(name: &str) -> Result<ColumnType> {
    ColumnType::parse(name).ok_or_else(|| Error::new(400, "42704", format!("type \"{name}\" does not exist")))
}

pub fn filter(table: &Table, alias: &str, f: &Filter) -> Result<Cond> {
    let mut lhs = column(table, alias, &f.field)?;
    let text_search = matches!(f.op, Operation::TextSearch { .. });
    if lhs.column_type == ColumnType::Other && lhs.path.is_empty() && !text_search {
        lhs.cast = Some(ColumnType::Text);
    }
    let ty = lhs.value_type();
    let op = match &f.op {
        Operation::Compare { op, quant: None, value } => PlanOp::Compare(*op, from_text(ty, value)?),
        Operation::Compare { op, quant: Some(q), value } => quantified(QuantBase::Compare(*op), *q, ty, value)?,
        Operation::Like { insensitive, quant: None, pattern } => {
            text_only(&lhs, if *insensitive { "~~*" } else { "~~" })?;
            like_check(pattern)?;
            PlanOp::Like { insensitive: *insensitive, pattern: Param::Text(pattern.clone()) }
        }
        Operation::Like { insensitive, quant: Some(q), pattern } => {
            text_only(&lhs, if *insensitive { "~~*" } else { "~~" })?;
            for item in parse_list(pattern, '{', '}').unwrap_or_default() {
                like_check(&item)?;
            }
            quantified(QuantBase::Like { insensitive: *insensitive }, *q, ColumnType::Text, &pattern.replace('*', "%"))?
        }
        Operation::Match { insensitive, pattern } => {
            text_only(&lhs, if *insensitive { "~*" } else { "~" })?;
            regex_check(pattern)?;
            PlanOp::Match { insensitive: *insensitive, pattern: Param::Text(pattern.clone()) }
        }
        Operation::Is(v) => PlanOp::Is(*v),
        Operation::IsDistinct(v) => PlanOp::IsDistinct(from_text(ty, v)?),
        Operation::In(items) => {
            let vals = items.iter().map(|i| from_text(ty, i).map(json_of)).collect::<Result<Vec<_>>>()?;
            PlanOp::In(Param::Json(crate::value::json_text(&serde_json::Value::Array(vals))))
        }
        Operation::Contains(v) => PlanOp::Contains(container(&lhs, v)?),
        Operation::ContainedBy(v) => PlanOp::ContainedBy(container(&lhs, v)?),
        Operation::Overlaps(v) => {
            if !lhs.column_type.is_array() || !lhs.path.is_empty() {
                return Err(Error::new(404, "42883", format!("operator does not exist: {} && unknown", lhs.column_type.pg_display())));
            }
            PlanOp::Overlaps(from_text(lhs.column_type, v)?)
        }
        Operation::TextSearch { kind, config, query } => {
            if lhs.value_type() != ColumnType::Other {
                text_only(&lhs, "@@")?;
            }
            basalt_textsearch::check_syntax(*kind, query).map_err(|e| Error::new(400, e.sqlstate(), e.to_string()))?;
            PlanOp::TextSearch { kind: *kind, config: config.clone(), query: Param::Text(query.clone()) }
        }
    };
    Ok(Cond::Filter { lhs, negate: f.negate, op })
}

fn text_only(lhs: &ColExpr, op: &str) -> Result<()> {
    match lhs.value_type() {
        t if t.is_textual() => Ok(()),
        t => Err(Error::new(404, "42883", format!("operator does not exist: {} {op} unknown", t.pg_display()))
            .hint("No operator matches the given name and argument types. You might need to add explicit type casts.")),
    }
}

/// A LIKE pattern may not end in its escape character, `\\` (PostgreSQL: 22025).
fn like_check(p: &str) -> Result<()> {
    let trailing = p.chars().rev().take_while(|c| *c == '\\').count();
    if trailing % 2 == 1 {
        return Err(Error::new(400, "22025", "LIKE pattern must not end with escape character"));
    }
    Ok(())
}

/// Rejects patterns SQLite's and PostgreSQL's regex engines would both refuse, before they run.
fn regex_check(p: &str) -> Result<()> {
    if p.len() > 1000 {
        return Err(Error::new(400, "2201B", "invalid regular expression: pattern too long"));
    }
    Ok(())
}

/// `cs`/`cd` values: an array literal for array columns, JSON for jsonb.
fn container(lhs: &ColExpr, v: &str) -> Result<Param> {
    match lhs.value_type() {
        t if t.is_array() || t == ColumnType::Jsonb => from_text(t, v),
        t => Err(Error::new(404, "42883", format!("operator does not exist: {} @> unknown", t.pg_display()))),
    }
}

fn quantified(base: QuantBase, quant: Quantifier, ty: ColumnType, value: &str) -> Result<PlanOp> {
    let items = parse_list(value, '{', '}').map_err(|d| Error::parse("filter", value, d))?;
    let values = items.iter().map(|i| from_text(ty, i)).collect::<Result<Vec<_>>>()?;
    Ok(PlanOp::Quantified { base, quant, values })
}

fn json_of(p: Param) -> serde_json::Value {
    match p {
        Param::Null => serde_json::Value::Null,
        Param::Bool(b) => b.into(),
        Param::Int(i) => i.into(),
        Param::Float(f) => f.into(),
        Param::Numeric(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
        Param::Text(s) => s.into(),
        Param::Json(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
    }
}

pub fn logic(table: &Table, alias: &str, l: &Logic) -> Result<Cond> {
    logic_with(l, &|f| filter(table, alias, f))
}

/// A logic tree whose leaves `leaf` resolves (the read planner's also test embeds).
pub fn logic_with(l: &Logic, leaf: &dyn Fn(&Filter) -> Result<Cond>) -> Result<Cond> {
    Ok(match l {
        Logic::Filter(f) => leaf(f)?,
        Logic::And { negate, items } | Logic::Or { negate, items } => {
            let conds = items.iter().map(|i| logic_with(i, leaf)).collect::<Result<Vec<_>>>()?;
            let c = if matches!(l, Logic::And { .. }) { Cond::And(conds) } else { Cond::Or(conds) };
            if *negate {
                Cond::Not(Box::new(c))
            } else {
                c
            }
        }
    })
}
