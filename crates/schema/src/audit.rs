//! Audit-trail triggers per dialect: every insert, update and delete on an audited table writes
//! one row to the hash-chained log in the same transaction as the change, whatever path made it.
//! The log tables and PostgreSQL's trigger function are created by the server at start-up;
//! these are the per-table parts, derived from the schema so they follow its columns.

use crate::catalog::Table;
use crate::ddl::{pg_array_literal, table_sql, DdlDialect};
use crate::ident::{literal, quote};
use crate::types::ColumnType;

/// The log's columns, in the order the chain hashes them (after the previous hash).
pub const FIELDS: [&str; 13] = [
    "id",
    "at",
    "table_name",
    "op",
    "row_id",
    "old_row",
    "new_row",
    "actor_id",
    "actor_role",
    "api_key_id",
    "ip",
    "user_agent",
    "request_id",
];

const OPS: [(&str, &str); 3] = [("insert", "INSERT"), ("update", "UPDATE"), ("delete", "DELETE")];

/// Statements that create the table's audit triggers (none when it is not audited).
pub fn create_triggers(t: &Table, dialect: DdlDialect) -> Vec<String> {
    let Some(audit) = &t.audit else { return Vec::new() };
    match dialect {
        DdlDialect::Postgres => {
            let pk = serde_json::Value::from(t.primary_key.clone());
            let redact = serde_json::Value::from(audit.redact.clone());
            vec![format!(
                "CREATE TRIGGER basalt_audit AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION basalt.audit_record({}, {})",
                table_sql(&t.name, DdlDialect::Postgres),
                literal(&pg_array_literal(&pk)),
                literal(&pg_array_literal(&redact))
            )]
        }
        DdlDialect::Sqlite => OPS.iter().map(|(suffix, op)| sqlite_trigger(t, &audit.redact, suffix, op)).collect(),
    }
}

/// Statements that drop the table's audit triggers, if it has them.
pub fn drop_triggers(table: &str, dialect: DdlDialect) -> Vec<String> {
    match dialect {
        DdlDialect::Postgres => vec![format!("DROP TRIGGER IF EXISTS basalt_audit ON {}", table_sql(table, DdlDialect::Postgres))],
        DdlDialect::Sqlite => {
            OPS.iter().map(|(suffix, _)| format!("DROP TRIGGER IF EXISTS {}", quote(&trigger_name(table, suffix)))).collect()
        }
    }
}

fn trigger_name(table: &str, suffix: &str) -> String {
    format!("basalt_audit_{}_{suffix}", table.replace('.', "_"))
}

/// SQLite has no procedural triggers: the row is built by one INSERT ... SELECT over the chain
/// head, and the head moves on in a second statement. `basalt_audit_hash` and
/// `basalt_audit_context` are functions the server registers on every connection.
fn sqlite_trigger(t: &Table, redact: &[String], suffix: &str, op: &str) -> String {
    let image = |row: &str| {
        let parts: Vec<String> = t
            .columns
            .values()
            .map(|c| {
                let v = format!("{row}.{}", quote(&c.name));
                let value = if redact.contains(&c.name) {
                    format!("CASE WHEN {v} IS NULL THEN NULL ELSE '[redacted]' END")
                } else if c.ty == ColumnType::Boolean {
                    format!("CASE WHEN {v} IS NULL THEN NULL WHEN {v} THEN json('true') ELSE json('false') END")
                } else if c.ty.is_json_like() {
                    format!("basalt_json({v})")
                } else {
                    v
                };
                format!("{}, {value}", literal(&c.name))
            })
            .collect();
        format!("json_object({})", parts.join(", "))
    };
    let row = if op == "DELETE" { "OLD" } else { "NEW" };
    let row_id = match t.primary_key.as_slice() {
        [one] => format!("CAST({row}.{} AS TEXT)", quote(one)),
        many => format!("json_array({})", many.iter().map(|c| format!("{row}.{}", quote(c))).collect::<Vec<_>>().join(", ")),
    };
    let old = if op == "INSERT" { "NULL".to_string() } else { image("OLD") };
    let new = if op == "DELETE" { "NULL".to_string() } else { image("NEW") };
    let table = literal(&t.name);
    format!(
        "CREATE TRIGGER {name} AFTER {op} ON {tbl} BEGIN \
         INSERT INTO basalt_audit_log (id, at, table_name, op, row_id, old_row, new_row, actor_id, actor_role, api_key_id, ip, user_agent, request_id, prev_hash, hash) \
         SELECT h.seq + 1, e.at, {table}, '{op}', e.row_id, e.old_row, e.new_row, e.actor_id, e.actor_role, e.api_key_id, e.ip, e.user_agent, e.request_id, h.hash, \
         basalt_audit_hash(h.hash, h.seq + 1, e.at, {table}, '{op}', e.row_id, e.old_row, e.new_row, e.actor_id, e.actor_role, e.api_key_id, e.ip, e.user_agent, e.request_id) \
         FROM basalt_audit_head h, (SELECT basalt_now() AS at, {row_id} AS row_id, {old} AS old_row, {new} AS new_row, \
         basalt_audit_context(0) AS actor_id, basalt_audit_context(1) AS actor_role, basalt_audit_context(2) AS api_key_id, \
         basalt_audit_context(3) AS ip, basalt_audit_context(4) AS user_agent, basalt_audit_context(5) AS request_id) e; \
         UPDATE basalt_audit_head SET seq = seq + 1, hash = (SELECT l.hash FROM basalt_audit_log l WHERE l.id = basalt_audit_head.seq + 1); \
         END",
        name = quote(&trigger_name(&t.name, suffix)),
        tbl = table_sql(&t.name, DdlDialect::Sqlite),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_schema;

    const SCHEMA: &str = "[tables.keys]\naudit = { redact = [\"secret\"] }\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.secret = { type = \"text\" }\ncolumns.on = { type = \"boolean\" }\ncolumns.meta = { type = \"jsonb\" }\n";

    #[test]
    fn postgres_passes_keys_and_redactions_to_the_function() {
        let c = parse_schema(SCHEMA).unwrap();
        let sql = create_triggers(&c.tables["keys"], DdlDialect::Postgres);
        assert_eq!(sql.len(), 1);
        assert!(sql[0].contains("basalt.audit_record('{\"id\"}', '{\"secret\"}')"), "{}", sql[0]);
    }

    #[test]
    fn sqlite_redacts_and_keeps_json_types() {
        let c = parse_schema(SCHEMA).unwrap();
        let sql = create_triggers(&c.tables["keys"], DdlDialect::Sqlite);
        assert_eq!(sql.len(), 3);
        assert!(sql[0].contains("AFTER INSERT") && sql[0].contains("NULL AS old_row"), "{}", sql[0]);
        assert!(sql[0].contains("'secret', CASE WHEN NEW.\"secret\" IS NULL THEN NULL ELSE '[redacted]' END"), "{}", sql[0]);
        assert!(sql[0].contains("basalt_json(NEW.\"meta\")"), "{}", sql[0]);
        assert!(sql[2].contains("CAST(OLD.\"id\" AS TEXT)") && sql[2].contains("NULL AS new_row"), "{}", sql[2]);
    }

    #[test]
    fn basalt_table_names_are_reserved() {
        for name in ["basalt_audit_log", "_basalt_x", "auth_users"] {
            let schema = format!("[tables.{name}]\ncolumns.id = {{ type = \"uuid\", primary_key = true }}\n");
            assert!(parse_schema(&schema).is_err(), "{name}");
        }
    }

    #[test]
    fn unaudited_tables_have_no_triggers() {
        let c = parse_schema("[tables.t]\ncolumns.id = { type = \"uuid\", primary_key = true }\n").unwrap();
        assert!(create_triggers(&c.tables["t"], DdlDialect::Sqlite).is_empty());
        assert!(parse_schema(&SCHEMA.replace("\"secret\"]", "\"id\"]")).is_err(), "a redacted primary key is refused");
    }
}
