//! Render: plans into SQL text and bound parameters, one renderer per dialect.
//! Identifiers come from the catalog (checked at planning) and are quoted by one function;
//! every value is a parameter.

mod postgres;
mod sqlite;

pub use postgres::Postgres;
pub use sqlite::Sqlite;

use basalt_schema::ident::quote;
use basalt_schema::ColumnType;

use crate::plan::{ColExpr, Cond, ExprType, MutatePlan, OutField, PExpr, PVal, PlanOp, PlanOrder, QuantBase, ReadPlan, WriteRange};
use crate::request::{CompareOp, IsValue, PathKey, Quantifier};
use crate::value::Param;

/// SQL text with its parameters, in placeholder order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fragment {
    pub sql: String,
    pub params: Vec<Param>,
}

/// A rendered read: the body query returns one row `(row_count, json_text)` (PostgreSQL adds
/// `response.headers` and `response.status` as set by SQL); the count query (when asked for)
/// returns one row `(total)`; the planned count is an `EXPLAIN (FORMAT JSON)` of the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSql {
    pub body: Fragment,
    pub count: Option<Fragment>,
    pub planned: Option<Fragment>,
}

/// A rendered write.
#[derive(Debug, Clone, PartialEq)]
pub enum MutateSql {
    /// One statement returning `(affected, inserted, json_text_or_null)` (PostgreSQL).
    Single(Fragment),
    /// One statement without RETURNING; the command tag gives the rows affected (PostgreSQL).
    Counted(Fragment),
    /// Statements run in order in one transaction (SQLite, which has no writable CTEs):
    /// `existing` counts the payload rows a merging upsert will update (to tell inserts from
    /// updates);
    /// `collect` returns the rowids of affected rows; `read` and `finish` take that rowid list
    /// as JSON in their first parameter, which the store fills in.
    /// `check` runs first and counts rows about to be written that fail row-level security.
    /// With `collect_body`, `collect` also returns each row's JSON object (its second column)
    /// and there is no `read`: the representation comes from the write itself.
    Steps {
        existing: Option<Fragment>,
        collect: Fragment,
        collect_body: bool,
        check: Option<Fragment>,
        read: Option<Fragment>,
        finish: Option<Fragment>,
    },
}

/// What differs between SQL dialects; the shared walk over conditions lives in [`Builder`].
pub trait Dialect {
    /// Pushes a placeholder for `p`, typed as `ty` where the dialect needs it.
    fn param(&self, b: &mut Builder, p: Param, ty: Option<ColumnType>);
    /// A JSON path step: `->`/`->>` with a key.
    fn path_key(&self, b: &mut Builder, key: &PathKey);
    /// Wraps `->>` results so both dialects compare them as text.
    fn text_result(&self, expr: String) -> String {
        expr
    }
    /// The arrow for the last step of a `->` path compared or ordered as a JSON value
    /// (PostgreSQL compares jsonb; SQLite compares the SQL value `->>` yields).
    fn json_value_arrow(&self) -> &'static str {
        " -> "
    }
    /// A parameter compared with a `->` path value.
    fn json_value_param(&self, b: &mut Builder, p: Param) {
        self.param(b, p, Some(ColumnType::Jsonb));
    }
    fn like(&self, b: &mut Builder, lhs: &str, insensitive: bool, pattern: Param);
    fn regex(&self, b: &mut Builder, lhs: &str, insensitive: bool, pattern: Param);
    fn contains(&self, b: &mut Builder, container: Side, contained: Side, ty: ColumnType);
    fn overlaps(&self, b: &mut Builder, lhs: &str, p: Param, ty: ColumnType);
    fn in_list(&self, b: &mut Builder, lhs: &str, list: Param, ty: ColumnType);
    fn is_distinct(&self, b: &mut Builder, lhs: &str, p: Param, ty: ColumnType);
    /// Full-text search; `config` has passed [`crate::parse::is_config_name`].
    fn text_search(&self, b: &mut Builder, lhs: &str, ty: ColumnType, kind: basalt_textsearch::Kind, config: Option<&str>, query: Param);
    fn cast(&self, expr: String, ty: ColumnType) -> String;
    /// The LIMIT that means no limit.
    fn no_limit(&self) -> &'static str;

    /// `count`: exact (a count query), planned (the planner's estimate, where the backend has
    /// one) or estimated (both: the store picks exact below `max_rows`, planned above).
    fn read(&self, plan: &ReadPlan, count: Option<crate::request::CountPref>) -> ReadSql;
    /// A function call returning `(rows, json)`; None where the backend has no functions.
    fn rpc(&self, _plan: &crate::plan::RpcPlan) -> Option<Fragment> {
        None
    }
    fn mutate(&self, plan: &MutatePlan<'_>) -> MutateSql;
    /// An embedded node as one JSON value (an object for a to-one relation, else an array).
    fn embedded(&self, b: &mut Builder, plan: &ReadPlan, join: &crate::plan::Join, to_one: bool);
}

/// One side of a containment test: the column expression or a parameter.
pub enum Side<'a> {
    Expr(&'a str),
    Param(Param),
}

/// An insert's payload rows as one JSON array parameter.
fn rows_json(rows: &[serde_json::Map<String, serde_json::Value>]) -> Param {
    Param::Json(serde_json::to_string(rows).unwrap_or_else(|_| "[]".into()))
}

/// `alias."column"`.
fn column_ref(alias: &str, column: &str) -> String {
    let mut out = String::with_capacity(alias.len() + column.len() + 3);
    out.push_str(alias);
    out.push('.');
    basalt_schema::ident::push_quoted(&mut out, column);
    out
}

/// Accumulates SQL text and parameters.
#[derive(Debug, Default)]
pub struct Builder {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Builder {
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.sql.push_str(s);
        self
    }

    /// Appends a name as a quoted identifier.
    pub fn push_ident(&mut self, name: &str) -> &mut Self {
        basalt_schema::ident::push_quoted(&mut self.sql, name);
        self
    }

    /// Appends [`Builder::expr`]; a plain column is written in place, without a string of its own.
    pub fn push_expr(&mut self, d: &dyn Dialect, e: &ColExpr) -> &mut Self {
        if e.path.is_empty() && e.cast.is_none() {
            self.sql.push_str(&e.alias);
            self.sql.push('.');
            return self.push_ident(&e.column);
        }
        let sql = self.expr(d, e);
        self.push(&sql)
    }

    /// Appends a name as a string literal (a JSON key).
    pub fn push_literal(&mut self, name: &str) -> &mut Self {
        basalt_schema::ident::push_literal(&mut self.sql, name);
        self
    }

    pub fn finish(self) -> Fragment {
        Fragment { sql: self.sql, params: self.params }
    }

    /// A `->` path as a comparable JSON value (filters and order).
    fn json_value_expr(&mut self, d: &dyn Dialect, e: &ColExpr) -> String {
        let mut sub = Builder { sql: column_ref(&e.alias, &e.column), params: std::mem::take(&mut self.params) };
        for (i, step) in e.path.iter().enumerate() {
            sub.sql = format!("({}", sub.sql);
            sub.push(if i + 1 == e.path.len() { d.json_value_arrow() } else { " -> " });
            d.path_key(&mut sub, &step.key);
            sub.push(")");
        }
        self.params = sub.params;
        sub.sql
    }

    /// A column reference `alias."col"` with its JSON path steps and cast.
    pub fn expr(&mut self, d: &dyn Dialect, e: &ColExpr) -> String {
        let mut sub = Builder { sql: column_ref(&e.alias, &e.column), params: std::mem::take(&mut self.params) };
        for (i, step) in e.path.iter().enumerate() {
            sub.sql = format!("({}", sub.sql);
            sub.push(if step.as_text { " ->> " } else { " -> " });
            d.path_key(&mut sub, &step.key);
            sub.push(")");
            if step.as_text && i + 1 == e.path.len() {
                sub.sql = d.text_result(sub.sql);
            }
        }
        self.params = sub.params;
        match e.cast {
            Some(t) => d.cast(sub.sql, t),
            None => sub.sql,
        }
    }

    pub fn conds(&mut self, d: &dyn Dialect, conds: &[Cond]) {
        for (i, c) in conds.iter().enumerate() {
            if i > 0 {
                self.push(" AND ");
            }
            self.cond(d, c);
        }
    }

    pub fn cond(&mut self, d: &dyn Dialect, c: &Cond) {
        match c {
            Cond::And(items) | Cond::Or(items) => {
                let joiner = if matches!(c, Cond::And(_)) { " AND " } else { " OR " };
                self.push("(");
                if items.is_empty() {
                    self.push(if matches!(c, Cond::And(_)) { "1 = 1" } else { "1 = 0" });
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(joiner);
                    }
                    self.cond(d, item);
                }
                self.push(")");
            }
            Cond::Not(inner) => {
                self.push("NOT ");
                self.cond(d, inner);
            }
            Cond::Exists { negate, table, alias, join, conds } => {
                self.push(if *negate { "NOT EXISTS (SELECT 1 FROM " } else { "EXISTS (SELECT 1 FROM " });
                self.push(&format!("{} AS {alias} WHERE ", quote(table)));
                self.join_on(d, join, alias);
                if !conds.is_empty() {
                    self.push(" AND ");
                    self.conds(d, conds);
                }
                self.push(")");
            }
            Cond::Expr(e) => self.pexpr(d, e),
            Cond::Filter { lhs, negate, op } => {
                if *negate {
                    self.push("NOT (");
                }
                if lhs.expr_type() == ExprType::Json && lhs.cast.is_none() {
                    let l = self.json_value_expr(d, lhs);
                    match op {
                        PlanOp::Compare(c, p) => {
                            self.push(&l).push(compare_sym(*c));
                            d.json_value_param(self, p.clone());
                        }
                        other => self.op(d, &l, lhs.value_type(), other),
                    }
                } else {
                    let l = self.expr(d, lhs);
                    self.op(d, &l, lhs.value_type(), op);
                }
                if *negate {
                    self.push(")");
                }
            }
        }
    }

    fn pexpr(&mut self, d: &dyn Dialect, e: &PExpr) {
        match e {
            PExpr::Or(items) | PExpr::And(items) => {
                let and = matches!(e, PExpr::And(_));
                self.push("(");
                if items.is_empty() {
                    self.push(if and { "1 = 1" } else { "1 = 0" });
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(if and { " AND " } else { " OR " });
                    }
                    self.pexpr(d, item);
                }
                self.push(")");
            }
            PExpr::Not(x) => {
                self.push("NOT (");
                self.pexpr(d, x);
                self.push(")");
            }
            PExpr::Cmp(l, op, r) => {
                self.push("(");
                self.pval(d, l);
                self.push(match op {
                    CompareOp::Eq => " = ",
                    CompareOp::Neq => " <> ",
                    CompareOp::Gt => " > ",
                    CompareOp::Gte => " >= ",
                    CompareOp::Lt => " < ",
                    CompareOp::Lte => " <= ",
                });
                self.pval(d, r);
                self.push(")");
            }
            PExpr::IsNull(v, negate) => {
                self.push("(");
                self.pval(d, v);
                self.push(if *negate { " IS NOT NULL)" } else { " IS NULL)" });
            }
            PExpr::In(v, list, negate) => {
                self.push("(");
                self.pval(d, v);
                self.push(if *negate { " NOT IN (" } else { " IN (" });
                for (i, x) in list.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.pval(d, x);
                }
                self.push("))");
            }
            PExpr::Exists { table, alias, cond } => {
                self.push(&format!("EXISTS (SELECT 1 FROM {} AS {alias} WHERE ", quote(table)));
                self.pexpr(d, cond);
                self.push(")");
            }
            PExpr::Truthy(v) => {
                self.push("(");
                self.pval(d, v);
                self.push(")");
            }
            PExpr::Const(b) => {
                self.push(if *b { "(1 = 1)" } else { "(1 = 0)" });
            }
        }
    }

    fn pval(&mut self, d: &dyn Dialect, v: &PVal) {
        match v {
            PVal::Col { alias, column, .. } => {
                let s = format!("{alias}.{}", quote(column));
                self.push(&s);
            }
            PVal::Param(p, ty) => d.param(self, p.clone(), *ty),
        }
    }

    /// ` WHERE <join> AND <conds>`, or nothing when there is neither.
    pub fn where_clause(&mut self, d: &dyn Dialect, join: Option<(&crate::plan::Join, &str)>, conds: &[Cond]) {
        if join.is_none() && conds.is_empty() {
            return;
        }
        self.push(" WHERE ");
        if let Some((j, alias)) = join {
            self.join_on(d, j, alias);
            if !conds.is_empty() {
                self.push(" AND ");
            }
        }
        self.conds(d, conds);
    }

    pub fn join_on(&mut self, d: &dyn Dialect, join: &crate::plan::Join, child_alias: &str) {
        if let Some(t) = &join.through {
            self.push(&format!("EXISTS (SELECT 1 FROM {} AS {} WHERE ", quote(&t.table), t.alias));
            let pairs = t.child.iter().map(|(j, c)| format!("{}.{} = {child_alias}.{}", t.alias, quote(j), quote(c)));
            let pairs = pairs.chain(t.parent.iter().map(|(j, p)| format!("{}.{} = {}.{}", t.alias, quote(j), join.parent_alias, quote(p))));
            self.push(&pairs.collect::<Vec<_>>().join(" AND "));
            if !t.conds.is_empty() {
                self.push(" AND ");
                self.conds(d, &t.conds);
            }
            self.push(")");
            return;
        }
        for (i, (p, c)) in join.pairs.iter().enumerate() {
            if i > 0 {
                self.push(" AND ");
            }
            let s = format!("{child_alias}.{} = {}.{}", quote(c), join.parent_alias, quote(p));
            self.push(&s);
        }
    }

    fn op(&mut self, d: &dyn Dialect, l: &str, ty: ColumnType, op: &PlanOp) {
        match op {
            PlanOp::Compare(c, p) => self.compare(d, l, *c, p.clone(), ty),
            PlanOp::Like { insensitive, pattern } => d.like(self, l, *insensitive, pattern.clone()),
            PlanOp::Match { insensitive, pattern } => d.regex(self, l, *insensitive, pattern.clone()),
            PlanOp::Quantified { base, quant, values } => {
                self.push("(");
                if values.is_empty() {
                    self.push(if *quant == Quantifier::Any { "1 = 0" } else { "1 = 1" });
                }
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.push(if *quant == Quantifier::Any { " OR " } else { " AND " });
                    }
                    match base {
                        QuantBase::Compare(c) => self.compare(d, l, *c, v.clone(), ty),
                        QuantBase::Like { insensitive } => d.like(self, l, *insensitive, v.clone()),
                    }
                }
                self.push(")");
            }
            PlanOp::Is(v) => {
                let s = match v {
                    IsValue::Null | IsValue::Unknown => " IS NULL",
                    IsValue::NotNull => " IS NOT NULL",
                    IsValue::True => " IS TRUE",
                    IsValue::False => " IS FALSE",
                };
                self.push(l).push(s);
            }
            PlanOp::In(list) => d.in_list(self, l, list.clone(), ty),
            PlanOp::Contains(p) => d.contains(self, Side::Expr(l), Side::Param(p.clone()), ty),
            PlanOp::ContainedBy(p) => d.contains(self, Side::Param(p.clone()), Side::Expr(l), ty),
            PlanOp::Overlaps(p) => d.overlaps(self, l, p.clone(), ty),
            PlanOp::IsDistinct(p) => d.is_distinct(self, l, p.clone(), ty),
            PlanOp::TextSearch { kind, config, query } => d.text_search(self, l, ty, *kind, config.as_deref(), query.clone()),
        }
    }

    fn compare(&mut self, d: &dyn Dialect, l: &str, c: CompareOp, p: Param, ty: ColumnType) {
        self.push(l).push(compare_sym(c));
        d.param(self, p, Some(ty));
    }

    /// `ORDER BY` with explicit null placement, so SQLite sorts as PostgreSQL does.
    pub fn order(&mut self, d: &dyn Dialect, order: &[PlanOrder]) {
        if order.is_empty() {
            return;
        }
        self.push(" ORDER BY ");
        for (i, o) in order.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            let e = if o.expr.expr_type() == ExprType::Json && o.expr.cast.is_none() {
                self.json_value_expr(d, &o.expr)
            } else {
                self.expr(d, &o.expr)
            };
            match &o.related {
                None => {
                    self.push(&e);
                }
                Some(r) => {
                    self.push(&format!("(SELECT {e} FROM {} AS {} WHERE ", quote(&r.table), r.alias));
                    self.join_on(d, &r.join, &r.alias);
                    if !r.conds.is_empty() {
                        self.push(" AND ");
                        self.conds(d, &r.conds);
                    }
                    self.push(")");
                }
            }
            self.push(if o.desc { " DESC" } else { " ASC" });
            self.push(if o.nulls_first { " NULLS FIRST" } else { " NULLS LAST" });
        }
    }

    /// The WHERE of a PATCH or DELETE on `table AS alias`: its conditions, and for a limited one
    /// the rows its range picks, by `key` (SQLite's `rowid`, PostgreSQL's `ctid`).
    pub fn write_where(&mut self, d: &dyn Dialect, table: &str, alias: &str, key: &str, conds: &[Cond], range: Option<&WriteRange>) {
        if !conds.is_empty() {
            self.push(" WHERE ");
            self.conds(d, conds);
        }
        let Some(r) = range else { return };
        self.push(if conds.is_empty() { " WHERE " } else { " AND " });
        self.push(&format!("{alias}.{key} IN (SELECT {la}.{key} FROM {table} AS {la}", la = r.alias));
        if !r.conds.is_empty() {
            self.push(" WHERE ");
            self.conds(d, &r.conds);
        }
        self.order(d, &r.order);
        self.limit_offset(d, r.limit, r.offset);
        self.push(")");
    }

    /// The rows of a node with aggregate functions, one per group of its plain columns, each
    /// output named by its key: `SELECT a."s" AS "s", count(*) AS "count" FROM t AS a WHERE …
    /// GROUP BY 1 ORDER BY "s" LIMIT …`. Groups are named by position and the order by output
    /// name, so no expression (nor its parameters) is written twice.
    pub fn grouped_rows(&mut self, d: &dyn Dialect, node: &ReadPlan, join: Option<&crate::plan::Join>) {
        let a = &node.alias;
        self.push("SELECT ");
        let mut groups = Vec::new();
        // The parent columns to-one embeds join on, grouped by without being output.
        let mut keys: Vec<String> = Vec::new();
        let mut n = 0;
        for f in &node.fields {
            let (key, e) = match f {
                OutField::Column { key, expr } => {
                    groups.push((n + 1).to_string());
                    (key, self.expr(d, expr))
                }
                OutField::Aggregate { key, func, expr, result_cast, .. } => {
                    let arg = match expr {
                        Some(x) => self.expr(d, x),
                        None => "*".to_string(),
                    };
                    let call = format!("{}({arg})", func.name());
                    (key, result_cast.map_or(call.clone(), |t| d.cast(call, t)))
                }
                // A to-one row is a function of the parent's key columns, which join the groups.
                OutField::Embed { key, join, to_one: true, plan, hidden: false, .. } => {
                    let mut sub = Builder { sql: String::new(), params: std::mem::take(&mut self.params) };
                    d.embedded(&mut sub, plan, join, true);
                    self.params = sub.params;
                    for (parent, _) in &join.pairs {
                        keys.push(column_ref(a, parent));
                    }
                    (key, sub.sql)
                }
                // Only hidden embeds (filters) reach here; the planner refuses the others.
                _ => continue,
            };
            if n > 0 {
                self.push(", ");
            }
            n += 1;
            self.push(&e).push(" AS ").push(&quote(key));
        }
        self.push(&format!(" FROM {} AS {a}", quote(&node.table)));
        self.where_clause(d, join.map(|j| (j, a.as_str())), &node.conds);
        keys.dedup();
        groups.extend(keys);
        if !groups.is_empty() {
            self.push(" GROUP BY ").push(&groups.join(", "));
        }
        let keyed: Vec<(String, &PlanOrder)> = node.order.iter().filter_map(|o| Some((quote(node.group_key(&o.expr)?), o))).collect();
        for (i, (key, o)) in keyed.iter().enumerate() {
            self.push(if i == 0 { " ORDER BY " } else { ", " }).push(key);
            self.push(if o.desc { " DESC" } else { " ASC" });
            self.push(if o.nulls_first { " NULLS FIRST" } else { " NULLS LAST" });
        }
        self.limit_offset(d, node.limit, node.offset);
    }

    /// How many groups a grouped node has before its range: one when it has no plain column.
    pub fn grouped_count(&mut self, d: &dyn Dialect, node: &ReadPlan) {
        self.push("SELECT count(*) FROM (SELECT count(*)");
        let mut groups = Vec::new();
        for f in &node.fields {
            if let OutField::Column { expr, .. } = f {
                let e = self.expr(d, expr);
                self.push(", ").push(&e);
                groups.push((groups.len() + 2).to_string());
            }
        }
        self.push(&format!(" FROM {} AS {}", quote(&node.table), node.alias));
        self.where_clause(d, None, &node.conds);
        if !groups.is_empty() {
            self.push(" GROUP BY ").push(&groups.join(", "));
        }
        self.push(") AS _g");
    }

    pub fn limit_offset(&mut self, d: &dyn Dialect, limit: Option<i64>, offset: Option<i64>) {
        if limit.is_some() || offset.is_some() {
            self.push(" LIMIT ");
            match limit {
                Some(l) => d.param(self, Param::Int(l), Some(ColumnType::BigInt)),
                None => {
                    self.push(d.no_limit());
                }
            }
            if let Some(o) = offset {
                self.push(" OFFSET ");
                d.param(self, Param::Int(o), Some(ColumnType::BigInt));
            }
        }
    }
}

fn compare_sym(c: CompareOp) -> &'static str {
    match c {
        CompareOp::Eq => " = ",
        CompareOp::Neq => " <> ",
        CompareOp::Gt => " > ",
        CompareOp::Gte => " >= ",
        CompareOp::Lt => " < ",
        CompareOp::Lte => " <= ",
    }
}

#[cfg(test)]
mod tests;
