//! Schema diff: what the database has (introspected names plus the last applied catalog)
//! against what the schema file wants, as an ordered list of migration steps.

use indexmap::IndexMap;

use crate::catalog::{Audit, Catalog, CheckConstraint, Column, ForeignKey, Index, Policy, Table, UniqueConstraint};

/// What introspection found in the database: user tables with their columns and index names.
#[derive(Debug, Clone, Default)]
pub struct DbState {
    pub tables: IndexMap<String, DbTable>,
}

#[derive(Debug, Clone, Default)]
pub struct DbTable {
    pub columns: Vec<String>,
    pub indexes: Vec<String>,
}

/// A named table constraint other than NOT NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    PrimaryKey(Vec<String>),
    Unique(UniqueConstraint),
    ForeignKey(ForeignKey),
    Check(CheckConstraint),
}

impl Constraint {
    pub fn name(&self, table: &str) -> String {
        match self {
            Constraint::PrimaryKey(_) => format!("{table}_pkey"),
            Constraint::Unique(u) => u.name.clone(),
            Constraint::ForeignKey(f) => f.name.clone(),
            Constraint::Check(c) => c.name.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MigrationStep {
    CreateTable(Table),
    DropTable(String),
    AddColumn {
        table: String,
        column: Column,
    },
    DropColumn {
        table: String,
        column: String,
    },
    AlterColumn {
        table: String,
        from: Column,
        to: Column,
    },
    AddConstraint {
        table: String,
        constraint: Constraint,
    },
    DropConstraint {
        table: String,
        name: String,
    },
    CreateIndex {
        table: String,
        index: Index,
    },
    DropIndex {
        table: String,
        name: String,
    },
    /// Row-level security policies changed (PostgreSQL recreates them; SQLite plans with them).
    ReplacePolicies {
        table: String,
        old: Vec<Policy>,
        new: Vec<Policy>,
    },
    /// The audit trail was turned on or off, or what it redacts or keys rows by changed: the
    /// table's audit triggers are recreated from the desired schema.
    ReplaceAudit {
        table: String,
        audit: Option<Audit>,
    },
}

impl MigrationStep {
    /// Steps that can lose data need `--allow-destructive`.
    pub fn is_destructive(&self) -> bool {
        match self {
            MigrationStep::DropTable(_) | MigrationStep::DropColumn { .. } => true,
            MigrationStep::AlterColumn { from, to, .. } => from.ty != to.ty,
            _ => false,
        }
    }

    pub fn table(&self) -> &str {
        match self {
            MigrationStep::CreateTable(t) => &t.name,
            MigrationStep::DropTable(t) => t,
            MigrationStep::AddColumn { table, .. }
            | MigrationStep::DropColumn { table, .. }
            | MigrationStep::AlterColumn { table, .. }
            | MigrationStep::AddConstraint { table, .. }
            | MigrationStep::DropConstraint { table, .. }
            | MigrationStep::CreateIndex { table, .. }
            | MigrationStep::DropIndex { table, .. }
            | MigrationStep::ReplacePolicies { table, .. }
            | MigrationStep::ReplaceAudit { table, .. } => table,
        }
    }

    /// One line for `migrate --dry-run` and logs.
    pub fn describe(&self) -> String {
        match self {
            MigrationStep::CreateTable(t) => format!("create table {} ({} columns)", t.name, t.columns.len()),
            MigrationStep::DropTable(t) => format!("drop table {t} (destructive)"),
            MigrationStep::AddColumn { table, column } => format!("add column {table}.{} {}", column.name, column.ty.pg_name()),
            MigrationStep::DropColumn { table, column } => format!("drop column {table}.{column} (destructive)"),
            MigrationStep::AlterColumn { table, from, to } if from.ty != to.ty => {
                format!("change type of {table}.{} from {} to {} (destructive)", to.name, from.ty.pg_name(), to.ty.pg_name())
            }
            MigrationStep::AlterColumn { table, to, .. } => format!("alter column {table}.{} (not null / default)", to.name),
            MigrationStep::AddConstraint { table, constraint } => format!("add constraint {} on {table}", constraint.name(table)),
            MigrationStep::DropConstraint { table, name } => format!("drop constraint {name} on {table}"),
            MigrationStep::CreateIndex { table, index } => format!("create index {} on {table}", index.name),
            MigrationStep::DropIndex { table, name } => format!("drop index {name} on {table}"),
            MigrationStep::ReplacePolicies { table, new, .. } => {
                format!("replace row-level security policies on {table} ({} policies)", new.len())
            }
            MigrationStep::ReplaceAudit { table, audit: Some(_) } => format!("audit changes to {table}"),
            MigrationStep::ReplaceAudit { table, audit: None } => format!("stop auditing {table}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationPlan {
    pub steps: Vec<MigrationStep>,
}

impl MigrationPlan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn destructive_steps(&self) -> Vec<&MigrationStep> {
        self.steps.iter().filter(|s| s.is_destructive()).collect()
    }
}

fn constraints(t: &Table) -> Vec<Constraint> {
    let mut out = vec![Constraint::PrimaryKey(t.primary_key.clone())];
    out.extend(t.uniques.iter().cloned().map(Constraint::Unique));
    out.extend(t.foreign_keys.iter().cloned().map(Constraint::ForeignKey));
    out.extend(t.checks.iter().cloned().map(Constraint::Check));
    out
}

/// Plans the steps that take the database from `db` (last applied catalog: `previous`) to `desired`.
/// Tables created in dependency order so foreign keys always point at existing tables.
pub fn diff(db: &DbState, previous: Option<&Catalog>, desired: &Catalog) -> MigrationPlan {
    let mut steps = Vec::new();
    let mut created = Vec::new();
    for table in creation_order(desired) {
        let Some(existing) = db.tables.get(&table.name) else {
            created.push(table.name.clone());
            steps.push(MigrationStep::CreateTable(table.clone()));
            continue;
        };
        let before = previous.and_then(|p| p.tables.get(&table.name));
        diff_table(&mut steps, existing, before, table);
    }
    if let Some(prev) = previous {
        for name in prev.tables.keys() {
            if !desired.tables.contains_key(name) && db.tables.contains_key(name) {
                steps.push(MigrationStep::DropTable(name.clone()));
            }
        }
    }
    MigrationPlan { steps }
}

fn diff_table(steps: &mut Vec<MigrationStep>, db: &DbTable, before: Option<&Table>, want: &Table) {
    let name = &want.name;
    let before_constraints = before.map(constraints).unwrap_or_default();
    let want_constraints = constraints(want);
    // Constraints that change are dropped first, so column changes below them are free to happen.
    if before.is_some() {
        for c in &before_constraints {
            if !want_constraints.contains(c) {
                steps.push(MigrationStep::DropConstraint { table: name.clone(), name: c.name(name) });
            }
        }
    }
    for col in want.columns.values() {
        if !db.columns.contains(&col.name) {
            steps.push(MigrationStep::AddColumn { table: name.clone(), column: col.clone() });
        } else if let Some(old) = before.and_then(|b| b.columns.get(&col.name)) {
            if old.ty != col.ty || old.not_null != col.not_null || old.default != col.default {
                steps.push(MigrationStep::AlterColumn { table: name.clone(), from: old.clone(), to: col.clone() });
            }
        }
    }
    for col in &db.columns {
        if !want.columns.contains_key(col) {
            steps.push(MigrationStep::DropColumn { table: name.clone(), column: col.clone() });
        }
    }
    if before.is_some() {
        for c in &want_constraints {
            if !before_constraints.contains(c) {
                steps.push(MigrationStep::AddConstraint { table: name.clone(), constraint: c.clone() });
            }
        }
    }
    for idx in &want.indexes {
        let same = before.and_then(|b| b.indexes.iter().find(|i| i.name == idx.name));
        match same {
            Some(old) if old != idx => {
                steps.push(MigrationStep::DropIndex { table: name.clone(), name: idx.name.clone() });
                steps.push(MigrationStep::CreateIndex { table: name.clone(), index: idx.clone() });
            }
            _ if !db.indexes.contains(&idx.name) => steps.push(MigrationStep::CreateIndex { table: name.clone(), index: idx.clone() }),
            _ => {}
        }
    }
    match before {
        Some(b) if b.policies != want.policies => {
            steps.push(MigrationStep::ReplacePolicies { table: name.clone(), old: b.policies.clone(), new: want.policies.clone() });
        }
        // A table that exists but was not created by Basalt gets the schema's policies too.
        None if !want.policies.is_empty() => {
            steps.push(MigrationStep::ReplacePolicies { table: name.clone(), old: Vec::new(), new: want.policies.clone() });
        }
        _ => {}
    }
    let audited_before = before.and_then(|b| b.audit.as_ref());
    let keys_changed = before.is_some_and(|b| b.primary_key != want.primary_key);
    if audited_before != want.audit.as_ref() || (want.audit.is_some() && keys_changed) {
        steps.push(MigrationStep::ReplaceAudit { table: name.clone(), audit: want.audit.clone() });
    }
    if let Some(b) = before {
        for idx in &b.indexes {
            if !want.indexes.iter().any(|i| i.name == idx.name) && db.indexes.contains(&idx.name) {
                steps.push(MigrationStep::DropIndex { table: name.clone(), name: idx.name.clone() });
            }
        }
    }
}

/// Referenced tables first (a table referencing itself is fine; cycles keep file order).
fn creation_order(c: &Catalog) -> Vec<&Table> {
    let mut out: Vec<&Table> = Vec::new();
    let mut pending: Vec<&Table> = c.tables.values().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|t| {
            let ready = t
                .foreign_keys
                .iter()
                .all(|fk| fk.ref_table == t.name || !c.tables.contains_key(&fk.ref_table) || out.iter().any(|o| o.name == fk.ref_table));
            if ready {
                out.push(t);
            }
            !ready
        });
        if pending.len() == before {
            out.append(&mut pending);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_schema;

    fn state(c: &Catalog) -> DbState {
        DbState {
            tables: c
                .tables
                .values()
                .map(|t| {
                    (
                        t.name.clone(),
                        DbTable {
                            columns: t.columns.keys().cloned().collect(),
                            indexes: t.indexes.iter().map(|i| i.name.clone()).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    const V1: &str = "[tables.b]\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.a_id = { type = \"uuid\", references = \"a.id\" }\n[tables.a]\ncolumns.id = { type = \"uuid\", primary_key = true }\n";

    #[test]
    fn creates_referenced_tables_first() {
        let want = parse_schema(V1).unwrap();
        let plan = diff(&DbState::default(), None, &want);
        let names: Vec<_> = plan.steps.iter().map(|s| s.table().to_string()).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn same_schema_is_a_no_op() {
        let want = parse_schema(V1).unwrap();
        assert!(diff(&state(&want), Some(&want), &want).is_empty());
    }

    #[test]
    fn adds_columns_and_indexes_and_flags_drops() {
        let v1 = parse_schema(V1).unwrap();
        let v2 = parse_schema(&V1.replace(
            "[tables.a]\ncolumns.id = { type = \"uuid\", primary_key = true }\n",
            "[tables.a]\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.n = { type = \"text\" }\nindexes = [{ columns = [\"n\"] }]\n",
        ))
        .unwrap();
        let plan = diff(&state(&v1), Some(&v1), &v2);
        assert_eq!(plan.steps.len(), 2, "{plan:?}");
        assert!(plan.destructive_steps().is_empty());
        let back = diff(&state(&v2), Some(&v2), &v1);
        assert_eq!(back.destructive_steps().len(), 1, "{back:?}");
    }

    #[test]
    fn turning_the_audit_trail_on_and_off() {
        let v1 = parse_schema(V1).unwrap();
        let v2 = parse_schema(&V1.replace("[tables.a]\n", "[tables.a]\naudit = true\n")).unwrap();
        let on = diff(&state(&v1), Some(&v1), &v2);
        assert_eq!(on.steps, vec![MigrationStep::ReplaceAudit { table: "a".into(), audit: Some(Audit::default()) }]);
        let off = diff(&state(&v2), Some(&v2), &v1);
        assert_eq!(off.steps, vec![MigrationStep::ReplaceAudit { table: "a".into(), audit: None }]);
        assert!(diff(&state(&v2), Some(&v2), &v2).is_empty());
    }

    #[test]
    fn type_change_is_destructive() {
        let v1 = parse_schema(V1).unwrap();
        let mut v2 = v1.clone();
        v2.tables["a"].columns.insert("id".into(), Column { ty: crate::ColumnType::Text, ..v1.tables["a"].columns["id"].clone() });
        let plan = diff(&state(&v1), Some(&v1), &v2);
        assert!(plan.steps.iter().any(|s| s.is_destructive()));
    }
}
