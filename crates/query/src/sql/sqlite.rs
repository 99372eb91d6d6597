//! SQLite renderer. JSON is built by SQLite (`json_group_array(json_object(..))`); values are
//! stored canonically (booleans 0/1, JSON as text), and a few functions Basalt registers on
//! every connection stand in for PostgreSQL operators (`basalt_contains`, `regexp`, ...).

use basalt_schema::ident::quote;
use basalt_schema::{ColumnType, DdlDialect};

use super::{Builder, Dialect, Fragment, MutateSql, ReadSql, Side};
use crate::plan::{ExprType, MutateKind, MutatePlan, OutField, ReadPlan, Source};
use crate::request::PathKey;
use crate::value::Param;

pub struct Sqlite;

impl Sqlite {
    /// `json_object('k', v, ...)` for a node's fields.
    fn object(&self, b: &mut Builder, node: &ReadPlan) {
        if node.grouped() {
            return self.grouped_object(b, node);
        }
        b.push("json_object(");
        let visible = node.fields.iter().filter(|f| !matches!(f, OutField::Embed { hidden: true, .. }));
        for (i, f) in visible.enumerate() {
            if i > 0 {
                b.push(", ");
            }
            match f {
                OutField::Column { key, expr } => {
                    b.push_literal(key).push(", ");
                    self.push_value(b, expr);
                }
                OutField::Embed { key, join, to_one, plan, .. } => {
                    b.push_literal(key).push(", ");
                    self.embedded(b, plan, join, *to_one);
                }
                OutField::Spread { join, plan } => {
                    for (j, f) in plan.fields.iter().enumerate() {
                        let OutField::Column { key, expr } = f else { continue };
                        if j > 0 {
                            b.push(", ");
                        }
                        b.push_literal(key).push(", ");
                        let json_valued = matches!(expr.expr_type(), ExprType::Column(ColumnType::Boolean) | ExprType::Json)
                            || matches!(expr.expr_type(), ExprType::Column(t) if t.is_json_like());
                        b.push(if json_valued { "json((SELECT " } else { "(SELECT " });
                        self.push_value(b, expr);
                        self.one_row_from(b, plan, join);
                        b.push(if json_valued { "))" } else { ")" });
                    }
                }
                OutField::Aggregate { .. } => {}
                OutField::Count { key, join, table, alias, conds } => {
                    b.push_literal(key);
                    b.push(&format!(", json_array(json_object('count', (SELECT count(*) FROM {} AS {alias} WHERE ", quote(table)));
                    b.join_on(self, join, alias);
                    if !conds.is_empty() {
                        b.push(" AND ");
                        b.conds(self, conds);
                    }
                    b.push(")))");
                }
            }
        }
        b.push(")");
    }

    /// `json_object` over a grouped node's rows, whose columns are named by key.
    fn grouped_object(&self, b: &mut Builder, node: &ReadPlan) {
        b.push("json_object(");
        let outputs = node.fields.iter().filter_map(|f| match f {
            OutField::Column { key, expr } => Some((key, expr.expr_type())),
            OutField::Aggregate { key, out_type, .. } => Some((key, ExprType::Column(*out_type))),
            OutField::Embed { key, to_one: true, hidden: false, .. } => Some((key, ExprType::Json)),
            _ => None,
        });
        for (i, (key, ty)) in outputs.enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push_literal(key).push(", ");
            let (column_type, path) = match ty {
                ExprType::Column(t) => (t, Vec::new()),
                // A `->` value is JSON text in the row: shaped as a JSON column.
                ExprType::Json => (ColumnType::Jsonb, Vec::new()),
                ExprType::JsonText => (ColumnType::Text, Vec::new()),
            };
            let cast = (column_type.is_json_like()).then_some(column_type);
            let expr = crate::plan::ColExpr { alias: node.alias.clone(), column: key.clone(), column_type, path, cast };
            self.push_value(b, &expr);
        }
        b.push(")");
    }

    /// Appends a column's value as json_object wants it (booleans and JSON as JSON).
    fn push_value(&self, b: &mut Builder, expr: &crate::plan::ColExpr) {
        match expr.expr_type() {
            ExprType::Column(ColumnType::Boolean) => {
                let e = b.expr(self, expr);
                b.push(&format!("json(CASE WHEN {e} THEN 'true' WHEN NOT {e} THEN 'false' END)"));
            }
            // A stored column (no path): `basalt_json` marks the text as JSON without reprinting it.
            ExprType::Column(t) if t.is_json_like() && expr.path.is_empty() && expr.cast.is_none() => {
                b.push("basalt_json(").push_expr(self, expr).push(")");
            }
            ty if ty == ExprType::Json || matches!(ty, ExprType::Column(t) if t.is_json_like()) => {
                b.push("json(").push_expr(self, expr).push(")");
            }
            _ => {
                b.push_expr(self, expr);
            }
        }
    }

    /// ` FROM t AS a WHERE <join> AND <conds> LIMIT 1` for a to-one node.
    fn one_row_from(&self, b: &mut Builder, node: &ReadPlan, join: &crate::plan::Join) {
        let a = &node.alias;
        b.push(&format!(" FROM {} AS {a} WHERE ", quote(&node.table)));
        b.join_on(self, join, a);
        if !node.conds.is_empty() {
            b.push(" AND ");
            b.conds(self, &node.conds);
        }
        b.push(" LIMIT 1");
    }

    /// The rows of one node: filtered, ordered and windowed, before JSON is built from them.
    fn inner_select(&self, b: &mut Builder, node: &ReadPlan, join: Option<&crate::plan::Join>) {
        if node.grouped() {
            return b.grouped_rows(self, node, join);
        }
        let a = &node.alias;
        match node.source {
            Source::Table => {
                b.push(&format!("SELECT {a}.* FROM {} AS {a}", quote(&node.table)));
            }
            Source::Mutated => {
                // The rowid list is the first parameter; order follows it.
                // CROSS JOIN keeps the id list as the outer loop: without statistics SQLite would
                // rather walk an index matching a policy (all of a user's rows) and probe the list.
                b.push(&format!(
                    "SELECT {a}.* FROM json_each(?1) AS _ids CROSS JOIN {} AS {a} ON {a}.rowid = _ids.value",
                    quote(&node.table)
                ));
            }
        }
        b.where_clause(self, join.map(|j| (j, a.as_str())), &node.conds);
        if node.source == Source::Mutated {
            b.push(" ORDER BY _ids.key");
        }
        b.order(self, &node.order);
        b.limit_offset(self, node.limit, node.offset);
    }

    fn body(&self, plan: &ReadPlan, reserve_ids: bool) -> Fragment {
        let mut b = Builder::default();
        if reserve_ids {
            b.params.push(Param::Json("[]".into()));
        }
        b.push("SELECT count(*), coalesce(json_group_array(");
        self.object(&mut b, plan);
        b.push("), '[]') FROM (");
        self.inner_select(&mut b, plan, None);
        b.push(&format!(") AS {}", plan.alias));
        b.finish()
    }

    /// Row-level security before the write, as PostgreSQL checks policies before constraints:
    /// the rows about to be written (payload values, defaults, current values) are built in a
    /// subquery and counted when they fail the policy. The subquery builds only the columns the
    /// policy reads: the others' defaults (a new id, timestamps) would be computed for nothing.
    /// A payload column's value in a row of the JSON array (`_j.value`), or its default where the
    /// row lacks the key and `Prefer: missing=default` asks for it.
    fn payload_value(&self, c: &basalt_schema::Column, missing_default: bool) -> String {
        let v = self.extract("_j.value", c);
        if !missing_default {
            return v;
        }
        let default =
            c.default.as_ref().map(|d| basalt_schema::ddl::default_sql(d, c.ty, DdlDialect::Sqlite)).unwrap_or_else(|| "NULL".into());
        let path = basalt_schema::ident::literal(&format!("$.\"{}\"", c.name));
        format!("CASE WHEN json_type(_j.value, {path}) IS NULL THEN {default} ELSE {v} END")
    }

    /// The payload rows (the JSON array in `?1`) joined to the rows of `table` (as `ex`) whose
    /// conflict-target columns they match: the rows an upsert would update.
    fn conflicting(&self, plan: &MutatePlan<'_>, target: &[String], table: &str, ex: &str) -> String {
        let on: Vec<String> = target
            .iter()
            .filter_map(|c| plan.table_columns.iter().find(|t| t.name == *c))
            .map(|c| format!("{ex}.{} = {}", quote(&c.name), self.extract("_j.value", c)))
            .collect();
        format!("jsonb_each(?1) AS _j JOIN {table} AS {ex} ON {}", on.join(" AND "))
    }

    fn pre_check(&self, plan: &MutatePlan<'_>, alias: &str, cond: &crate::plan::Cond) -> Fragment {
        let mut b = Builder::default();
        let read = policy_columns(cond, alias);
        let needed = |c: &&basalt_schema::Column| read.as_ref().is_none_or(|r| r.contains(&c.name.as_str()));
        let bound = bound_row(&plan.kind);
        let mut cols: Vec<String> = match &plan.kind {
            MutateKind::Insert { columns, rows, missing_default, .. } => {
                if bound.is_none() {
                    b.params.push(super::rows_json(rows));
                }
                plan.table_columns
                    .iter()
                    .copied()
                    .filter(needed)
                    .map(|c| {
                        let default = || {
                            c.default
                                .as_ref()
                                .map(|d| basalt_schema::ddl::default_sql(d, c.ty, DdlDialect::Sqlite))
                                .unwrap_or_else(|| "NULL".into())
                        };
                        let given = columns.iter().any(|x| x.name == c.name);
                        let v = if let (true, Some(row)) = (given, bound) {
                            b.params.push(payload_param(c, row.get(&c.name)));
                            format!("?{}", b.params.len())
                        } else if given {
                            self.payload_value(c, *missing_default)
                        } else {
                            default()
                        };
                        format!("{v} AS {}", quote(&c.name))
                    })
                    .collect()
            }
            MutateKind::Update { alias: ua, columns, values, touch_updated_at, .. } => {
                b.params.push(values.clone());
                plan.table_columns
                    .iter()
                    .copied()
                    .filter(needed)
                    .map(|c| {
                        let v = if columns.iter().any(|x| x.name == c.name) {
                            self.extract("?1", c)
                        } else if *touch_updated_at && c.name == "updated_at" {
                            "basalt_now()".into()
                        } else {
                            format!("{ua}.{}", quote(&c.name))
                        };
                        format!("{v} AS {}", quote(&c.name))
                    })
                    .collect()
            }
            MutateKind::Delete { .. } => Vec::new(),
        };
        if cols.is_empty() {
            cols.push("1 AS _one".into());
        }
        b.push(&format!("SELECT count(*) FROM (SELECT {} ", cols.join(", ")));
        match &plan.kind {
            MutateKind::Insert { .. } if bound.is_some() => {}
            MutateKind::Insert { columns, .. } if !columns.is_empty() => {
                b.push("FROM jsonb_each(?1) AS _j");
            }
            MutateKind::Insert { .. } => {
                b.push("FROM (SELECT 1) AS _j");
            }
            MutateKind::Update { alias: ua, conds, range, .. } => {
                let t = quote(&plan.table);
                b.push(&format!("FROM {t} AS {ua}"));
                b.write_where(self, &t, ua, "rowid", conds, range.as_ref());
            }
            MutateKind::Delete { .. } => {}
        }
        b.push(&format!(") AS {alias} WHERE NOT coalesce(("));
        b.cond(self, cond);
        b.push("), false)");
        b.finish()
    }

    /// The value of payload key `col` from the JSON object `src`. Payload rows come from
    /// `jsonb_each`, so each row is parsed once: `json_each` hands objects out as text, which
    /// every `->>` parsed again (with the conversion, 4 % of the writer's time on inserts).
    fn extract(&self, src: &str, col: &basalt_schema::Column) -> String {
        let name = col.name.replace('\'', "''");
        if col.ty.is_json_like() {
            format!("nullif({src} -> '$.\"{name}\"', 'null')")
        } else {
            format!("({src} ->> '$.\"{name}\"')")
        }
    }
}

/// The columns of `alias` a policy condition reads, or None when it is not made of policy
/// expressions alone (then every column is built).
fn policy_columns<'a>(cond: &'a crate::plan::Cond, alias: &str) -> Option<Vec<&'a str>> {
    use crate::plan::{Cond, PExpr, PVal};
    fn val<'a>(v: &'a PVal, alias: &str, out: &mut Vec<&'a str>) {
        if let PVal::Col { alias: a, column, .. } = v {
            if a == alias {
                out.push(column);
            }
        }
    }
    fn walk<'a>(e: &'a PExpr, alias: &str, out: &mut Vec<&'a str>) {
        match e {
            PExpr::Or(v) | PExpr::And(v) => v.iter().for_each(|x| walk(x, alias, out)),
            PExpr::Not(x) => walk(x, alias, out),
            PExpr::Cmp(l, _, r) => {
                val(l, alias, out);
                val(r, alias, out);
            }
            PExpr::IsNull(v, _) | PExpr::Truthy(v) => val(v, alias, out),
            PExpr::In(v, list, _) => {
                val(v, alias, out);
                list.iter().for_each(|x| val(x, alias, out));
            }
            PExpr::Exists { cond, .. } => walk(cond, alias, out),
            PExpr::Const(_) => {}
        }
    }
    // The check of a write returning its rows joins the write's policies and the SELECT ones.
    fn conds<'a>(c: &'a Cond, alias: &str, out: &mut Vec<&'a str>) -> Option<()> {
        match c {
            Cond::Expr(e) => walk(e, alias, out),
            Cond::And(items) | Cond::Or(items) => items.iter().try_for_each(|x| conds(x, alias, out))?,
            Cond::Not(x) => conds(x, alias, out)?,
            Cond::Filter { .. } | Cond::Exists { .. } => return None,
        }
        Some(())
    }
    let mut out = Vec::new();
    conds(cond, alias, &mut out).map(|()| out)
}

impl Dialect for Sqlite {
    fn param(&self, b: &mut Builder, p: Param, ty: Option<ColumnType>) {
        b.params.push(p);
        let n = b.params.len();
        match ty {
            Some(t) if t.is_json_like() => b.push(&format!("json(?{n})")),
            _ => b.push(&format!("?{n}")),
        };
    }

    fn path_key(&self, b: &mut Builder, key: &PathKey) {
        match key {
            PathKey::Index(i) => {
                b.push(&i.to_string());
            }
            PathKey::Name(n) => self.param(b, Param::Text(n.clone()), None),
        }
    }

    fn text_result(&self, expr: String) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    fn json_value_arrow(&self) -> &'static str {
        " ->> "
    }

    fn json_value_param(&self, b: &mut Builder, p: Param) {
        b.push("(");
        self.param(b, p, None);
        b.push(" ->> '$')");
    }

    fn like(&self, b: &mut Builder, lhs: &str, insensitive: bool, pattern: Param) {
        // LIKE is case-insensitive in SQLite; GLOB is the case-sensitive match.
        if insensitive {
            b.push(lhs).push(" LIKE ");
            self.param(b, pattern, None);
            b.push(" ESCAPE '\\'");
        } else {
            let glob = match pattern {
                Param::Text(p) => Param::Text(like_to_glob(&p)),
                other => other,
            };
            b.push(lhs).push(" GLOB ");
            self.param(b, glob, None);
        }
    }

    fn regex(&self, b: &mut Builder, lhs: &str, insensitive: bool, pattern: Param) {
        b.push(lhs).push(" REGEXP ");
        if insensitive {
            b.push("('(?i)' || ");
            self.param(b, pattern, None);
            b.push(")");
        } else {
            self.param(b, pattern, None);
        }
    }

    fn text_search(&self, b: &mut Builder, lhs: &str, _ty: ColumnType, kind: basalt_textsearch::Kind, config: Option<&str>, query: Param) {
        b.push("basalt_fts(").push(lhs).push(&format!(", '{}', ", kind.operator()));
        self.param(b, config.map_or(Param::Null, |c| Param::Text(c.to_string())), None);
        b.push(", ");
        self.param(b, query, None);
        b.push(")");
    }

    fn contains(&self, b: &mut Builder, container: Side, contained: Side, _ty: ColumnType) {
        b.push("basalt_contains(");
        for (i, side) in [container, contained].into_iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            match side {
                Side::Expr(e) => {
                    b.push(e);
                }
                Side::Param(p) => self.param(b, p, None),
            }
        }
        b.push(")");
    }

    fn overlaps(&self, b: &mut Builder, lhs: &str, p: Param, _ty: ColumnType) {
        b.push("basalt_overlaps(").push(lhs).push(", ");
        self.param(b, p, None);
        b.push(")");
    }

    fn in_list(&self, b: &mut Builder, lhs: &str, list: Param, _ty: ColumnType) {
        b.push(lhs).push(" IN (SELECT value FROM json_each(");
        self.param(b, list, None);
        b.push("))");
    }

    fn is_distinct(&self, b: &mut Builder, lhs: &str, p: Param, ty: ColumnType) {
        b.push(lhs).push(" IS NOT ");
        self.param(b, p, Some(ty));
    }

    fn cast(&self, expr: String, ty: ColumnType) -> String {
        // PostgreSQL rounds a fraction to the nearest integer where SQLite's CAST truncates;
        // integers are left alone, as `round` would turn large ones into floats.
        if matches!(ty, ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt) {
            return format!("CAST(CASE WHEN typeof({expr}) = 'real' THEN round({expr}) ELSE {expr} END AS INTEGER)");
        }
        let t = match ty {
            ColumnType::Boolean | ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => "INTEGER",
            ColumnType::Numeric => "NUMERIC",
            ColumnType::Real | ColumnType::Double => "REAL",
            _ => "TEXT",
        };
        format!("CAST({expr} AS {t})")
    }

    fn no_limit(&self) -> &'static str {
        "-1"
    }

    /// SQLite has no row estimates: every count is exact.
    fn read(&self, plan: &ReadPlan, count: Option<crate::request::CountPref>) -> ReadSql {
        let count = count.is_some().then(|| {
            let mut b = Builder::default();
            if plan.grouped() {
                b.grouped_count(self, plan);
                return b.finish();
            }
            b.push(&format!("SELECT count(*) FROM {} AS {}", quote(&plan.table), plan.alias));
            if !plan.conds.is_empty() {
                b.push(" WHERE ");
                b.conds(self, &plan.conds);
            }
            b.finish()
        });
        ReadSql { body: self.body(plan, false), count, planned: None }
    }

    fn embedded(&self, b: &mut Builder, plan: &ReadPlan, join: &crate::plan::Join, to_one: bool) {
        b.push("json((SELECT ");
        if to_one {
            self.object(b, plan);
        } else {
            b.push("coalesce(json_group_array(");
            self.object(b, plan);
            b.push("), '[]')");
        }
        b.push(" FROM (");
        self.inner_select(b, plan, Some(join));
        b.push(&format!(") AS {}))", plan.alias));
    }

    fn mutate(&self, plan: &MutatePlan<'_>) -> MutateSql {
        let t = quote(&plan.table);
        // A plain insert returns its representation from the INSERT itself: one statement fewer
        // on the writer per write. Upserts keep the read (their conflicting rows are read as
        // updated), as do updates and deletes.
        let fold = matches!(&plan.kind, MutateKind::Insert { on_conflict: None, .. })
            && plan.returning.as_ref().is_some_and(|n| returns_in_place(n, plan.check.is_some()));
        let read = if fold { None } else { plan.returning.as_ref().map(|r| self.body(r, true)) };
        let check = plan.check.as_ref().map(|(alias, cond)| self.pre_check(plan, alias, cond));
        let check = match (check, &plan.kind) {
            (Some(mut f), MutateKind::Insert { on_conflict: Some(oc), missing_default, .. })
                if plan.conflict_check.is_some() || plan.conflict_write_check.is_some() =>
            {
                // Rows an upsert would overwrite must pass the UPDATE policy too: as they are
                // (USING), and as the upsert leaves them (WITH CHECK).
                let mut b = Builder { sql: String::new(), params: std::mem::take(&mut f.params) };
                let conflicting = |ex: &str| self.conflicting(plan, &oc.columns, &t, ex);
                b.push(&format!("SELECT ({})", f.sql));
                if let Some((ex, guard)) = &plan.conflict_check {
                    b.push(&format!(" + (SELECT count(*) FROM {} WHERE NOT coalesce((", conflicting(ex)));
                    b.cond(self, guard);
                    b.push("), false))");
                }
                if let Some((alias, cond)) = &plan.conflict_write_check {
                    let read = policy_columns(cond, alias);
                    let mut cols: Vec<String> = plan
                        .table_columns
                        .iter()
                        .filter(|c| read.as_ref().is_none_or(|r| r.contains(&c.name.as_str())))
                        .map(|c| {
                            let v = if oc.update.contains(&c.name) {
                                self.payload_value(c, *missing_default)
                            } else if oc.touch_updated_at && c.name == "updated_at" {
                                "basalt_now()".into()
                            } else {
                                format!("_ex.{}", quote(&c.name))
                            };
                            format!("{v} AS {}", quote(&c.name))
                        })
                        .collect();
                    if cols.is_empty() {
                        cols.push("1 AS _one".into());
                    }
                    b.push(&format!(
                        " + (SELECT count(*) FROM (SELECT {} FROM {}) AS {alias} WHERE NOT coalesce((",
                        cols.join(", "),
                        conflicting("_ex")
                    ));
                    b.cond(self, cond);
                    b.push("), false))");
                }
                Some(b.finish())
            }
            (check, _) => check,
        };
        match &plan.kind {
            MutateKind::Insert { columns, rows, on_conflict, missing_default, .. } => {
                let mut b = Builder::default();
                let bound = bound_row(&plan.kind);
                if !columns.is_empty() && bound.is_none() {
                    b.params.push(super::rows_json(rows));
                }
                let names = || columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ");
                if columns.is_empty() {
                    b.push(&format!("INSERT INTO {t} DEFAULT VALUES"));
                } else if let Some(row) = bound {
                    b.params.extend(columns.iter().map(|c| payload_param(c, row.get(&c.name))));
                    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                    b.push(&format!("INSERT INTO {t} ({}) VALUES ({})", names(), marks.join(", ")));
                } else {
                    let values: Vec<String> = columns.iter().map(|c| self.payload_value(c, *missing_default)).collect();
                    b.push(&format!("INSERT INTO {t} ({}) SELECT {} FROM jsonb_each(?1) AS _j WHERE true", names(), values.join(", ")));
                }
                if let Some(oc) = on_conflict {
                    let target: Vec<String> = oc.columns.iter().map(|c| quote(c)).collect();
                    b.push(&format!(" ON CONFLICT ({}) DO ", target.join(", ")));
                    let mut sets: Vec<String> = oc.update.iter().map(|c| format!("{} = excluded.{}", quote(c), quote(c))).collect();
                    if oc.touch_updated_at {
                        sets.push("\"updated_at\" = basalt_now()".into());
                    }
                    if oc.update.is_empty() {
                        b.push("NOTHING");
                    } else {
                        b.push(&format!("UPDATE SET {}", sets.join(", ")));
                    }
                }
                b.push(" RETURNING rowid");
                if let (true, Some(node)) = (fold, &plan.returning) {
                    b.push(", ");
                    self.object(&mut b, &relabel(node, &t));
                }
                // A merging upsert updates the payload rows whose keys exist: counted before.
                let existing = on_conflict.as_ref().filter(|oc| !oc.update.is_empty()).map(|oc| Fragment {
                    sql: format!("SELECT count(*) FROM {}", self.conflicting(plan, &oc.columns, &t, "_ex")),
                    params: vec![super::rows_json(rows)],
                });
                MutateSql::Steps { existing, collect: b.finish(), collect_body: fold, check, read, finish: None }
            }
            MutateKind::Update { alias, columns, values, conds, touch_updated_at, range, .. } => {
                let mut b = Builder::default();
                b.params.push(values.clone());
                let mut sets: Vec<String> = columns.iter().map(|c| format!("{} = {}", quote(&c.name), self.extract("?1", c))).collect();
                if *touch_updated_at {
                    sets.push("\"updated_at\" = basalt_now()".into());
                }
                if sets.is_empty() {
                    sets.push("rowid = rowid".into());
                }
                b.push(&format!("UPDATE {t} AS {alias} SET {}", sets.join(", ")));
                b.write_where(self, &t, alias, "rowid", conds, range.as_ref());
                b.push(" RETURNING rowid");
                MutateSql::Steps { existing: None, collect: b.finish(), collect_body: false, check, read, finish: None }
            }
            MutateKind::Delete { alias, conds, range } => {
                let mut b = Builder::default();
                let returning_body = read.is_some();
                if returning_body {
                    b.push(&format!("SELECT {alias}.rowid FROM {t} AS {alias}"));
                } else {
                    b.push(&format!("DELETE FROM {t} AS {alias}"));
                }
                b.write_where(self, &t, alias, "rowid", conds, range.as_ref());
                if !returning_body {
                    b.push(" RETURNING rowid");
                }
                let finish = returning_body.then(|| Fragment {
                    sql: format!("DELETE FROM {t} WHERE rowid IN (SELECT value FROM json_each(?1))"),
                    params: vec![Param::Json("[]".into())],
                });
                MutateSql::Steps { existing: None, collect: b.finish(), collect_body: false, check, read, finish }
            }
        }
    }
}

/// The one payload row an insert binds value by value, when it holds every target column (no
/// defaults to fill in); an upsert keeps the JSON array, which its conflict check joins on.
fn bound_row<'p>(kind: &'p MutateKind<'_>) -> Option<&'p serde_json::Map<String, serde_json::Value>> {
    match kind {
        MutateKind::Insert { rows, columns, on_conflict: None, .. } => match rows.as_slice() {
            [row] if !columns.is_empty() && columns.iter().all(|c| row.contains_key(&c.name)) => Some(row),
            _ => None,
        },
        _ => None,
    }
}

/// A canonical payload value bound as the SQL value `->>` (`->` for JSON columns, JSON null as
/// NULL) reads from the payload array, so both ways of inserting store the same thing; an absent
/// key reads as NULL there too.
fn payload_param(col: &basalt_schema::Column, v: Option<&serde_json::Value>) -> Param {
    use serde_json::Value;
    let Some(v) = v else { return Param::Null };
    match v {
        Value::Null => Param::Null,
        _ if col.ty.is_json_like() => Param::Json(crate::value::json_text(v)),
        Value::String(s) => Param::Text(s.clone()),
        Value::Bool(b) => Param::Bool(*b),
        Value::Number(n) => n.as_i64().map(Param::Int).unwrap_or_else(|| Param::Float(n.as_f64().unwrap_or_default())),
        Value::Array(_) | Value::Object(_) => Param::Json(crate::value::json_text(v)),
    }
}

/// Whether an insert's representation can come from its `RETURNING` clause, which reads only the
/// new row (by the table's name, not an alias): plain columns, no embeds, no JSON paths, and no
/// row filter the write's policy check has not already applied (with a representation asked for,
/// the check includes the SELECT policy, as PostgreSQL checks RETURNING rows against it; the
/// check sees the row's defaults as computed for it, so a SELECT policy on a random default is
/// the one case it could judge otherwise than the read did).
fn returns_in_place(node: &ReadPlan, checked: bool) -> bool {
    (node.conds.is_empty() || checked)
        && node.order.is_empty()
        && node.limit.is_none()
        && node.offset.is_none()
        && node.fields.iter().all(|f| matches!(f, OutField::Column { expr, .. } if expr.path.is_empty()))
}

/// The node's fields (all plain columns, see [`returns_in_place`]) named through `table` instead of
/// its alias; its conditions are not needed to render them, so they are not copied.
fn relabel(node: &ReadPlan, table: &str) -> ReadPlan {
    let fields = node
        .fields
        .iter()
        .map(|f| match f {
            OutField::Column { key, expr } => OutField::Column {
                key: key.clone(),
                expr: crate::plan::ColExpr {
                    alias: table.to_string(),
                    column: expr.column.clone(),
                    column_type: expr.column_type,
                    path: Vec::new(),
                    cast: expr.cast,
                },
            },
            other => other.clone(),
        })
        .collect();
    ReadPlan {
        table: node.table.clone(),
        alias: table.to_string(),
        source: node.source,
        call: None,
        fields,
        conds: Vec::new(),
        order: Vec::new(),
        limit: None,
        offset: None,
    }
}

/// Turns a LIKE pattern (`%`, `_`, `\` escapes) into a GLOB pattern.
pub fn like_to_glob(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => match chars.next() {
                Some(n) => push_literal(&mut out, n),
                None => push_literal(&mut out, '\\'),
            },
            other => push_literal(&mut out, other),
        }
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    match c {
        '*' | '?' | '[' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        other => out.push(other),
    }
}
