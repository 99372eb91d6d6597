//! Turns a parsed schema file into a validated catalog, naming table, column and line on error.

use indexmap::IndexMap;

use crate::catalog::*;
use crate::default::DefaultExpr;
use crate::error::{Result, SchemaError};
use crate::file::{AuditDef, ColumnDef, SchemaFile, TableDef};
use crate::ident;
use crate::types::ColumnType;

pub fn build(source: &str) -> Result<Catalog> {
    let file: SchemaFile = toml::from_str(source).map_err(|e| {
        let line = e.span().map(|s| line_of(source, s.start));
        SchemaError::at(e.message().trim().to_string(), line)
    })?;
    let mut catalog = Catalog::default();
    for (name, def) in &file.tables {
        let line = Some(line_of(source, def.span().start));
        let table = build_table(source, name, def.get_ref(), line)?;
        catalog.tables.insert(name.clone(), table);
    }
    resolve_foreign_keys(source, &file, &mut catalog)?;
    check_policy_tables(&catalog)?;
    Ok(catalog)
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

fn err(table: &str, column: Option<&str>, line: Option<usize>, msg: impl std::fmt::Display) -> SchemaError {
    let place = match column {
        Some(c) => format!("table {table}, column {c}"),
        None => format!("table {table}"),
    };
    SchemaError::at(format!("{place}: {msg}"), line)
}

fn build_table(source: &str, name: &str, def: &TableDef, line: Option<usize>) -> Result<Table> {
    if !ident::is_valid(name) || name.starts_with("_basalt") || name.starts_with("basalt_") || name.starts_with("auth_") {
        return Err(err(name, None, line, "table names are lowercase snake_case, not starting with _basalt, basalt_ or auth_ (reserved)"));
    }
    if def.columns.is_empty() {
        return Err(err(name, None, line, "a table needs at least one column"));
    }
    let mut columns = IndexMap::new();
    let mut primary_key = Vec::new();
    let mut uniques = Vec::new();
    let mut checks = Vec::new();
    for (col_name, cdef) in &def.columns {
        let cline = Some(line_of(source, cdef.span().start));
        let cdef = cdef.get_ref();
        let col = build_column(name, col_name, cdef, cline)?;
        if cdef.primary_key {
            primary_key.push(col_name.clone());
        }
        if cdef.unique && !cdef.primary_key {
            uniques.push(UniqueConstraint { name: format!("{name}_{col_name}_key"), columns: vec![col_name.clone()] });
        }
        if let Some(values) = &cdef.one_of {
            checks.push(build_check(name, &col, values, cline)?);
        }
        columns.insert(col_name.clone(), col);
    }
    if def.timestamps {
        for ts in ["created_at", "updated_at"] {
            columns.entry(ts.to_string()).or_insert_with(|| Column {
                name: ts.to_string(),
                ty: ColumnType::Timestamptz,
                not_null: true,
                default: Some(DefaultExpr::Now),
                description: None,
            });
        }
    }
    if primary_key.is_empty() {
        return Err(err(name, None, line, "no primary key: mark a column with primary_key = true"));
    }
    for pk in &primary_key {
        if let Some(c) = columns.get_mut(pk) {
            c.not_null = true;
        }
    }
    for set in &def.unique {
        for c in set {
            if !columns.contains_key(c) {
                return Err(err(name, Some(c), line, "unique names a column the table does not have"));
            }
        }
        if set.is_empty() {
            return Err(err(name, None, line, "an empty unique constraint"));
        }
        uniques.push(UniqueConstraint { name: format!("{name}_{}_key", set.join("_")), columns: set.clone() });
    }
    let indexes = build_indexes(source, name, def, &columns)?;
    if let Some(owner) = &def.owner {
        match columns.get(owner) {
            Some(c) if c.ty == ColumnType::Uuid => {}
            Some(_) => return Err(err(name, Some(owner), line, "the owner column must be of type uuid")),
            None => return Err(err(name, Some(owner), line, "owner names a column the table does not have")),
        }
    }
    let mut policies = Vec::new();
    if let Some(owner) = &def.owner {
        let own = crate::policy::parse(&format!("{owner} = auth.uid()")).map_err(|e| err(name, Some(owner), line, e))?;
        policies.push(Policy {
            name: format!("{name}: owner {owner} has all access"),
            command: "all".into(),
            roles: vec!["authenticated".into()],
            using: Some(own.clone()),
            with_check: Some(own),
        });
    }
    for p in &def.policies {
        let pline = Some(line_of(source, p.span().start));
        policies.push(build_policy(name, &columns, p.get_ref(), pline)?);
    }
    let on_signup = match &def.on_signup {
        None => Vec::new(),
        Some(map) => {
            let hline = Some(line_of(source, map.span().start));
            let mut out = Vec::new();
            for (col, src) in map.get_ref() {
                if !columns.contains_key(col) {
                    return Err(err(name, Some(col), hline, "on_signup names a column the table does not have"));
                }
                let ok = matches!(src.as_str(), "id" | "email" | "phone")
                    || src.strip_prefix("user_metadata.").or_else(|| src.strip_prefix("app_metadata.")).is_some_and(|k| !k.is_empty());
                if !ok {
                    return Err(err(
                        name,
                        Some(col),
                        hline,
                        format!("on_signup value \"{src}\" is not id, email, phone, user_metadata.<key> or app_metadata.<key>"),
                    ));
                }
                out.push((col.clone(), src.clone()));
            }
            out
        }
    };
    let audit = match &def.audit {
        Some(a) if !matches!(a.get_ref(), AuditDef::On(false)) => {
            let aline = Some(line_of(source, a.span().start));
            let redact = match a.get_ref() {
                AuditDef::With(o) => o.redact.clone(),
                AuditDef::On(_) => Vec::new(),
            };
            for col in &redact {
                if !columns.contains_key(col) {
                    return Err(err(name, Some(col), aline, "audit.redact names a column the table does not have"));
                }
                if primary_key.contains(col) {
                    return Err(err(
                        name,
                        Some(col),
                        aline,
                        "audit.redact cannot name a primary key column: the log identifies rows by it",
                    ));
                }
            }
            Some(Audit { redact })
        }
        _ => None,
    };
    let maintains_updated_at = columns.get("updated_at").is_some_and(|c| c.ty == ColumnType::Timestamptz);
    let foreign_keys = Vec::new();
    Ok(Table {
        name: name.to_string(),
        description: def.description.clone(),
        columns,
        primary_key,
        uniques,
        foreign_keys,
        checks,
        indexes,
        maintains_updated_at,
        owner: def.owner.clone(),
        policies,
        on_signup,
        audit,
    })
}

fn build_policy(table: &str, columns: &IndexMap<String, Column>, p: &crate::file::PolicyDef, line: Option<usize>) -> Result<Policy> {
    let command = p.command.to_ascii_lowercase();
    if !["select", "insert", "update", "delete", "all"].contains(&command.as_str()) {
        return Err(err(table, None, line, format!("policy \"{}\": command is select, insert, update, delete or all", p.name)));
    }
    for r in &p.roles {
        if !["anon", "authenticated", "public"].contains(&r.as_str()) {
            return Err(err(table, None, line, format!("policy \"{}\": role {r} is not anon, authenticated or public", p.name)));
        }
    }
    let parse = |src: &Option<String>, what: &str| -> Result<Option<crate::policy::Expr>> {
        match src {
            None => Ok(None),
            Some(s) => crate::policy::parse(s).map(Some).map_err(|e| err(table, None, line, format!("policy \"{}\" {what}: {e}", p.name))),
        }
    };
    let using = parse(&p.using, "using")?;
    let with_check = parse(&p.with_check, "with_check")?;
    if using.is_none() && with_check.is_none() {
        return Err(err(table, None, line, format!("policy \"{}\" needs using or with_check", p.name)));
    }
    if command == "insert" && using.is_some() {
        return Err(err(table, None, line, format!("policy \"{}\": an insert policy takes with_check only", p.name)));
    }
    if command == "select" && with_check.is_some() || command == "delete" && with_check.is_some() {
        return Err(err(table, None, line, format!("policy \"{}\": a {command} policy takes using only", p.name)));
    }
    for e in [&using, &with_check].into_iter().flatten() {
        let mut cols = Vec::new();
        crate::policy::columns(e, &mut cols, None);
        for (qual, col, scope) in cols {
            let own_table = qual.as_deref().is_none_or(|q| q == table) && scope.is_none();
            if own_table && !columns.contains_key(&col) {
                return Err(err(table, Some(&col), line, format!("policy \"{}\" names a column the table does not have", p.name)));
            }
        }
    }
    Ok(Policy {
        name: p.name.clone(),
        command,
        roles: if p.roles.is_empty() { vec!["anon".into(), "authenticated".into()] } else { p.roles.clone() },
        using,
        with_check,
    })
}

fn build_column(table: &str, name: &str, def: &ColumnDef, line: Option<usize>) -> Result<Column> {
    if !ident::is_valid(name) {
        return Err(err(table, Some(name), line, "column names are lowercase snake_case"));
    }
    let ty = ColumnType::parse(&def.ty)
        .ok_or_else(|| err(table, Some(name), line, format!("unknown type \"{}\" (see docs/schema.md for the supported types)", def.ty)))?;
    let default = match &def.default {
        None => None,
        Some(raw) => Some(DefaultExpr::parse(raw, ty).map_err(|m| err(table, Some(name), line, m))?),
    };
    if def.on_delete.is_some() && def.references.is_none() {
        return Err(err(table, Some(name), line, "on_delete needs references"));
    }
    Ok(Column { name: name.to_string(), ty, not_null: def.not_null || def.primary_key, default, description: def.description.clone() })
}

fn build_check(table: &str, col: &Column, values: &[toml::Value], line: Option<usize>) -> Result<CheckConstraint> {
    if values.is_empty() {
        return Err(err(table, Some(&col.name), line, "one_of needs at least one value"));
    }
    let one_of = values
        .iter()
        .map(|v| match (v, col.ty) {
            (toml::Value::String(s), t) if t.is_textual() => Ok(serde_json::Value::from(s.clone())),
            (toml::Value::Integer(i), t) if t.is_numeric() => Ok(serde_json::Value::from(*i)),
            (toml::Value::Float(f), t) if t.is_numeric() => Ok(serde_json::Value::from(*f)),
            _ => Err(err(table, Some(&col.name), line, format!("one_of value {v} does not fit type {}", col.ty.pg_name()))),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CheckConstraint { name: format!("{table}_{}_check", col.name), column: col.name.clone(), one_of })
}

fn build_indexes(source: &str, table: &str, def: &TableDef, columns: &IndexMap<String, Column>) -> Result<Vec<Index>> {
    let mut out = Vec::new();
    for idx in &def.indexes {
        let line = Some(line_of(source, idx.span().start));
        let idx = idx.get_ref();
        if idx.columns.is_empty() {
            return Err(err(table, None, line, "an index needs columns"));
        }
        let mut cols = Vec::new();
        for raw in &idx.columns {
            let mut parts = raw.split_whitespace();
            let col = parts.next().unwrap_or_default();
            let desc = match parts.next().map(|s| s.to_ascii_lowercase()) {
                None => false,
                Some(d) if d == "desc" => true,
                Some(d) if d == "asc" => false,
                Some(d) => return Err(err(table, Some(col), line, format!("index direction is asc or desc, not {d}"))),
            };
            if !columns.contains_key(col) {
                return Err(err(table, Some(col), line, "the index names a column the table does not have"));
            }
            cols.push((col.to_string(), desc));
        }
        let name = match &idx.name {
            Some(n) if ident::is_valid(n) => n.clone(),
            Some(n) => return Err(err(table, None, line, format!("index name {n} is not lowercase snake_case"))),
            None => format!("{table}_{}_idx", cols.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join("_")),
        };
        if out.iter().any(|i: &Index| i.name == name) {
            return Err(err(table, None, line, format!("two indexes are named {name}; give one a name")));
        }
        out.push(Index { name, columns: cols, unique: idx.unique });
    }
    Ok(out)
}

/// Tables named in `exists (...)` must exist, and columns qualified by them must be theirs.
fn check_policy_tables(catalog: &Catalog) -> Result<()> {
    fn walk(e: &crate::policy::Expr, catalog: &Catalog, table: &str, policy: &str) -> Result<()> {
        use crate::policy::Expr;
        match e {
            Expr::Or(v) | Expr::And(v) => v.iter().try_for_each(|x| walk(x, catalog, table, policy)),
            Expr::Not(x) => walk(x, catalog, table, policy),
            Expr::Exists { table: t, cond } => {
                let inner = catalog
                    .table(t)
                    .ok_or_else(|| err(table, None, None, format!("policy \"{policy}\": exists names unknown table {t}")))?;
                let mut cols = Vec::new();
                crate::policy::columns(cond, &mut cols, Some(t));
                for (qual, col, _) in cols {
                    let owner = match qual.as_deref() {
                        Some(q) if q == t => Some(inner),
                        Some(q) if q == table => catalog.table(table),
                        Some(q) => {
                            return Err(err(table, None, None, format!("policy \"{policy}\": {q}.{col} names a table outside the policy")))
                        }
                        None => None,
                    };
                    let known = match owner {
                        Some(o) => o.column(&col).is_some(),
                        None => inner.column(&col).is_some() || catalog.table(table).is_some_and(|o| o.column(&col).is_some()),
                    };
                    if !known {
                        return Err(err(table, Some(&col), None, format!("policy \"{policy}\": unknown column in exists")));
                    }
                }
                walk(cond, catalog, table, policy)
            }
            _ => Ok(()),
        }
    }
    for t in catalog.tables.values() {
        let mut seen = Vec::new();
        for p in &t.policies {
            if seen.contains(&&p.name) {
                return Err(err(&t.name, None, None, format!("two policies are named \"{}\"", p.name)));
            }
            seen.push(&p.name);
            for e in [&p.using, &p.with_check].into_iter().flatten() {
                walk(e, catalog, &t.name, &p.name)?;
            }
        }
    }
    Ok(())
}

fn parse_on_delete(t: &str, c: &str, raw: Option<&str>, line: Option<usize>) -> Result<OnDelete> {
    match raw.map(|s| s.to_ascii_lowercase().replace('_', " ")) {
        None => Ok(OnDelete::NoAction),
        Some(s) => match s.as_str() {
            "cascade" => Ok(OnDelete::Cascade),
            "set null" => Ok(OnDelete::SetNull),
            "restrict" => Ok(OnDelete::Restrict),
            "no action" => Ok(OnDelete::NoAction),
            _ => Err(err(t, Some(c), line, format!("on_delete is cascade, set null, restrict or no action, not {s}"))),
        },
    }
}

/// Foreign keys need every table first, so they are resolved in a second pass.
fn resolve_foreign_keys(source: &str, file: &SchemaFile, catalog: &mut Catalog) -> Result<()> {
    for (tname, def) in &file.tables {
        let mut fks = Vec::new();
        for (cname, cdef) in &def.get_ref().columns {
            let line = Some(line_of(source, cdef.span().start));
            let cdef = cdef.get_ref();
            let Some(target) = &cdef.references else { continue };
            if target == "auth.users" || target == "auth.users.id" {
                if catalog.tables[tname].columns[cname].ty != ColumnType::Uuid {
                    return Err(err(tname, Some(cname), line, "a reference to auth.users needs type uuid"));
                }
                let on_delete = parse_on_delete(tname, cname, cdef.on_delete.as_deref(), line)?;
                fks.push(ForeignKey {
                    name: format!("{tname}_{cname}_fkey"),
                    columns: vec![cname.clone()],
                    ref_table: AUTH_USERS.into(),
                    ref_columns: vec!["id".into()],
                    on_delete,
                });
                continue;
            }
            let (rt, rc) = match target.rsplit_once('.') {
                Some((t, c)) if catalog.tables.contains_key(t) => (t.to_string(), Some(c.to_string())),
                _ => (target.clone(), None),
            };
            let ref_table = catalog
                .tables
                .get(&rt)
                .ok_or_else(|| err(tname, Some(cname), line, format!("references unknown table \"{target}\" (write table.column)")))?;
            let rc = match rc {
                Some(c) => c,
                None if ref_table.primary_key.len() == 1 => ref_table.primary_key[0].clone(),
                None => return Err(err(tname, Some(cname), line, format!("{rt} has no single-column primary key to reference"))),
            };
            let ref_col =
                ref_table.column(&rc).ok_or_else(|| err(tname, Some(cname), line, format!("references unknown column {rt}.{rc}")))?;
            if !ref_table.is_unique_set(std::slice::from_ref(&rc)) {
                return Err(err(tname, Some(cname), line, format!("{rt}.{rc} is neither primary key nor unique")));
            }
            let own = &catalog.tables[tname].columns[cname];
            if own.ty != ref_col.ty && !(own.ty.is_textual() && ref_col.ty.is_textual()) {
                return Err(err(
                    tname,
                    Some(cname),
                    line,
                    format!("type {} does not match {rt}.{rc} ({})", own.ty.pg_name(), ref_col.ty.pg_name()),
                ));
            }
            let on_delete = match cdef.on_delete.as_deref().map(|s| s.to_ascii_lowercase()) {
                None => OnDelete::NoAction,
                Some(s) => match s.replace('_', " ").as_str() {
                    "cascade" => OnDelete::Cascade,
                    "set null" => OnDelete::SetNull,
                    "restrict" => OnDelete::Restrict,
                    "no action" => OnDelete::NoAction,
                    _ => {
                        return Err(err(
                            tname,
                            Some(cname),
                            line,
                            format!("on_delete is cascade, set null, restrict or no action, not {s}"),
                        ))
                    }
                },
            };
            if on_delete == OnDelete::SetNull && own.not_null {
                return Err(err(tname, Some(cname), line, "on_delete = \"set null\" on a not_null column"));
            }
            fks.push(ForeignKey {
                name: format!("{tname}_{cname}_fkey"),
                columns: vec![cname.clone()],
                ref_table: rt,
                ref_columns: vec![rc],
                on_delete,
            });
        }
        if let Some(t) = catalog.tables.get_mut(tname) {
            t.foreign_keys = fks;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODOS: &str = r#"
[tables.lists]
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.name    = { type = "text", not_null = true, unique = true }

[tables.todos]
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.list_id = { type = "uuid", references = "lists.id", on_delete = "cascade" }
columns.title   = { type = "text", not_null = true }
columns.done    = { type = "boolean", default = "false" }
columns.tags    = { type = "text[]", default = "'{}'" }
columns.meta    = { type = "jsonb", default = "'{}'" }
indexes = [{ columns = ["list_id", "created_at desc"] }]
"#;

    #[test]
    fn builds_the_contract_example() {
        let c = build(TODOS).expect("valid");
        let todos = &c.tables["todos"];
        assert_eq!(todos.primary_key, vec!["id"]);
        assert!(todos.columns.contains_key("created_at"));
        assert_eq!(todos.foreign_keys[0].name, "todos_list_id_fkey");
        assert_eq!(todos.foreign_keys[0].on_delete, OnDelete::Cascade);
        assert_eq!(todos.indexes[0].columns[1], ("created_at".to_string(), true));
        assert_eq!(c.tables["lists"].uniques[0].name, "lists_name_key");
        let rels = c.relationships(&c.tables["lists"], todos);
        assert_eq!(rels.len(), 1);
        assert!(!rels[0].to_one);
    }

    #[test]
    fn errors_name_table_column_and_line() {
        let src = "[tables.a]\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.x = { type = \"money\" }\n";
        let e = build(src).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("table a, column x") && e.contains("money"), "{e}");
        let src =
            "[tables.a]\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.b = { type = \"uuid\", references = \"nope.id\" }\n";
        let e = build(src).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("nope.id"), "{e}");
        let e = build("[tables.a]\ncolumns.id = { type = \"uuid\", primary_ky = true }\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("primary_ky"), "{e}");
    }

    #[test]
    fn requires_a_primary_key() {
        let e = build("[tables.a]\ncolumns.x = { type = \"text\" }\n").unwrap_err().to_string();
        assert!(e.contains("primary key"), "{e}");
    }
}
