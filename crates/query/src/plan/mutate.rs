//! Write planning: payload columns checked and values canonicalised, filters resolved,
//! the representation planned as a read over the affected rows.

use basalt_schema::{Catalog, Column, Table};
use serde_json::{Map, Value};

use super::read::{build_node, lookup};
use super::{resolve, Access, MutateKind, MutatePlan, OnConflict, Source};
use crate::error::{Error, Result};
use crate::request::{Action, ApiRequest, CompareOp, Field, Operation, Resolution, ReturnPref, SelectItem};
use crate::value::{from_json, text_as_json, Param};

/// Plans a POST (insert/upsert), PATCH or DELETE.
pub fn plan_mutate<'c>(catalog: &'c Catalog, req: &ApiRequest, access: Access) -> Result<MutatePlan<'c>> {
    let table = lookup(catalog, &req.table)?;
    let mut counter = 0;
    // `return=headers-only` on an insert returns the first row's primary key, for `Location`.
    let location = req.prefer.return_ == Some(ReturnPref::HeadersOnly) && req.action == Action::Insert && !table.primary_key.is_empty();
    let wants_body = req.prefer.return_ == Some(ReturnPref::Representation) || location;
    let returning = if location {
        let key: Vec<SelectItem> = table
            .primary_key
            .iter()
            .map(|k| SelectItem::Field { alias: None, field: Field { column: k.clone(), path: Vec::new() }, cast: None })
            .collect();
        Some(build_node(catalog, table, &key, Source::Mutated, &mut counter, access)?)
    } else if wants_body {
        Some(build_node(catalog, table, &req.select, Source::Mutated, &mut counter, access)?)
    } else {
        None
    };
    let alias = format!("_t{counter}");
    let command = match req.action {
        Action::Insert | Action::Put => "insert",
        Action::Update => "update",
        _ => "delete",
    };
    let conds = |alias: &str| -> Result<Vec<_>> {
        let mut out = with_select(access, catalog, table, alias, command);
        for (path, f) in &req.filters {
            if !path.is_empty() {
                return Err(Error::new(400, "PGRST108", "Filters on embedded resources are not allowed on writes"));
            }
            out.push(resolve::filter(table, alias, f)?);
        }
        for (path, l) in &req.logic {
            if path.is_empty() {
                out.push(resolve::logic(table, alias, l)?);
            }
        }
        Ok(out)
    };
    // Limited update and delete: the rows a read with the same filters, order and range returns.
    let range = || -> Result<Option<super::WriteRange>> {
        let (mut limit, mut offset) = (None, None);
        for (_, r) in req.ranges.iter().filter(|(path, _)| path.is_empty()) {
            limit = r.limit.or(limit);
            offset = r.offset.or(offset);
        }
        if limit.is_none() && offset.is_none() {
            return Ok(None);
        }
        if limit.is_some_and(|l| l < 0) {
            return Err(Error::bad_range("Limit should be greater than or equal to zero."));
        }
        if offset.is_some_and(|o| o < 0) {
            return Err(Error::bad_range("Offset should be greater than or equal to zero."));
        }
        let alias = "_lim".to_string();
        let mut order = Vec::new();
        for (_, terms) in req.order.iter().filter(|(path, _)| path.is_empty()) {
            for t in terms {
                if let Some(rel) = &t.relation {
                    return Err(Error::new(400, "PGRST118", format!("A related order on '{rel}' is not possible"))
                        .details("A write is ordered by its own table's columns"));
                }
                let expr = resolve::column(table, &alias, &t.field)?;
                order.push(super::PlanOrder { expr, desc: t.desc, nulls_first: t.nulls_first.unwrap_or(t.desc), related: None });
            }
        }
        Ok(Some(super::WriteRange { conds: conds(&alias)?, alias, order, limit, offset }))
    };
    let body = req.body.as_ref();
    let kind = match req.action {
        Action::Insert => insert(table, req, body.ok_or_else(|| Error::bad_body("Empty or invalid json"))?)?,
        Action::Update => {
            let obj = body.and_then(Value::as_object).ok_or_else(|| Error::bad_body("Empty or invalid json"))?;
            let (columns, values) = row_values(table, obj)?;
            let touch = table.maintains_updated_at && !obj.contains_key("updated_at");
            MutateKind::Update {
                conds: conds(&alias)?,
                alias,
                columns,
                values: Param::Json(crate::value::json_text(&Value::Object(values))),
                touch_updated_at: touch,
                key_column: table.primary_key.first().cloned().unwrap_or_default(),
                range: range()?,
            }
        }
        Action::Delete => MutateKind::Delete { conds: conds(&alias)?, alias, range: range()? },
        Action::Put => put(table, req, body.ok_or_else(|| Error::bad_body("Empty or invalid json"))?)?,
        Action::Read { .. } => return Err(Error::new(405, "PGRST117", "Unsupported HTTP method")),
    };
    let check = match req.action {
        Action::Insert | Action::Update | Action::Put => access.check(catalog, table, "_chk", command).map(|c| {
            // Returning the rows needs them to be visible, as RETURNING does in PostgreSQL.
            // An all-commands policy is both: it is checked once.
            let visible = if wants_body { access.using(catalog, table, "_chk", "select") } else { None };
            (
                "_chk".to_string(),
                match visible {
                    Some(v) if v != c => super::Cond::And(vec![c, v]),
                    _ => c,
                },
            )
        }),
        _ => None,
    };
    // No insert policy for this role at all: refuse before touching the table, as PostgreSQL
    // checks row-level security before constraints.
    let no_policy = |c: &super::Cond| match c {
        super::Cond::Expr(super::PExpr::Const(false)) => true,
        super::Cond::And(v) => v.iter().any(|x| matches!(x, super::Cond::Expr(super::PExpr::Const(false)))),
        _ => false,
    };
    if matches!(req.action, Action::Insert | Action::Put) && check.as_ref().is_some_and(|(_, c)| no_policy(c)) {
        return Err(Error::new(403, "42501", format!("new row violates row-level security policy for table \"{}\"", table.name)));
    }
    let merges = matches!(&kind, MutateKind::Insert { on_conflict: Some(oc), .. } if !oc.update.is_empty());
    let (conflict_check, conflict_write_check) = if merges {
        let conds = with_select(access, catalog, table, "_ex", "update");
        (
            (!conds.is_empty()).then(|| ("_ex".to_string(), super::Cond::And(conds))),
            access.check(catalog, table, "_mrg", "update").map(|c| {
                // PostgreSQL also holds the row an ON CONFLICT DO UPDATE leaves to the SELECT
                // policies, whether or not it is returned.
                let visible = access.using(catalog, table, "_mrg", "select");
                let c = match visible {
                    Some(v) if v != c => super::Cond::And(vec![c, v]),
                    _ => c,
                };
                ("_mrg".to_string(), c)
            }),
        )
    } else {
        (None, None)
    };
    Ok(MutatePlan {
        table: table.name.clone(),
        kind,
        returning,
        check,
        table_columns: table.columns.values().collect(),
        conflict_check,
        conflict_write_check,
    })
}

/// The rows `command` may touch that the caller may also SELECT, as PostgreSQL requires: both
/// policies' conditions, the SELECT one left out when it is the same (an all-commands policy).
fn with_select(access: Access, catalog: &Catalog, table: &Table, alias: &str, command: &str) -> Vec<super::Cond> {
    let mut out: Vec<_> = access.using(catalog, table, alias, command).into_iter().collect();
    out.extend(access.using(catalog, table, alias, "select").filter(|s| !out.contains(s)));
    out
}

fn insert<'c>(table: &'c Table, req: &ApiRequest, body: &Value) -> Result<MutateKind<'c>> {
    let rows: Vec<&Map<String, Value>> = match body {
        Value::Object(o) => vec![o],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => return Err(Error::bad_body("Empty or invalid json")),
    };
    // Target columns: `columns=` if given, else every key in the payload (first-seen order).
    let names: Vec<String> = match &req.columns {
        Some(cols) => {
            if let Some((_, c)) = cols.iter().enumerate().find(|(i, c)| cols[..*i].contains(c)) {
                return Err(Error::new(400, "42701", format!("column \"{c}\" specified more than once")));
            }
            cols.clone()
        }
        None => {
            let mut seen: Vec<String> = Vec::new();
            for r in &rows {
                for k in r.keys() {
                    if !seen.contains(k) {
                        seen.push(k.clone());
                    }
                }
            }
            seen
        }
    };
    let mut columns = names
        .iter()
        .map(|n| table.column(n).ok_or_else(|| Error::unknown_payload_column(&table.name, n)))
        .collect::<Result<Vec<&Column>>>()?;
    if rows.is_empty() && columns.is_empty() {
        // `[]` inserts nothing: name a column so the statement selects from the empty payload.
        columns.extend(table.columns.values().next());
    }
    let rows = rows.iter().map(|r| payload_values(r, &columns)).collect::<Result<Vec<_>>>()?;
    let on_conflict = match req.prefer.resolution {
        None => None,
        Some(res) => {
            let target = req.on_conflict.clone().unwrap_or_else(|| table.primary_key.clone());
            for c in &target {
                if table.column(c).is_none() {
                    return Err(Error::unknown_column(&table.name, c, table.suggest_column(c)));
                }
            }
            if !table.is_unique_set(&target) {
                return Err(Error::new(400, "42P10", "there is no unique or exclusion constraint matching the ON CONFLICT specification"));
            }
            let update = match res {
                Resolution::IgnoreDuplicates => Vec::new(),
                Resolution::MergeDuplicates => columns.iter().map(|c| c.name.clone()).collect(),
            };
            let touch = res == Resolution::MergeDuplicates && table.maintains_updated_at && !names.iter().any(|n| n == "updated_at");
            if !update.is_empty() {
                no_repeated_keys(&rows, &target)?;
            }
            Some(OnConflict { columns: target, update, touch_updated_at: touch })
        }
    };
    Ok(MutateKind::Insert { columns, rows, on_conflict, missing_default: req.prefer.missing_default })
}

/// A `PUT` is an upsert of one row on the primary key, which the URL names: filters on every
/// key column with `eq` and nothing else, and the same key in the payload, as PostgREST.
fn put<'c>(table: &'c Table, req: &ApiRequest, body: &Value) -> Result<MutateKind<'c>> {
    if req.ranges.iter().any(|(path, r)| path.is_empty() && (r.limit.is_some() || r.offset.is_some())) {
        return Err(Error::new(400, "PGRST114", "limit/offset querystring parameters are not allowed for PUT"));
    }
    let not_key = || Error::new(405, "PGRST105", "Filters must include all and only primary key columns with 'eq' operators");
    let key = &table.primary_key;
    if key.is_empty() || req.filters.len() != key.len() || req.logic.iter().any(|(path, _)| path.is_empty()) {
        return Err(not_key());
    }
    let obj = body.as_object().ok_or_else(|| Error::bad_body("Empty or invalid json"))?;
    let mut named: Vec<&str> = Vec::new();
    for (path, f) in &req.filters {
        let value = match &f.op {
            Operation::Compare { op: CompareOp::Eq, quant: None, value } if !f.negate && path.is_empty() && f.field.path.is_empty() => {
                value
            }
            _ => return Err(not_key()),
        };
        let column = f.field.column.as_str();
        if !key.iter().any(|k| k == column) || named.contains(&column) {
            return Err(not_key());
        }
        named.push(column);
        let col = table.column(column).ok_or_else(not_key)?;
        let in_url = text_as_json(col.ty, value)?;
        let in_payload = obj.get(column).map(|v| from_json(col.ty, v)).transpose()?;
        let same = match (&in_payload, &in_url) {
            (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Some(a), b) => a == b && !b.is_null(),
            (None, _) => false,
        };
        if !same {
            return Err(Error::new(400, "PGRST115", "Payload values do not match URL in primary key column(s)"));
        }
    }
    let columns = obj
        .keys()
        .map(|n| table.column(n).ok_or_else(|| Error::unknown_payload_column(&table.name, n)))
        .collect::<Result<Vec<&Column>>>()?;
    let row = payload_values(obj, &columns)?;
    let touch = table.maintains_updated_at && !obj.contains_key("updated_at");
    let update = columns.iter().map(|c| c.name.clone()).collect();
    Ok(MutateKind::Insert {
        columns,
        rows: vec![row],
        on_conflict: Some(OnConflict { columns: key.clone(), update, touch_updated_at: touch }),
        missing_default: false,
    })
}

/// An upsert that would update one row twice fails, as PostgreSQL's `ON CONFLICT DO UPDATE`
/// does (SQLite would apply both). Rows without every key column get theirs from defaults.
fn no_repeated_keys(rows: &[Map<String, Value>], target: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for row in rows {
        let key: Option<Vec<String>> = target.iter().map(|c| row.get(c).filter(|v| !v.is_null()).map(crate::value::json_text)).collect();
        if let Some(k) = key {
            if !seen.insert(k) {
                return Err(Error::new(400, "21000", "ON CONFLICT DO UPDATE command cannot affect row a second time")
                    .hint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values."));
            }
        }
    }
    Ok(())
}

/// Canonicalises the keys of one payload object that are target `columns` (as `columns=`,
/// other keys are ignored).
fn payload_values(obj: &Map<String, Value>, columns: &[&Column]) -> Result<Map<String, Value>> {
    let mut values = Map::new();
    for (k, v) in obj {
        if let Some(col) = columns.iter().find(|c| c.name == *k) {
            values.insert(k.clone(), from_json(col.ty, v)?);
        }
    }
    Ok(values)
}

/// Canonicalises an update's payload object: every key must be a column.
fn row_values<'c>(table: &'c Table, obj: &Map<String, Value>) -> Result<(Vec<&'c Column>, Map<String, Value>)> {
    let mut cols = Vec::new();
    let mut values = Map::new();
    for (k, v) in obj {
        let col = table.column(k).ok_or_else(|| Error::unknown_payload_column(&table.name, k))?;
        values.insert(k.clone(), from_json(col.ty, v)?);
        cols.push(col);
    }
    Ok((cols, values))
}
