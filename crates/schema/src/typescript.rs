//! TypeScript types for supabase-js, in the shape `supabase gen types typescript` prints, so
//! `createClient<Database>(…)` types every `.from(…)` query, insert and update, and `.rpc(…)`.

use crate::catalog::{Catalog, Column, Function, FunctionReturn, Table, AUTH_USERS};
use crate::types::ColumnType;

/// The TypeScript type of a column's values (without `| null`).
fn ts_type(ty: &ColumnType) -> &'static str {
    match ty {
        ColumnType::Boolean => "boolean",
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt | ColumnType::Numeric | ColumnType::Real | ColumnType::Double => {
            "number"
        }
        ColumnType::Jsonb => "Json",
        ColumnType::TextArray | ColumnType::UuidArray => "string[]",
        _ => "string",
    }
}

/// A type written as PostgreSQL names it (function arguments and results).
fn ts_of_pg(pg: &str) -> String {
    let pg = pg.trim();
    // `text[]` as `format_type` writes it, `_text` as the catalog names the array type.
    if let Some(inner) = pg.strip_suffix("[]").or_else(|| pg.strip_prefix('_')) {
        return format!("{}[]", ts_of_pg(inner));
    }
    match ColumnType::parse(pg) {
        Some(ColumnType::Other) | None => match pg {
            "json" => "Json".into(),
            "void" => "undefined".into(),
            "record" => "Record<string, unknown>".into(),
            _ => "string".into(),
        },
        Some(t) => ts_type(&t).to_string(),
    }
}

/// The values a `one_of` check allows, as a union of literals.
fn literal_union(table: &Table, column: &Column) -> Option<String> {
    let check = table.checks.iter().find(|c| c.column == column.name)?;
    let parts: Vec<String> = check.one_of.iter().map(|v| v.to_string()).collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

fn key(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        serde_json::Value::String(name.to_string()).to_string()
    }
}

/// Row, Insert and Update of a table: a column may be left out of an insert when it is nullable,
/// has a default, or is set by the server.
fn table_ts(catalog: &Catalog, t: &Table, out: &mut String) {
    out.push_str(&format!("      {}: {{\n", key(&t.name)));
    for (part, optional) in [("Row", None), ("Insert", Some(false)), ("Update", Some(true))] {
        out.push_str(&format!("        {part}: {{\n"));
        for c in t.columns.values() {
            let base = literal_union(t, c).unwrap_or_else(|| ts_type(&c.ty).to_string());
            let ty = if c.not_null { base } else { format!("{base} | null") };
            let opt = match optional {
                None => false,
                Some(true) => true,
                Some(false) => !c.not_null || c.default.is_some(),
            };
            out.push_str(&format!("          {}{}: {ty}\n", key(&c.name), if opt { "?" } else { "" }));
        }
        out.push_str("        }\n");
    }
    out.push_str("        Relationships: [\n");
    for fk in t.foreign_keys.iter().filter(|fk| fk.ref_table != AUTH_USERS && catalog.table(&fk.ref_table).is_some()) {
        let list = |v: &[String]| v.iter().map(|c| serde_json::Value::String(c.clone()).to_string()).collect::<Vec<_>>().join(", ");
        out.push_str(&format!(
            "          {{\n            foreignKeyName: {}\n            columns: [{}]\n            isOneToOne: {}\n            referencedRelation: {}\n            referencedColumns: [{}]\n          }},\n",
            serde_json::Value::String(fk.name.clone()),
            list(&fk.columns),
            t.is_unique_set(&fk.columns),
            serde_json::Value::String(fk.ref_table.clone()),
            list(&fk.ref_columns),
        ));
    }
    out.push_str("        ]\n      }\n");
}

fn function_ts(f: &Function, out: &mut String) {
    out.push_str(&format!("      {}: {{\n", key(&f.name)));
    if f.args.is_empty() {
        out.push_str("        Args: never\n");
    } else if f.takes_whole_body() {
        out.push_str("        Args: Json\n");
    } else {
        out.push_str("        Args: {\n");
        for a in &f.args {
            out.push_str(&format!("          {}{}: {}\n", key(&a.name), if a.has_default { "?" } else { "" }, ts_of_pg(&a.pg_type)));
        }
        out.push_str("        }\n");
    }
    let row = || {
        let fields: Vec<String> = f.result_columns.iter().map(|(n, t)| format!("{}: {}", key(n), ts_of_pg(t))).collect();
        format!("{{ {} }}", fields.join("; "))
    };
    let returns = match (f.returns, f.returns_set) {
        (FunctionReturn::Void, _) => "undefined".to_string(),
        (FunctionReturn::Composite, true) if !f.result_columns.is_empty() => format!("{}[]", row()),
        (FunctionReturn::Composite, false) if !f.result_columns.is_empty() => row(),
        (FunctionReturn::Composite, set) => format!("Json{}", if set { "[]" } else { "" }),
        (FunctionReturn::Scalar, set) => {
            let base = if f.return_type.is_empty() { "Json".to_string() } else { ts_of_pg(&f.return_type) };
            if set {
                format!("{base}[]")
            } else {
                base
            }
        }
    };
    out.push_str(&format!("        Returns: {returns}\n      }}\n"));
}

const NEVER: &str = "{\n      [_ in never]: never\n    }";

/// `export type Database = …` for the catalog's schema, with supabase's helper types.
pub fn typescript(catalog: &Catalog) -> String {
    let mut out = String::from(
        "// Generated by `basalt schema types` from the schema: do not edit.\n\n\
         export type Json =\n  | string\n  | number\n  | boolean\n  | null\n  | { [key: string]: Json | undefined }\n  | Json[]\n\n\
         export type Database = {\n  __InternalSupabase: {\n    PostgrestVersion: \"12\"\n  }\n",
    );
    out.push_str(&format!("  {}: {{\n    Tables: ", key(catalog.schema_name())));
    if catalog.tables.is_empty() {
        out.push_str(NEVER);
    } else {
        out.push_str("{\n");
        for t in catalog.tables.values() {
            table_ts(catalog, t, &mut out);
        }
        out.push_str("    }");
    }
    out.push_str(&format!("\n    Views: {NEVER}\n    Functions: "));
    if catalog.functions.is_empty() {
        out.push_str(NEVER);
    } else {
        out.push_str("{\n");
        for f in &catalog.functions {
            function_ts(f, &mut out);
        }
        out.push_str("    }");
    }
    out.push_str(&format!("\n    Enums: {NEVER}\n    CompositeTypes: {NEVER}\n  }}\n}}\n"));
    let schema = serde_json::Value::String(catalog.schema_name().to_string()).to_string();
    out.push_str(&format!(
        "\ntype PublicSchema = Database[{schema}]\n\n\
         export type Tables<T extends keyof PublicSchema[\"Tables\"]> = PublicSchema[\"Tables\"][T][\"Row\"]\n\
         export type TablesInsert<T extends keyof PublicSchema[\"Tables\"]> = PublicSchema[\"Tables\"][T][\"Insert\"]\n\
         export type TablesUpdate<T extends keyof PublicSchema[\"Tables\"]> = PublicSchema[\"Tables\"][T][\"Update\"]\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_as_supabase_types_them() {
        let schema = r#"
[tables.lists]
columns.id   = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.name = { type = "text", not_null = true }

[tables.todos]
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.list_id = { type = "uuid", references = "lists.id" }
columns.status  = { type = "text", not_null = true, default = "'open'", one_of = ["open", "closed"] }
columns.meta    = { type = "jsonb" }
columns.rank    = { type = "integer", not_null = true }
"#;
        let catalog = crate::parse_schema(schema).expect("schema");
        let ts = typescript(&catalog);
        assert!(ts.contains("export type Database = {"), "{ts}");
        assert!(ts.contains("        Row: {\n          id: string\n          list_id: string | null\n          status: \"open\" | \"closed\"\n          meta: Json | null\n          rank: number\n"), "{ts}");
        assert!(ts.contains("        Insert: {\n          id?: string\n          list_id?: string | null\n          status?: \"open\" | \"closed\"\n          meta?: Json | null\n          rank: number\n"), "{ts}");
        assert!(ts.contains("        Update: {\n          id?: string\n          list_id?: string | null\n          status?: \"open\" | \"closed\"\n          meta?: Json | null\n          rank?: number\n"), "Update: every column optional: {ts}");
        assert!(ts.contains("referencedRelation: \"lists\""), "{ts}");
        assert!(ts.contains("Functions: {\n      [_ in never]: never\n    }"), "{ts}");
    }
}
