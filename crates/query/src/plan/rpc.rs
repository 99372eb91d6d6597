//! `/rpc/{function}`: the function picked by name and argument names, each argument typed.

use basalt_schema::{Catalog, Function};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::value::Param;

/// A function call with its arguments as text parameters cast to the argument types.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcPlan {
    pub function: Function,
    /// (argument name, PostgreSQL type, value)
    pub args: Vec<(String, String, Param)>,
}

/// `body` is the JSON body (POST) or the object of query arguments (GET). An overload that
/// takes its keys by name wins; else one with a single unnamed `json`/`jsonb` argument gets
/// the body whole, as PostgREST calls it.
pub fn plan_rpc(catalog: &Catalog, name: &str, body: &Value) -> Result<RpcPlan> {
    let empty = Map::new();
    let given = body.as_object().unwrap_or(&empty);
    let names: Vec<String> = given.keys().cloned().collect();
    let named = body.is_object().then(|| catalog.function(name, &names)).flatten();
    if named.is_none() {
        if let Some(f) = catalog.whole_body_function(name) {
            let arg = &f.args[0];
            let args = vec![(String::new(), arg.pg_type.clone(), Param::Json(crate::value::json_text(body)))];
            return Ok(RpcPlan { function: f.clone(), args });
        }
        if !body.is_object() {
            return Err(Error::new(400, "PGRST102", "Empty or invalid json")
                .details(format!("the function {}.{name} takes its arguments by name, from a JSON object", catalog.schema_name())));
        }
    }
    let Some(f) = named else {
        let schema = catalog.schema_name();
        let hint = catalog.functions.iter().find(|f| f.name == name).map(|f| {
            let args: Vec<&str> = f.args.iter().map(|a| a.name.as_str()).collect();
            format!("Perhaps you meant to call the function {schema}.{name}({})", args.join(", "))
        });
        let message = if names.is_empty() {
            format!("Could not find the function {schema}.{name} without parameters in the schema cache")
        } else {
            format!("Could not find the function {schema}.{name}({}) in the schema cache", names.join(", "))
        };
        let details = if names.is_empty() {
            format!("Searched for the function {schema}.{name} without parameters or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.")
        } else {
            format!("Searched for the function {schema}.{name} with parameters {} or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.", names.join(", "))
        };
        let mut e = Error::new(404, "PGRST202", message).details(details);
        e.hint = hint;
        return Err(e);
    };
    let args = f
        .args
        .iter()
        .filter_map(|a| given.get(&a.name).map(|v| (a, v)))
        .map(|(a, v)| {
            let p = match v {
                Value::Null => Param::Null,
                Value::String(s) => Param::Text(s.clone()),
                Value::Array(items) if a.pg_type.ends_with("[]") => {
                    Param::Text(basalt_schema::ddl::pg_array_literal(&Value::Array(items.clone())))
                }
                Value::Object(_) | Value::Array(_) => Param::Json(crate::value::json_text(v)),
                other => Param::Text(other.to_string()),
            };
            (a.name.clone(), a.pg_type.clone(), p)
        })
        .collect();
    Ok(RpcPlan { function: f.clone(), args })
}

/// The catalog as a set-returning function's caller sees it: the function's result rows as a
/// table of the same name, so `select`, filters, `order` and ranges plan as for a table.
pub fn result_catalog(catalog: &Catalog, f: &Function) -> Option<Catalog> {
    if !f.returns_set || f.result_columns.is_empty() {
        return None;
    }
    let mut out = catalog.clone();
    let columns = f
        .result_columns
        .iter()
        .map(|(n, t)| {
            let ty = basalt_schema::ColumnType::parse(t).unwrap_or(basalt_schema::ColumnType::Other);
            (n.clone(), basalt_schema::Column { name: n.clone(), ty, not_null: false, default: None, description: None })
        })
        .collect();
    let mut result = basalt_schema::Table { columns, ..basalt_schema::Table::empty(&f.name) };
    // Rows of a table embed what the table embeds: its keys, its foreign keys, and the
    // foreign keys that point at it, pointed at the result too.
    // (Not when the function is named as a table, whose relationships would double.)
    let source = f.returns_table.as_deref().filter(|_| catalog.table(&f.name).is_none()).and_then(|t| catalog.table(t));
    if let Some(source) = source {
        result.primary_key = source.primary_key.clone();
        result.uniques = source.uniques.clone();
        result.foreign_keys = source.foreign_keys.clone();
        for t in out.tables.values_mut() {
            let pointing: Vec<_> = t.foreign_keys.iter().filter(|fk| fk.ref_table == source.name).cloned().collect();
            t.foreign_keys.extend(pointing.into_iter().map(|fk| basalt_schema::ForeignKey { ref_table: f.name.clone(), ..fk }));
        }
    }
    out.tables.insert(f.name.clone(), result);
    Some(out)
}
