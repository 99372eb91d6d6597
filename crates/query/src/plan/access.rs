//! Row-level security compiled into the plan (for backends without native policies):
//! a request's role and claims select the permissive policies of each table, whose
//! expressions become conditions with the caller's values bound as parameters.

use basalt_schema::policy::{CmpOp as PCmp, Expr, Operand};
use basalt_schema::{Catalog, ColumnType, Table};
use serde_json::Value;

use super::{Cond, PExpr, PVal};
use crate::request::CompareOp;
use crate::value::{from_text, Param};

/// How many tables' policies may nest through `exists (select ... from other ...)`, a bound
/// beside the rule that a table reached again inside its own policies lets no row through there
/// (PostgreSQL refuses such a query: 42P17, infinite recursion).
const MAX_POLICY_DEPTH: usize = 8;

/// Who is asking, and whether policies go into the plan.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// `anon`, `authenticated` or `service_role`.
    pub role: &'a str,
    pub claims: &'a Value,
    /// True when the backend has no native row-level security (SQLite).
    pub enforce: bool,
}

impl<'a> Access<'a> {
    /// Full access: service_role, or a backend that enforces policies itself.
    pub fn bypass(&self) -> bool {
        self.role == "service_role" || !self.enforce
    }

    /// The condition rows of `table` must meet for `command`, or None when nothing applies
    /// (service_role / native RLS). No matching policy means no rows.
    pub fn using(&self, catalog: &Catalog, table: &Table, alias: &str, command: &str) -> Option<Cond> {
        self.policy_cond(catalog, table, alias, command, false)
    }

    /// The condition new rows must meet (WITH CHECK, falling back to USING as PostgreSQL does).
    pub fn check(&self, catalog: &Catalog, table: &Table, alias: &str, command: &str) -> Option<Cond> {
        self.policy_cond(catalog, table, alias, command, true)
    }

    fn policy_cond(&self, catalog: &Catalog, table: &Table, alias: &str, command: &str, check: bool) -> Option<Cond> {
        if self.bypass() {
            return None;
        }
        Some(Cond::Expr(self.policy_expr(catalog, table, alias, command, check, &[])))
    }

    /// The permissive policies of `table` for the role and command, OR-ed; `around` names the
    /// tables whose policies are being compiled around this one (see [`MAX_POLICY_DEPTH`]).
    fn policy_expr(&self, catalog: &Catalog, table: &Table, alias: &str, command: &str, check: bool, around: &[&str]) -> PExpr {
        let exprs: Vec<&Expr> = table
            .policies
            .iter()
            .filter(|p| p.applies(self.role, command))
            .filter_map(|p| if check { p.with_check.as_ref().or(p.using.as_ref()) } else { p.using.as_ref() })
            .collect();
        if exprs.is_empty() || around.len() > MAX_POLICY_DEPTH || around.contains(&table.name.as_str()) {
            return PExpr::Const(false);
        }
        let mut inside = around.to_vec();
        inside.push(&table.name);
        let mut counter = 0;
        let items: Vec<PExpr> = exprs.iter().map(|e| self.compile(catalog, e, table, alias, None, &mut counter, &inside)).collect();
        if items.len() == 1 {
            items.into_iter().next().unwrap_or(PExpr::Const(false))
        } else {
            PExpr::Or(items)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn compile(
        &self,
        catalog: &Catalog,
        e: &Expr,
        outer: &Table,
        outer_alias: &str,
        inner: Option<(&Table, &str)>,
        n: &mut usize,
        around: &[&str],
    ) -> PExpr {
        let c = |x: &Expr, n: &mut usize| self.compile(catalog, x, outer, outer_alias, inner, n, around);
        match e {
            Expr::Or(v) => PExpr::Or(v.iter().map(|x| c(x, n)).collect()),
            Expr::And(v) => PExpr::And(v.iter().map(|x| c(x, n)).collect()),
            Expr::Not(x) => PExpr::Not(Box::new(c(x, n))),
            Expr::Cmp { left, op, right } => {
                let l = self.operand(left, outer, outer_alias, inner, None);
                let r = self.operand(right, outer, outer_alias, inner, l.column_type());
                let l = if l.column_type().is_none() { self.operand(left, outer, outer_alias, inner, r.column_type()) } else { l };
                let op = match op {
                    PCmp::Eq => CompareOp::Eq,
                    PCmp::Neq => CompareOp::Neq,
                    PCmp::Lt => CompareOp::Lt,
                    PCmp::Lte => CompareOp::Lte,
                    PCmp::Gt => CompareOp::Gt,
                    PCmp::Gte => CompareOp::Gte,
                };
                PExpr::Cmp(l, op, r)
            }
            Expr::IsNull { operand, negate } => PExpr::IsNull(self.operand(operand, outer, outer_alias, inner, None), *negate),
            Expr::In { operand, list, negate } => {
                let o = self.operand(operand, outer, outer_alias, inner, None);
                let ty = o.column_type();
                PExpr::In(o, list.iter().map(|x| self.operand(x, outer, outer_alias, inner, ty)).collect(), *negate)
            }
            Expr::Exists { table, cond } => match catalog.table(table) {
                Some(t) => {
                    *n += 1;
                    let alias = format!("{outer_alias}_p{n}");
                    let inner_expr = self.compile(catalog, cond, outer, outer_alias, Some((t, &alias)), n, around);
                    // The subquery reads the other table as the caller, as in PostgreSQL: only
                    // the rows its own SELECT policies let the caller see.
                    let visible = self.policy_expr(catalog, t, &alias, "select", false, around);
                    PExpr::Exists { table: t.name.clone(), alias, cond: Box::new(PExpr::And(vec![inner_expr, visible])) }
                }
                None => PExpr::Const(false),
            },
            Expr::Truthy(o) => PExpr::Truthy(self.operand(o, outer, outer_alias, inner, Some(ColumnType::Boolean))),
        }
    }

    /// A column (resolved innermost first, as SQL does) or a value typed like `hint`.
    fn operand(&self, o: &Operand, outer: &Table, outer_alias: &str, inner: Option<(&Table, &str)>, hint: Option<ColumnType>) -> PVal {
        let param = |raw: Option<String>| -> PVal {
            match (raw, hint) {
                (None, _) => PVal::Param(Param::Null, hint),
                (Some(s), Some(t)) => PVal::Param(from_text(t, &s).unwrap_or(Param::Null), hint),
                (Some(s), None) => PVal::Param(Param::Text(s), None),
            }
        };
        let claim = |k: &str| self.claims.get(k).and_then(Value::as_str).map(str::to_string);
        match o {
            Operand::Column { table, column } => {
                let pick =
                    |t: &Table, a: &str| t.column(column).map(|c| PVal::Col { alias: a.to_string(), column: c.name.clone(), ty: c.ty });
                let found = match (table, inner) {
                    (Some(q), Some((it, ia))) if *q == it.name => pick(it, ia),
                    (Some(q), _) if *q == outer.name => pick(outer, outer_alias),
                    (Some(_), _) => None,
                    (None, Some((it, ia))) => pick(it, ia).or_else(|| pick(outer, outer_alias)),
                    (None, None) => pick(outer, outer_alias),
                };
                found.unwrap_or(PVal::Param(Param::Null, None))
            }
            Operand::Text(t) => param(Some(t.clone())),
            Operand::Number(x) => param(Some(x.clone())),
            Operand::Bool(b) => PVal::Param(Param::Bool(*b), Some(ColumnType::Boolean)),
            Operand::Null => PVal::Param(Param::Null, hint),
            Operand::AuthUid => param(claim("sub")),
            Operand::AuthRole => PVal::Param(Param::Text(self.role.to_string()), None),
            Operand::AuthEmail => param(claim("email")),
            Operand::AuthJwt(steps) => {
                let mut cur = Some(self.claims);
                for (_, k) in steps {
                    cur = cur.and_then(|v| v.get(k));
                }
                match (cur, steps.last().map(|(t, _)| *t)) {
                    (None | Some(Value::Null), _) => PVal::Param(Param::Null, hint),
                    (Some(Value::String(s)), Some(true)) => param(Some(s.clone())),
                    (Some(v), Some(true)) => param(Some(crate::value::json_text(v))),
                    (Some(v), _) => PVal::Param(Param::Json(crate::value::json_text(v)), Some(ColumnType::Jsonb)),
                }
            }
        }
    }
}

impl PVal {
    pub fn column_type(&self) -> Option<ColumnType> {
        match self {
            PVal::Col { ty, .. } => Some(*ty),
            PVal::Param(_, t) => *t,
        }
    }
}
