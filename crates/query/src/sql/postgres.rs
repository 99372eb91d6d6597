//! PostgreSQL renderer, shaped like PostgREST's queries: rows built in a subquery and
//! aggregated with `json_agg`, writes in a CTE so one statement returns the representation.
//! Every parameter is sent as text and cast here, so one prepared shape serves every value.

use basalt_schema::ident::quote;
use basalt_schema::{ColumnType, DdlDialect};

use super::{Builder, Dialect, Fragment, MutateSql, ReadSql, Side};
use crate::plan::{Join, MutateKind, MutatePlan, OutField, ReadPlan, Source};
use crate::request::{CountPref, PathKey};
use crate::value::Param;

pub struct Postgres;

/// What SQL set for the response, read after the query ran (PostgREST's `response.*` settings).
const RESPONSE_SETTINGS: &str = "current_setting('response.headers', true), current_setting('response.status', true)";

impl Postgres {
    /// `SELECT <fields> FROM (<rows>) AS alias` for one node.
    fn row_select(&self, b: &mut Builder, node: &ReadPlan, join: Option<&Join>) {
        if node.grouped() {
            return b.grouped_rows(self, node, join);
        }
        b.push("SELECT ");
        let visible: Vec<&OutField> = node.fields.iter().filter(|f| !matches!(f, OutField::Embed { hidden: true, .. })).collect();
        // An empty list is fine: `SELECT FROM ...` rows render as `{}`, as on SQLite.
        for (i, f) in visible.into_iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            match f {
                OutField::Column { key, expr } => {
                    b.push_expr(self, expr).push(" AS ").push_ident(key);
                }
                OutField::Embed { key, join, to_one, plan, .. } => {
                    self.embedded(b, plan, join, *to_one);
                    b.push(" AS ").push(&quote(key));
                }
                OutField::Spread { join, plan } => {
                    for (j, f) in plan.fields.iter().enumerate() {
                        let OutField::Column { key, expr } = f else { continue };
                        if j > 0 {
                            b.push(", ");
                        }
                        let e = b.expr(self, expr);
                        let a = &plan.alias;
                        b.push(&format!("(SELECT {e} FROM {} AS {a} WHERE ", quote(&plan.table)));
                        b.join_on(self, join, a);
                        if !plan.conds.is_empty() {
                            b.push(" AND ");
                            b.conds(self, &plan.conds);
                        }
                        b.push(&format!(" LIMIT 1) AS {}", quote(key)));
                    }
                }
                OutField::Aggregate { .. } => {}
                OutField::Count { key, join, table, alias, conds } => {
                    b.push(&format!(
                        "json_build_array(json_build_object('count', (SELECT count(*) FROM {} AS {alias} WHERE ",
                        quote(table)
                    ));
                    b.join_on(self, join, alias);
                    if !conds.is_empty() {
                        b.push(" AND ");
                        b.conds(self, conds);
                    }
                    b.push(&format!("))) AS {}", quote(key)));
                }
            }
        }
        b.push(" FROM (");
        let a = &node.alias;
        match (&node.call, node.source) {
            (Some(call), _) => {
                b.push(&format!("SELECT {a}.* FROM "));
                self.call_sql(b, call);
                b.push(&format!(" AS {a}"));
            }
            (None, Source::Table) => {
                b.push(&format!("SELECT {a}.* FROM {} AS {a}", quote(&node.table)));
            }
            (None, Source::Mutated) => {
                b.push(&format!("SELECT {a}.* FROM _m AS {a}"));
            }
        }
        b.where_clause(self, join.map(|j| (j, a.as_str())), &node.conds);
        b.order(self, &node.order);
        b.limit_offset(self, node.limit, node.offset);
        b.push(&format!(") AS {a}"));
    }

    fn body(&self, b: &mut Builder, plan: &ReadPlan) {
        b.push("SELECT count(*), coalesce(json_agg(_r), '[]')::text, ");
        b.push(RESPONSE_SETTINGS);
        b.push(" FROM (");
        self.row_select(b, plan, None);
        b.push(") AS _r");
    }

    /// `"schema"."fn"(a => $1::type, ...)`
    fn call_sql(&self, b: &mut Builder, plan: &crate::plan::RpcPlan) {
        b.push(&format!("{}.{}(", quote(plan.function.schema.as_deref().unwrap_or("public")), quote(&plan.function.name)));
        for (i, (name, ty, p)) in plan.args.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.params.push(p.clone());
            let n = b.params.len();
            match name.is_empty() {
                // The single unnamed json argument: by position.
                true => b.push(&format!("${n}::{ty}")),
                false => b.push(&format!("{} => ${n}::{ty}", quote(name))),
            };
        }
        b.push(")");
    }

    fn cast_name(ty: ColumnType) -> String {
        match ty {
            ColumnType::Varchar(_) => "text".into(),
            other => other.pg_name(),
        }
    }
}

impl Dialect for Postgres {
    fn param(&self, b: &mut Builder, p: Param, ty: Option<ColumnType>) {
        // Arrays travel as JSON; PostgreSQL wants its own array literal.
        let p = match (p, ty) {
            (Param::Json(j), Some(t)) if t.is_array() => {
                let v: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
                Param::Text(basalt_schema::ddl::pg_array_literal(&v))
            }
            (p, _) => p,
        };
        b.params.push(p);
        let n = b.params.len();
        match ty {
            None | Some(ColumnType::Text) => b.push(&format!("${n}")),
            Some(t) => b.push(&format!("${n}::{}", Self::cast_name(t))),
        };
    }

    fn path_key(&self, b: &mut Builder, key: &PathKey) {
        match key {
            PathKey::Index(i) => {
                b.push(&format!("({i})::int"));
            }
            PathKey::Name(n) => self.param(b, Param::Text(n.clone()), Some(ColumnType::Text)),
        }
    }

    fn like(&self, b: &mut Builder, lhs: &str, insensitive: bool, pattern: Param) {
        b.push(lhs).push(if insensitive { " ILIKE " } else { " LIKE " });
        self.param(b, pattern, None);
    }

    fn regex(&self, b: &mut Builder, lhs: &str, insensitive: bool, pattern: Param) {
        b.push(lhs).push(if insensitive { " ~* " } else { " ~ " });
        self.param(b, pattern, None);
    }

    fn text_search(&self, b: &mut Builder, lhs: &str, ty: ColumnType, kind: basalt_textsearch::Kind, config: Option<&str>, query: Param) {
        let config_arg = |b: &mut Builder| {
            if let Some(c) = config {
                b.push_literal(c).push("::regconfig, ");
            }
        };
        if ty == ColumnType::Other {
            b.push(lhs);
        } else {
            b.push("to_tsvector(");
            config_arg(b);
            b.push(lhs).push(")");
        }
        b.push(" @@ ").push(kind.function()).push("(");
        config_arg(b);
        self.param(b, query, None);
        b.push(")");
    }

    fn contains(&self, b: &mut Builder, container: Side, contained: Side, ty: ColumnType) {
        for (i, side) in [container, contained].into_iter().enumerate() {
            if i > 0 {
                b.push(" @> ");
            }
            match side {
                Side::Expr(e) => {
                    b.push(e);
                }
                Side::Param(p) => self.param(b, p, Some(ty)),
            }
        }
    }

    fn overlaps(&self, b: &mut Builder, lhs: &str, p: Param, ty: ColumnType) {
        b.push(lhs).push(" && ");
        self.param(b, p, Some(ty));
    }

    fn in_list(&self, b: &mut Builder, lhs: &str, list: Param, ty: ColumnType) {
        b.push(lhs).push(" IN (SELECT _v::");
        b.push(&Self::cast_name(ty));
        b.push(" FROM jsonb_array_elements_text(");
        self.param(b, list, Some(ColumnType::Jsonb));
        b.push(") AS _v)");
    }

    fn is_distinct(&self, b: &mut Builder, lhs: &str, p: Param, ty: ColumnType) {
        b.push(lhs).push(" IS DISTINCT FROM ");
        self.param(b, p, Some(ty));
    }

    fn cast(&self, expr: String, ty: ColumnType) -> String {
        format!("CAST({expr} AS {})", ty.pg_name())
    }

    fn no_limit(&self) -> &'static str {
        "ALL"
    }

    fn rpc(&self, plan: &crate::plan::RpcPlan) -> Option<Fragment> {
        use basalt_schema::FunctionReturn;
        let mut b = Builder::default();
        let f = &plan.function;
        let (rows, body) = match (f.returns_set, f.returns) {
            (_, FunctionReturn::Void) => ("1::int8", "NULL::text"),
            (true, _) => ("count(*)", "coalesce(json_agg(_r), '[]')::text"),
            (false, FunctionReturn::Composite) => ("1::int8", "row_to_json(_r)::text"),
            (false, FunctionReturn::Scalar) => ("1::int8", "to_json(_r)::text"),
        };
        b.push(&format!("SELECT {rows}, {body}, {RESPONSE_SETTINGS} FROM "));
        self.call_sql(&mut b, plan);
        b.push(" AS _r");
        Some(b.finish())
    }

    fn read(&self, plan: &ReadPlan, count: Option<CountPref>) -> ReadSql {
        let mut b = Builder::default();
        self.body(&mut b, plan);
        // The rows counted: `SELECT count(*) FROM ...` for exact counts, `EXPLAIN` of
        // `SELECT 1 FROM ...` for the planner's estimate.
        let rows = |prefix: &str| {
            let mut c = Builder::default();
            c.push(prefix);
            match &plan.call {
                Some(call) => {
                    self.call_sql(&mut c, call);
                    c.push(&format!(" AS {}", plan.alias));
                }
                None => {
                    c.push(&format!("{} AS {}", quote(&plan.table), plan.alias));
                }
            }
            if !plan.conds.is_empty() {
                c.push(" WHERE ");
                c.conds(self, &plan.conds);
            }
            c.finish()
        };
        if plan.grouped() {
            // Groups are counted exactly, whatever was asked: the estimate is of rows.
            let exact = count.is_some().then(|| {
                let mut c = Builder::default();
                c.grouped_count(self, plan);
                c.finish()
            });
            return ReadSql { body: b.finish(), count: exact, planned: None };
        }
        let exact = matches!(count, Some(CountPref::Exact | CountPref::Estimated)).then(|| rows("SELECT count(*) FROM "));
        let planned =
            matches!(count, Some(CountPref::Planned | CountPref::Estimated)).then(|| rows("EXPLAIN (FORMAT JSON) SELECT 1 FROM "));
        ReadSql { body: b.finish(), count: exact, planned }
    }

    fn embedded(&self, b: &mut Builder, plan: &ReadPlan, join: &Join, to_one: bool) {
        let r = format!("_r{}", &plan.alias[2..]);
        if to_one {
            b.push(&format!("(SELECT row_to_json({r}) FROM ("));
        } else {
            b.push(&format!("(SELECT coalesce(json_agg({r}), '[]') FROM ("));
        }
        self.row_select(b, plan, Some(join));
        b.push(&format!(") AS {r})"));
    }

    fn mutate(&self, plan: &MutatePlan<'_>) -> MutateSql {
        let t = quote(&plan.table);
        let mut b = Builder::default();
        // Without a representation or an upsert to classify, the statement runs bare: RETURNING
        // would need a SELECT policy, and write-only tables (an audit log, a form) have none.
        let bare = plan.returning.is_none() && !matches!(&plan.kind, MutateKind::Insert { on_conflict: Some(_), .. });
        if !bare {
            b.push("WITH _m AS (");
        }
        match &plan.kind {
            MutateKind::Insert { columns, rows, on_conflict, missing_default, .. } => {
                if columns.is_empty() {
                    b.push(&format!("INSERT INTO {t} AS _ins DEFAULT VALUES"));
                } else {
                    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
                    let values: Vec<String> = columns
                        .iter()
                        .map(|c| {
                            let v = format!("_r.{}", quote(&c.name));
                            if *missing_default {
                                let d = c
                                    .default
                                    .as_ref()
                                    .map(|d| basalt_schema::ddl::default_sql(d, c.ty, DdlDialect::Postgres))
                                    .unwrap_or_else(|| "NULL".into());
                                format!("CASE WHEN _j ? {} THEN {v} ELSE {d} END", basalt_schema::ident::literal(&c.name))
                            } else {
                                v
                            }
                        })
                        .collect();
                    b.push(&format!(
                        "INSERT INTO {t} AS _ins ({}) SELECT {} FROM jsonb_array_elements(",
                        names.join(", "),
                        values.join(", ")
                    ));
                    self.param(&mut b, super::rows_json(rows), Some(ColumnType::Jsonb));
                    b.push(&format!(") WITH ORDINALITY AS _e(_j, _n), LATERAL jsonb_populate_record(NULL::{t}, _j) AS _r ORDER BY _n"));
                }
                if let Some(oc) = on_conflict {
                    let target: Vec<String> = oc.columns.iter().map(|c| quote(c)).collect();
                    b.push(&format!(" ON CONFLICT ({}) DO ", target.join(", ")));
                    let mut sets: Vec<String> = oc.update.iter().map(|c| format!("{} = EXCLUDED.{}", quote(c), quote(c))).collect();
                    if oc.touch_updated_at {
                        sets.push("\"updated_at\" = now()".into());
                    }
                    if oc.update.is_empty() {
                        b.push("NOTHING");
                    } else {
                        b.push(&format!("UPDATE SET {}", sets.join(", ")));
                    }
                }
                if !bare {
                    b.push(" RETURNING _ins.*, (_ins.xmax = 0) AS _basalt_inserted");
                }
            }
            MutateKind::Update { alias, columns, values, conds, touch_updated_at, key_column, range } => {
                let mut sets: Vec<String> = columns.iter().map(|c| format!("{} = _r.{}", quote(&c.name), quote(&c.name))).collect();
                if *touch_updated_at {
                    sets.push("\"updated_at\" = now()".into());
                }
                if sets.is_empty() {
                    sets.push(format!("{c} = {alias}.{c}", c = quote(key_column)));
                }
                b.push(&format!("UPDATE {t} AS {alias} SET {} FROM jsonb_populate_record(NULL::{t}, ", sets.join(", ")));
                self.param(&mut b, values.clone(), Some(ColumnType::Jsonb));
                b.push(") AS _r");
                b.write_where(self, &t, alias, "ctid", conds, range.as_ref());
                if !bare {
                    b.push(&format!(" RETURNING {alias}.*, false AS _basalt_inserted"));
                }
            }
            MutateKind::Delete { alias, conds, range } => {
                b.push(&format!("DELETE FROM {t} AS {alias}"));
                b.write_where(self, &t, alias, "ctid", conds, range.as_ref());
                if !bare {
                    b.push(&format!(" RETURNING {alias}.*, false AS _basalt_inserted"));
                }
            }
        }
        if bare {
            return MutateSql::Counted(b.finish());
        }
        b.push(") SELECT (SELECT count(*) FROM _m), (SELECT count(*) FROM _m WHERE _basalt_inserted), ");
        b.push(RESPONSE_SETTINGS).push(", ");
        match &plan.returning {
            Some(r) => {
                b.push("(SELECT coalesce(json_agg(_r), '[]')::text FROM (");
                self.row_select(&mut b, r, None);
                b.push(") AS _r)");
            }
            None => {
                b.push("NULL::text");
            }
        }
        MutateSql::Single(b.finish())
    }
}
