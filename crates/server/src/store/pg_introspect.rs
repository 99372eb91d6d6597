//! Builds a catalog from an existing PostgreSQL database (tables, views, columns, keys,
//! comments, functions), as PostgREST builds its schema cache, for `--schema-source postgres`
//! and for `/rpc` next to a schema file.

use basalt_schema::{Catalog, Column, ColumnType, ForeignKey, Function, FunctionArg, FunctionReturn, OnDelete, Table, UniqueConstraint};
use indexmap::IndexMap;
use tokio_postgres::GenericClient;

const TABLES: &str =
    "SELECT c.relname::text, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') AND c.relname NOT LIKE '\\_basalt%' ORDER BY c.relname";

const COLUMNS: &str = "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef, \
    col_description(c.oid, a.attnum), pg_get_expr(d.adbin, d.adrelid) \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
    WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY c.relname, a.attnum";

const CONSTRAINTS: &str = "SELECT c.relname::text, con.conname::text, con.contype::text, \
    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o), \
    coalesce(fn.nspname::text, ''), coalesce(fc.relname::text, ''), \
    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o), \
    con.confdeltype::text \
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_class fc ON fc.oid = con.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
    WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f') ORDER BY c.relname, con.conname";

const FUNCTIONS: &str = "SELECT p.proname::text, p.proretset, p.provolatile::text, t.typtype::text, t.typname::text, \
    coalesce(p.proargnames, '{}'::text[]), coalesce(p.proargmodes::text[], '{}'::text[]), \
    ARRAY(SELECT format_type(x, NULL) FROM unnest(p.proargtypes) WITH ORDINALITY u(x, o) ORDER BY o), p.pronargdefaults, \
    ARRAY(SELECT format_type(x, NULL) FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) WITH ORDINALITY u(x, o) ORDER BY o), \
    ARRAY(SELECT a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
          WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), \
    (SELECT c.relname::text FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
          AND c.relnamespace = p.pronamespace) \
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_type t ON t.oid = p.prorettype \
    WHERE n.nspname = $1 AND p.prokind = 'f' ORDER BY p.proname";

/// Tables, views and functions of one schema.
pub async fn catalog(client: &impl GenericClient, schema: &str) -> Result<Catalog, tokio_postgres::Error> {
    let mut tables: IndexMap<String, Table> = IndexMap::new();
    for r in client.query(TABLES, &[&schema]).await? {
        let name: String = r.get(0);
        tables.insert(name.clone(), Table { description: r.get(1), ..Table::empty(&name) });
    }
    for r in client.query(COLUMNS, &[&schema]).await? {
        let (table, name, ty): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let ty = ColumnType::parse(&ty).unwrap_or(ColumnType::Other);
        if let Some(t) = tables.get_mut(&table) {
            // The database's own default, spelled out where `Prefer: missing=default` needs it.
            let default = r.get::<_, Option<String>>(6).map(basalt_schema::DefaultExpr::Database);
            t.columns.insert(name.clone(), Column { name, ty, not_null: r.get(3), default, description: r.get(5) });
        }
    }
    for r in client.query(CONSTRAINTS, &[&schema]).await? {
        let (table, name, kind, cols): (String, String, String, Vec<String>) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let (ref_schema, ref_table, ref_cols, on_delete): (String, String, Vec<String>, String) = (r.get(4), r.get(5), r.get(6), r.get(7));
        let Some(t) = tables.get_mut(&table) else { continue };
        match kind.as_str() {
            "p" => t.primary_key = cols,
            "u" => t.uniques.push(UniqueConstraint { name, columns: cols }),
            "f" if ref_schema == schema || (ref_schema == "auth" && ref_table == "users") => {
                let ref_table = if ref_schema == "auth" { basalt_schema::AUTH_USERS.to_string() } else { ref_table };
                let on_delete = match on_delete.as_str() {
                    "c" => OnDelete::Cascade,
                    "n" => OnDelete::SetNull,
                    "r" => OnDelete::Restrict,
                    _ => OnDelete::NoAction,
                };
                t.foreign_keys.push(ForeignKey { name, columns: cols, ref_table, ref_columns: ref_cols, on_delete });
            }
            _ => {}
        }
    }
    Ok(Catalog { schema: Some(schema.to_string()), tables, functions: functions(client, schema).await? })
}

/// Functions of one schema, for `/rpc`.
pub async fn functions(client: &impl GenericClient, schema: &str) -> Result<Vec<Function>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for r in client.query(FUNCTIONS, &[&schema]).await? {
        let (name, returns_set, volatility, typtype, typname): (String, bool, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let (names, modes, types, n_defaults): (Vec<String>, Vec<String>, Vec<String>, i16) = (r.get(5), r.get(6), r.get(7), r.get(8));
        let (all_types, row_type): (Vec<String>, Vec<String>) = (r.get(9), r.get(10));
        // Result columns: OUT/TABLE arguments, else the columns of a composite return type.
        let mut result_columns: Vec<(String, String)> = modes
            .iter()
            .zip(names.iter())
            .zip(all_types.iter())
            .filter(|((m, _), _)| matches!(m.as_str(), "o" | "b" | "t"))
            .map(|((_, n), t)| (n.clone(), t.clone()))
            .collect();
        if result_columns.is_empty() {
            result_columns = row_type.iter().filter_map(|c| c.split_once(' ').map(|(n, t)| (n.to_string(), t.to_string()))).collect();
        }
        // Input arguments only: modes i (in), b (inout), v (variadic); no modes means all in.
        let input_names: Vec<String> = if modes.is_empty() {
            names.iter().take(types.len()).cloned().collect()
        } else {
            names.iter().zip(modes.iter()).filter(|(_, m)| matches!(m.as_str(), "i" | "b" | "v")).map(|(n, _)| n.clone()).collect()
        };
        // One unnamed json/jsonb argument takes the whole body; other unnamed arguments
        // cannot be passed by name.
        let whole_body = types.len() == 1 && input_names.iter().all(String::is_empty) && matches!(types[0].as_str(), "json" | "jsonb");
        let input_names = if whole_body { vec![String::new()] } else { input_names };
        if !whole_body && (input_names.len() != types.len() || input_names.iter().any(String::is_empty)) {
            continue;
        }
        let first_default = types.len().saturating_sub(n_defaults.max(0) as usize);
        let args = input_names
            .into_iter()
            .zip(types)
            .enumerate()
            .map(|(i, (name, pg_type))| FunctionArg { name, pg_type, has_default: i >= first_default })
            .collect();
        let returns = if typname == "void" {
            FunctionReturn::Void
        } else if typtype == "c" || typname == "record" {
            FunctionReturn::Composite
        } else {
            FunctionReturn::Scalar
        };
        out.push(Function {
            schema: Some(schema.to_string()),
            name,
            args,
            returns_set,
            returns,
            volatile: volatility == "v",
            result_columns,
            returns_table: r.get(11),
            return_type: typname.clone(),
        });
    }
    Ok(out)
}
