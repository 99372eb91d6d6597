//! DDL text per dialect for the migration steps. SQLite cannot alter constraints or column
//! types in place, so any such change rebuilds the table (SQLite's documented 12-step way).

use std::collections::BTreeSet;

use crate::audit;
use crate::catalog::{Catalog, Column, Index, Policy, Table};
use crate::default::DefaultExpr;
use crate::diff::{Constraint, DbState, MigrationPlan, MigrationStep};
use crate::ident::{literal, quote};
use crate::policy::{Expr, Operand};
use crate::types::ColumnType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DdlDialect {
    Sqlite,
    Postgres,
}

/// Renders the plan as SQL statements, to run in one transaction.
pub fn render(plan: &MigrationPlan, desired: &Catalog, db: &DbState, dialect: DdlDialect) -> Vec<String> {
    match dialect {
        DdlDialect::Postgres => {
            // Policies come last: one may read a table (`exists (select ... from members ...)`)
            // that a foreign key makes the migration create after the policy's own table.
            let (policies, rest): (Vec<String>, Vec<String>) =
                plan.steps.iter().flat_map(|s| pg_step(s, desired)).partition(|s| s.starts_with("CREATE POLICY "));
            rest.into_iter().chain(policies).collect()
        }
        DdlDialect::Sqlite => sqlite_plan(plan, desired, db),
    }
}

pub fn create_table(t: &Table, dialect: DdlDialect) -> Vec<String> {
    let mut out = create_table_named(t, &t.name, dialect);
    out.extend(audit::create_triggers(t, dialect));
    out
}

fn create_table_named(t: &Table, name: &str, dialect: DdlDialect) -> Vec<String> {
    let mut parts: Vec<String> = t.columns.values().map(|c| column_def(c, dialect)).collect();
    for c in table_constraints(t) {
        parts.push(constraint_def(&t.name, &c, dialect));
    }
    let mut out = vec![format!("CREATE TABLE {} (\n  {}\n)", quote(name), parts.join(",\n  "))];
    out.extend(t.indexes.iter().map(|i| create_index(&t.name, i)));
    if dialect == DdlDialect::Postgres {
        out.push(format!("ALTER TABLE {} ENABLE ROW LEVEL SECURITY", quote(&t.name)));
        out.push(format!("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO anon, authenticated, service_role", quote(&t.name)));
        out.extend(t.policies.iter().map(|p| create_policy(&t.name, p)));
    }
    out
}

/// A table name as SQL: `auth.users` lives in schema `auth` on PostgreSQL and as `auth_users` on SQLite.
pub fn table_sql(name: &str, dialect: DdlDialect) -> String {
    match (name.split_once('.'), dialect) {
        (Some((schema, table)), DdlDialect::Postgres) => format!("{}.{}", quote(schema), quote(table)),
        (Some((schema, table)), DdlDialect::Sqlite) => quote(&format!("{schema}_{table}")),
        (None, _) => quote(name),
    }
}

/// `CREATE POLICY` for PostgreSQL's native row-level security.
pub fn create_policy(table: &str, p: &Policy) -> String {
    let roles = p.roles.iter().map(|r| if r == "public" { "PUBLIC".to_string() } else { quote(r) }).collect::<Vec<_>>().join(", ");
    let mut s = format!("CREATE POLICY {} ON {} AS PERMISSIVE FOR {} TO {roles}", quote(&p.name), quote(table), p.command.to_uppercase());
    if let Some(u) = &p.using {
        s.push_str(&format!(" USING ({})", policy_sql(u)));
    }
    if let Some(c) = &p.with_check {
        s.push_str(&format!(" WITH CHECK ({})", policy_sql(c)));
    }
    s
}

/// A policy expression as PostgreSQL SQL (for `CREATE POLICY`, and the generated docs).
pub fn policy_sql(e: &Expr) -> String {
    let join = |v: &[Expr], sep: &str| v.iter().map(|x| format!("({})", policy_sql(x))).collect::<Vec<_>>().join(sep);
    match e {
        Expr::Or(v) => join(v, " OR "),
        Expr::And(v) => join(v, " AND "),
        Expr::Not(x) => format!("NOT ({})", policy_sql(x)),
        Expr::Cmp { left, op, right } => format!("{} {} {}", operand_sql(left), op.sql(), operand_sql(right)),
        Expr::IsNull { operand, negate } => format!("{} IS {}NULL", operand_sql(operand), if *negate { "NOT " } else { "" }),
        Expr::In { operand, list, negate } => format!(
            "{} {}IN ({})",
            operand_sql(operand),
            if *negate { "NOT " } else { "" },
            list.iter().map(operand_sql).collect::<Vec<_>>().join(", ")
        ),
        Expr::Exists { table, cond } => format!("EXISTS (SELECT 1 FROM {} WHERE {})", quote(table), policy_sql(cond)),
        Expr::Truthy(o) => operand_sql(o),
    }
}

fn operand_sql(o: &Operand) -> String {
    match o {
        Operand::Column { table: Some(t), column } => format!("{}.{}", quote(t), quote(column)),
        Operand::Column { table: None, column } => quote(column),
        Operand::Text(t) => literal(t),
        Operand::Number(n) => n.clone(),
        Operand::Bool(b) => b.to_string(),
        Operand::Null => "NULL".into(),
        // Each wrapped in a scalar subquery: PostgreSQL evaluates it once per statement (an
        // InitPlan) rather than once per row, and can use it as an index key.
        Operand::AuthUid => "(SELECT auth.uid())".into(),
        Operand::AuthRole => "(SELECT auth.role())".into(),
        Operand::AuthEmail => "(SELECT auth.email())".into(),
        Operand::AuthJwt(steps) => {
            let mut s = "(SELECT auth.jwt())".to_string();
            for (as_text, k) in steps {
                s.push_str(if *as_text { " ->> " } else { " -> " });
                s.push_str(&literal(k));
            }
            s
        }
    }
}

fn table_constraints(t: &Table) -> Vec<Constraint> {
    let mut out = vec![Constraint::PrimaryKey(t.primary_key.clone())];
    out.extend(t.uniques.iter().cloned().map(Constraint::Unique));
    out.extend(t.foreign_keys.iter().cloned().map(Constraint::ForeignKey));
    out.extend(t.checks.iter().cloned().map(Constraint::Check));
    out
}

fn column_type(c: &Column, dialect: DdlDialect) -> String {
    match dialect {
        DdlDialect::Postgres => c.ty.pg_name(),
        DdlDialect::Sqlite => c.ty.sqlite_name().to_string(),
    }
}

fn column_def(c: &Column, dialect: DdlDialect) -> String {
    let mut s = format!("{} {}", quote(&c.name), column_type(c, dialect));
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(" DEFAULT ");
        s.push_str(&default_sql(d, c.ty, dialect));
    }
    s
}

/// The DEFAULT expression. SQLite calls functions Basalt registers on every connection.
pub fn default_sql(d: &DefaultExpr, ty: ColumnType, dialect: DdlDialect) -> String {
    use DdlDialect::*;
    match (d, dialect) {
        (DefaultExpr::Null, _) | (DefaultExpr::Database(_), Sqlite) => "NULL".into(),
        (DefaultExpr::Database(expr), Postgres) => format!("({expr})"),
        (DefaultExpr::Now, Postgres) => "now()".into(),
        (DefaultExpr::Now, Sqlite) if ty == ColumnType::Date => "(date('now'))".into(),
        (DefaultExpr::Now, Sqlite) => "(basalt_now())".into(),
        (DefaultExpr::RandomUuid, Postgres) => "gen_random_uuid()".into(),
        (DefaultExpr::RandomUuid, Sqlite) => "(basalt_uuid())".into(),
        (DefaultExpr::TimeUuid, Postgres) => "extensions.uuid_generate_v7()".into(),
        (DefaultExpr::TimeUuid, Sqlite) => "(basalt_uuid7())".into(),
        (DefaultExpr::AuthUid, Postgres) => "auth.uid()".into(),
        (DefaultExpr::AuthUid, Sqlite) => "(basalt_auth_uid())".into(),
        (DefaultExpr::Bool(b), Postgres) => b.to_string(),
        (DefaultExpr::Bool(b), Sqlite) => u8::from(*b).to_string(),
        (DefaultExpr::Number(n), _) => n.to_string(),
        (DefaultExpr::Text(t), _) => literal(t),
        (DefaultExpr::Json(v), Sqlite) => literal(&v.to_string()),
        (DefaultExpr::Json(v), Postgres) if ty == ColumnType::Jsonb => format!("{}::jsonb", literal(&v.to_string())),
        (DefaultExpr::Json(v), Postgres) => format!("{}::{}", literal(&pg_array_literal(v)), ty.pg_name()),
    }
}

/// `["a","b c"]` as PostgreSQL's `{"a","b c"}`.
pub fn pg_array_literal(v: &serde_json::Value) -> String {
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            serde_json::Value::Null => "NULL".to_string(),
            serde_json::Value::String(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
            other => format!("\"{other}\""),
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn cols(c: &[String]) -> String {
    c.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
}

fn constraint_def(table: &str, c: &Constraint, dialect: DdlDialect) -> String {
    let name = quote(&c.name(table));
    match c {
        Constraint::PrimaryKey(pk) => format!("CONSTRAINT {name} PRIMARY KEY ({})", cols(pk)),
        Constraint::Unique(u) => format!("CONSTRAINT {name} UNIQUE ({})", cols(&u.columns)),
        Constraint::ForeignKey(f) => format!(
            "CONSTRAINT {name} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
            cols(&f.columns),
            table_sql(&f.ref_table, dialect),
            cols(&f.ref_columns),
            f.on_delete.sql()
        ),
        Constraint::Check(ck) => {
            let values: Vec<String> = ck
                .one_of
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => literal(s),
                    other => other.to_string(),
                })
                .collect();
            format!("CONSTRAINT {name} CHECK ({} IN ({}))", quote(&ck.column), values.join(", "))
        }
    }
}

fn create_index(table: &str, i: &Index) -> String {
    let cols: Vec<String> = i.columns.iter().map(|(c, desc)| format!("{}{}", quote(c), if *desc { " DESC" } else { "" })).collect();
    format!("CREATE {}INDEX {} ON {} ({})", if i.unique { "UNIQUE " } else { "" }, quote(&i.name), quote(table), cols.join(", "))
}

fn pg_step(step: &MigrationStep, desired: &Catalog) -> Vec<String> {
    match step {
        MigrationStep::CreateTable(t) => create_table(t, DdlDialect::Postgres),
        MigrationStep::DropTable(t) => vec![format!("DROP TABLE {} CASCADE", quote(t))],
        MigrationStep::AddColumn { table, column } => {
            vec![format!("ALTER TABLE {} ADD COLUMN {}", quote(table), column_def(column, DdlDialect::Postgres))]
        }
        MigrationStep::DropColumn { table, column } => {
            vec![format!("ALTER TABLE {} DROP COLUMN {} CASCADE", quote(table), quote(column))]
        }
        MigrationStep::AlterColumn { table, from, to } => {
            let (t, c) = (quote(table), quote(&to.name));
            let mut out = Vec::new();
            if from.default.is_some() && from.default != to.default {
                out.push(format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT"));
            }
            if from.ty != to.ty {
                let ty = to.ty.pg_name();
                out.push(format!("ALTER TABLE {t} ALTER COLUMN {c} TYPE {ty} USING {c}::text::{ty}"));
            }
            if let Some(d) = to.default.as_ref().filter(|_| from.default != to.default) {
                out.push(format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {}", default_sql(d, to.ty, DdlDialect::Postgres)));
            }
            if from.not_null != to.not_null {
                out.push(format!("ALTER TABLE {t} ALTER COLUMN {c} {} NOT NULL", if to.not_null { "SET" } else { "DROP" }));
            }
            out
        }
        MigrationStep::AddConstraint { table, constraint } => {
            vec![format!("ALTER TABLE {} ADD {}", quote(table), constraint_def(table, constraint, DdlDialect::Postgres))]
        }
        MigrationStep::ReplacePolicies { table, old, new } => {
            let mut out: Vec<String> =
                old.iter().map(|p| format!("DROP POLICY IF EXISTS {} ON {}", quote(&p.name), quote(table))).collect();
            out.extend(new.iter().map(|p| create_policy(table, p)));
            out
        }
        MigrationStep::DropConstraint { table, name } => {
            vec![format!("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}", quote(table), quote(name))]
        }
        MigrationStep::CreateIndex { table, index } => vec![create_index(table, index)],
        MigrationStep::DropIndex { name, .. } => vec![format!("DROP INDEX IF EXISTS {}", quote(name))],
        MigrationStep::ReplaceAudit { table, .. } => replace_audit(table, desired, DdlDialect::Postgres),
    }
}

/// Drops a table's audit triggers and creates them again from the desired schema, if audited.
fn replace_audit(table: &str, desired: &Catalog, dialect: DdlDialect) -> Vec<String> {
    let mut out = audit::drop_triggers(table, dialect);
    if let Some(t) = desired.tables.get(table) {
        out.extend(audit::create_triggers(t, dialect));
    }
    out
}

/// SQLite: simple column additions and index changes in place, everything else by rebuilding
/// the table into its desired shape and copying the columns both shapes share.
fn sqlite_plan(plan: &MigrationPlan, desired: &Catalog, db: &DbState) -> Vec<String> {
    let rebuild: BTreeSet<&str> = plan
        .steps
        .iter()
        .filter(|s| match s {
            MigrationStep::AddColumn { column, .. } => !sqlite_can_add(column),
            MigrationStep::DropColumn { .. } | MigrationStep::AlterColumn { .. } => true,
            MigrationStep::AddConstraint { .. } | MigrationStep::DropConstraint { .. } => true,
            _ => false,
        })
        .map(|s| s.table())
        .collect();
    let mut out = Vec::new();
    let mut rebuilt = BTreeSet::new();
    // Audit triggers name every column: a table changed in place gets them again at the end.
    let mut retrigger = BTreeSet::new();
    for step in &plan.steps {
        let table = step.table();
        if rebuild.contains(table) {
            if rebuilt.insert(table.to_string()) {
                if let (Some(t), Some(existing)) = (desired.tables.get(table), db.tables.get(table)) {
                    out.extend(sqlite_rebuild(t, &existing.columns));
                }
            }
            continue;
        }
        match step {
            MigrationStep::CreateTable(t) => out.extend(create_table(t, DdlDialect::Sqlite)),
            MigrationStep::DropTable(t) => out.push(format!("DROP TABLE {}", quote(t))),
            MigrationStep::AddColumn { table, column } => {
                out.push(format!("ALTER TABLE {} ADD COLUMN {}", quote(table), column_def(column, DdlDialect::Sqlite)));
                retrigger.insert(table.as_str());
            }
            MigrationStep::CreateIndex { table, index } => out.push(create_index(table, index)),
            MigrationStep::DropIndex { name, .. } => out.push(format!("DROP INDEX IF EXISTS {}", quote(name))),
            MigrationStep::ReplaceAudit { table, .. } => {
                retrigger.insert(table.as_str());
            }
            _ => {}
        }
    }
    for table in retrigger {
        if !rebuilt.contains(table) {
            out.extend(replace_audit(table, desired, DdlDialect::Sqlite));
        }
    }
    out
}

fn sqlite_can_add(c: &Column) -> bool {
    let constant = c.default.as_ref().is_none_or(DefaultExpr::is_constant);
    constant && (!c.not_null || c.default.is_some())
}

fn sqlite_rebuild(t: &Table, existing_columns: &[String]) -> Vec<String> {
    let tmp = format!("_basalt_new_{}", t.name);
    let shared: Vec<String> = t.columns.keys().filter(|c| existing_columns.contains(c)).cloned().collect();
    let mut out = create_table_named(t, &tmp, DdlDialect::Sqlite);
    // Indexes are created after the rename, under their own names.
    let n_idx = t.indexes.len();
    let indexes: Vec<String> = out.drain(out.len() - n_idx..).collect();
    out.push(format!("INSERT INTO {} ({c}) SELECT {c} FROM {}", quote(&tmp), quote(&t.name), c = cols(&shared)));
    out.push(format!("DROP TABLE {}", quote(&t.name)));
    out.push(format!("ALTER TABLE {} RENAME TO {}", quote(&tmp), quote(&t.name)));
    out.extend(indexes);
    out.extend(audit::create_triggers(t, DdlDialect::Sqlite));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_schema;

    #[test]
    fn renders_both_dialects() {
        let c = parse_schema(
            "[tables.t]\ncolumns.id = { type = \"uuid\", primary_key = true, default = \"gen_random_uuid()\" }\ncolumns.tags = { type = \"text[]\", default = \"'{}'\" }\ncolumns.s = { type = \"text\", one_of = [\"a\", \"b\"] }\n",
        )
        .unwrap();
        let pg = create_table(&c.tables["t"], DdlDialect::Postgres).join(";\n");
        assert!(pg.contains("\"id\" uuid NOT NULL DEFAULT gen_random_uuid()"), "{pg}");
        assert!(pg.contains("\"tags\" text[] DEFAULT '{}'::text[]"), "{pg}");
        assert!(pg.contains("CONSTRAINT \"t_s_check\" CHECK (\"s\" IN ('a', 'b'))"), "{pg}");
        assert!(pg.contains("ENABLE ROW LEVEL SECURITY"));
        let lite = create_table(&c.tables["t"], DdlDialect::Sqlite).join(";\n");
        assert!(lite.contains("\"id\" TEXT NOT NULL DEFAULT (basalt_uuid())"), "{lite}");
        assert!(lite.contains("\"tags\" TEXT DEFAULT '[]'"), "{lite}");
    }

    #[test]
    fn policies_call_auth_functions_once_per_statement() {
        let c = parse_schema(
            "[tables.t]\nowner = \"owner\"\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.owner = { type = \"uuid\" }\n",
        )
        .unwrap();
        let sql: Vec<String> = c.tables["t"].policies.iter().map(|p| create_policy("t", p)).collect();
        assert!(!sql.is_empty() && sql.iter().all(|s| s.contains("\"owner\" = (SELECT auth.uid())")), "{sql:?}");
    }

    #[test]
    fn pg_array_literals_escape() {
        assert_eq!(pg_array_literal(&serde_json::json!(["a", "b\"c"])), "{\"a\",\"b\\\"c\"}");
    }
}
