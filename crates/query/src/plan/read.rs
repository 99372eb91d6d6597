//! Read planning: select items into a tree of nodes, then filters, logic, order and ranges
//! onto the node their path names, then inner joins into existence conditions.

use basalt_schema::{Catalog, ColumnType, Table};

use super::{resolve, Access, Cond, Join, OutField, PlanOrder, ReadPlan, Source};
use crate::error::{Error, Result};
use crate::request::{AggregateFunc, ApiRequest, IsValue, JoinKind, Operation, SelectItem};

/// Plans a GET/HEAD.
pub fn plan_read(catalog: &Catalog, req: &ApiRequest, access: Access) -> Result<ReadPlan> {
    let table = lookup(catalog, &req.table)?;
    let mut counter = 0;
    let mut root = build_node(catalog, table, &req.select, Source::Table, &mut counter, access)?;
    apply_modifiers(catalog, &mut root, req)?;
    if let Some((from, to)) = req.range_header {
        let explicit = req.ranges.iter().any(|(p, _)| p.is_empty());
        if !explicit {
            root.offset = Some(from);
            root.limit = to.map(|t| t.saturating_sub(from).saturating_add(1));
        }
    }
    finalize_inner(&mut root);
    Ok(root)
}

pub fn lookup<'a>(catalog: &'a Catalog, name: &str) -> Result<&'a Table> {
    catalog.table(name).ok_or_else(|| Error::unknown_table(catalog.schema_name(), name, catalog.suggest_table(name)))
}

/// Builds a node and its embeds from select items.
pub(super) fn build_node(
    catalog: &Catalog,
    table: &Table,
    items: &[SelectItem],
    source: Source,
    counter: &mut usize,
    access: Access,
) -> Result<ReadPlan> {
    let alias = format!("_t{counter}");
    *counter += 1;
    let conds: Vec<Cond> = access.using(catalog, table, &alias, "select").into_iter().collect();
    let mut fields = Vec::new();
    for item in items {
        match item {
            SelectItem::Star => {
                for c in table.columns.values() {
                    fields.push(OutField::Column { key: c.name.clone(), expr: resolve::column_of(&alias, c) });
                }
            }
            SelectItem::Field { alias: a, field, cast } => {
                let mut expr = resolve::column(table, &alias, field)?;
                expr.cast = cast.as_deref().map(resolve::cast).transpose()?;
                fields.push(OutField::Column { key: a.clone().unwrap_or_else(|| field.output_name()), expr });
            }
            SelectItem::Embed { alias: a, relation, hint, join, select } => {
                let (target, join_on, to_one) = relate(catalog, table, &alias, relation, hint.as_deref(), access)?;
                let child = build_node(catalog, target, select, Source::Table, counter, access)?;
                fields.push(OutField::Embed {
                    key: a.clone().unwrap_or_else(|| relation.clone()),
                    join: join_on,
                    to_one,
                    inner: *join == JoinKind::Inner,
                    hidden: select.is_empty(),
                    plan: Box::new(child),
                });
            }
            SelectItem::Spread { relation, hint, select } => {
                let (target, join_on, to_one) = relate(catalog, table, &alias, relation, hint.as_deref(), access)?;
                if !to_one {
                    return Err(Error::new(400, "PGRST119", format!("A spread operation on '{relation}' is not possible"))
                        .details(format!("'{}' and '{relation}' do not form a many-to-one or one-to-one relationship", table.name)));
                }
                let child = build_node(catalog, target, select, Source::Table, counter, access)?;
                if child.fields.iter().any(|f| !matches!(f, OutField::Column { .. })) {
                    return Err(
                        Error::new(400, "PGRST127", "Feature not implemented").details("embeds inside a spread are not supported yet")
                    );
                }
                fields.push(OutField::Spread { join: join_on, plan: Box::new(child) });
            }
            SelectItem::Aggregate { alias: a, func, field, cast, result_cast } => {
                let expr = match field {
                    Some(f) => {
                        let mut e = resolve::column(table, &alias, f)?;
                        e.cast = cast.as_deref().map(resolve::cast).transpose()?;
                        Some(e)
                    }
                    None => None,
                };
                let yields = aggregate_type(*func, expr.as_ref())?;
                let result_cast = result_cast.as_deref().map(resolve::cast).transpose()?;
                fields.push(OutField::Aggregate {
                    key: a.clone().unwrap_or_else(|| func.name().to_string()),
                    func: *func,
                    expr,
                    result_cast,
                    out_type: result_cast.unwrap_or(yields),
                });
            }
            SelectItem::Count { alias: a, relation } => {
                let (target, join_on, _) = relate(catalog, table, &alias, relation, None, access)?;
                let child_alias = format!("_t{counter}");
                *counter += 1;
                let conds = access.using(catalog, target, &child_alias, "select").into_iter().collect();
                fields.push(OutField::Count {
                    key: a.clone().unwrap_or_else(|| relation.clone()),
                    join: join_on,
                    table: target.name.clone(),
                    alias: child_alias,
                    conds,
                });
            }
        }
    }
    if fields.iter().any(|f| matches!(f, OutField::Aggregate { .. })) {
        let not_yet = |what: &str| Error::new(400, "PGRST127", "Feature not implemented").details(format!("{what} are not supported yet"));
        if source == Source::Mutated {
            return Err(not_yet("aggregate functions in a write's representation"));
        }
        // A to-one embed groups with the columns; a to-many one would need aggregating itself.
        if fields
            .iter()
            .any(|f| matches!(f, OutField::Embed { hidden: false, to_one: false, .. } | OutField::Spread { .. } | OutField::Count { .. }))
        {
            return Err(not_yet("to-many embeds, spreads and counts beside aggregate functions"));
        }
    }
    Ok(ReadPlan { table: table.name.clone(), alias, source, call: None, fields, conds, order: Vec::new(), limit: None, offset: None })
}

/// What an aggregate function yields for its argument's type, as PostgreSQL types it; a
/// function PostgreSQL lacks for the type is refused here, so SQLite refuses it too.
fn aggregate_type(func: AggregateFunc, expr: Option<&super::ColExpr>) -> Result<ColumnType> {
    let Some(expr) = expr else { return Ok(ColumnType::BigInt) };
    let ty = expr.value_type();
    let yields = match (func, ty) {
        (AggregateFunc::Count, _) => Some(ColumnType::BigInt),
        (AggregateFunc::Sum, ColumnType::SmallInt | ColumnType::Integer) => Some(ColumnType::BigInt),
        (AggregateFunc::Sum, ColumnType::BigInt | ColumnType::Numeric) => Some(ColumnType::Numeric),
        (AggregateFunc::Sum, ColumnType::Real | ColumnType::Double) => Some(ty),
        (AggregateFunc::Avg, ColumnType::Real | ColumnType::Double) => Some(ColumnType::Double),
        (AggregateFunc::Avg, t) if t.is_numeric() => Some(ColumnType::Numeric),
        (AggregateFunc::Min | AggregateFunc::Max, t) if t.is_numeric() || t.is_textual() => Some(t),
        (AggregateFunc::Min | AggregateFunc::Max, ColumnType::Date | ColumnType::Timestamptz) => Some(ty),
        _ => None,
    };
    yields.ok_or_else(|| {
        Error::new(
            404,
            "42883",
            format!(
                "function {}({}) does not exist",
                func.name(),
                if ty == ColumnType::Jsonb { "jsonb".to_string() } else { ty.pg_display() }
            ),
        )
        .hint("No function matches the given name and argument types. You might need to add explicit type casts.")
    })
}

/// Finds the one foreign key between `parent` and `relation` (narrowed by `hint`).
fn relate<'a>(
    catalog: &'a Catalog,
    parent: &'a Table,
    parent_alias: &str,
    relation: &str,
    hint: Option<&str>,
    access: Access,
) -> Result<(&'a Table, Join, bool)> {
    let not_found = || {
        Error::new(400, "PGRST200", format!("Could not find a relationship between '{}' and '{relation}' in the schema cache", parent.name))
            .details(format!(
                "Searched for a foreign key relationship between '{}' and '{relation}' in the schema '{}', but no matches were found.",
                parent.name,
                catalog.schema_name()
            ))
    };
    let target = catalog.table(relation).ok_or_else(not_found)?;
    let rels: Vec<_> = catalog
        .relationships(parent, target)
        .into_iter()
        .filter(|r| hint.is_none_or(|h| r.fk.name == h || r.fk.columns.iter().any(|c| c == h)))
        // A table referencing itself matches each key both ways: a column hint (`!parent_id`)
        // means the row it points to, a constraint-name hint the rows pointing here.
        .filter(|r| match hint {
            Some(h) if parent.name == target.name => r.parent_holds_fk == r.fk.columns.iter().any(|c| c == h),
            _ => true,
        })
        .collect();
    let rel = match rels.as_slice() {
        [] => return through_junction(catalog, parent, parent_alias, target, relation, hint, access)?.ok_or_else(not_found),
        [one] => one,
        many => {
            let options: Vec<String> = many.iter().map(|r| format!("'{relation}!{}'", r.fk.name)).collect();
            return Err(Error::new(
                300,
                "PGRST201",
                format!("Could not embed because more than one relationship was found for '{}' and '{relation}'", parent.name),
            )
            .details(many.iter().map(|r| r.fk.name.clone()).collect::<Vec<_>>().join(", "))
            .hint(format!(
                "Try changing '{relation}' to one of the following: {}. Find the desired relationship in the 'details' key.",
                options.join(", ")
            )));
        }
    };
    let pairs = if rel.parent_holds_fk {
        rel.fk.columns.iter().cloned().zip(rel.fk.ref_columns.iter().cloned()).collect()
    } else {
        rel.fk.ref_columns.iter().cloned().zip(rel.fk.columns.iter().cloned()).collect()
    };
    Ok((target, Join { parent_alias: parent_alias.to_string(), pairs, through: None }, rel.to_one))
}

/// Many-to-many: a junction table with a foreign key to each side (`posts` <- `post_tags` ->
/// `tags`), as PostgREST finds it; `hint` may name the junction. None when there is none.
fn through_junction<'a>(
    catalog: &'a Catalog,
    parent: &'a Table,
    parent_alias: &str,
    target: &'a Table,
    relation: &str,
    hint: Option<&str>,
    access: Access,
) -> Result<Option<(&'a Table, Join, bool)>> {
    let mut found = Vec::new();
    for junction in catalog.tables.values().filter(|j| j.name != parent.name && j.name != target.name) {
        if hint.is_some_and(|h| h != junction.name) {
            continue;
        }
        let to_parent: Vec<_> = junction.foreign_keys.iter().filter(|fk| fk.ref_table == parent.name).collect();
        let to_target: Vec<_> = junction.foreign_keys.iter().filter(|fk| fk.ref_table == target.name).collect();
        for p in &to_parent {
            for t in &to_target {
                found.push((junction, *p, *t));
            }
        }
    }
    let (junction, to_parent, to_target) = match found.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        many => {
            let options: Vec<String> = many.iter().map(|(j, _, _)| format!("'{relation}!{}'", j.name)).collect();
            return Err(Error::new(
                300,
                "PGRST201",
                format!("Could not embed because more than one relationship was found for '{}' and '{relation}'", parent.name),
            )
            .details(many.iter().map(|(j, _, _)| j.name.clone()).collect::<Vec<_>>().join(", "))
            .hint(format!(
                "Try changing '{relation}' to one of the following: {}. Find the desired relationship in the 'details' key.",
                options.join(", ")
            )));
        }
    };
    let alias = format!("{parent_alias}_via");
    let through = super::Through {
        table: junction.name.clone(),
        conds: access.using(catalog, junction, &alias, "select").into_iter().collect(),
        alias,
        parent: to_parent.columns.iter().cloned().zip(to_parent.ref_columns.iter().cloned()).collect(),
        child: to_target.columns.iter().cloned().zip(to_target.ref_columns.iter().cloned()).collect(),
    };
    Ok(Some((target, Join { parent_alias: parent_alias.to_string(), pairs: Vec::new(), through: Some(through) }, false)))
}

/// Follows embed keys (alias or relation name) from the root.
fn node_at<'a>(root: &'a mut ReadPlan, path: &[String]) -> Result<&'a mut ReadPlan> {
    let Some((first, rest)) = path.split_first() else { return Ok(root) };
    let table = root.table.clone();
    let child = root.fields.iter_mut().find_map(|f| match f {
        OutField::Embed { key, plan, .. } if key == first || plan.table == *first => Some(plan.as_mut()),
        _ => None,
    });
    match child {
        Some(c) => node_at(c, rest),
        None => Err(Error::new(400, "PGRST108", format!("'{first}' is not an embedded resource in this request"))
            .hint(format!("Verify that '{first}' is included in the 'select' query parameter of '{table}'."))),
    }
}

fn apply_modifiers(catalog: &Catalog, root: &mut ReadPlan, req: &ApiRequest) -> Result<()> {
    for (path, f) in &req.filters {
        let node = node_at(root, path)?;
        let table = lookup(catalog, &node.table)?;
        if let Some(cond) = embed_existence(node, &f.field.column, &f.op, f.negate)? {
            node.conds.push(cond);
            continue;
        }
        node.conds.push(resolve::filter(table, &node.alias, f)?);
    }
    for (path, l) in &req.logic {
        let node = node_at(root, path)?;
        let table = lookup(catalog, &node.table)?;
        let cond = logic_with_embeds(table, node, l)?;
        node.conds.push(cond);
    }
    for (path, terms) in &req.order {
        let node = node_at(root, path)?;
        let table = lookup(catalog, &node.table)?;
        for t in terms {
            let (expr, related) = match &t.relation {
                None => (resolve::column(table, &node.alias, &t.field)?, None),
                Some(rel) => related_order(catalog, node, rel, &t.field)?,
            };
            // A grouped node is ordered by the columns it groups by, as PostgreSQL requires.
            if node.grouped() && node.group_key(&expr).is_none() {
                return Err(Error::new(
                    400,
                    "42803",
                    format!(
                        "column \"{}.{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                        node.table, expr.column
                    ),
                ));
            }
            node.order.push(PlanOrder { expr, desc: t.desc, nulls_first: t.nulls_first.unwrap_or(t.desc), related });
        }
    }
    for (path, r) in &req.ranges {
        let node = node_at(root, path)?;
        if r.limit.is_some_and(|l| l < 0) {
            return Err(Error::bad_range("Limit should be greater than or equal to zero."));
        }
        if r.offset.is_some_and(|o| o < 0) {
            return Err(Error::bad_range("Offset should be greater than or equal to zero."));
        }
        node.limit = r.limit.or(node.limit);
        node.offset = r.offset.or(node.offset);
    }
    Ok(())
}

/// A logic tree whose leaves may also test an embed's existence: `or=(rel.not.is.null,...)`.
fn logic_with_embeds(table: &Table, node: &ReadPlan, l: &crate::request::Logic) -> Result<Cond> {
    resolve::logic_with(l, &|f| {
        let embed = match f.field.path.is_empty() {
            true => embed_existence(node, &f.field.column, &f.op, f.negate)?,
            false => None,
        };
        match embed {
            Some(c) => Ok(c),
            None => resolve::filter(table, &node.alias, f),
        }
    })
}

/// `order=rel(col)`: `rel` must be embedded in `select` and to-one, as in PostgREST.
fn related_order(
    catalog: &Catalog,
    node: &ReadPlan,
    rel: &str,
    field: &crate::request::Field,
) -> Result<(super::ColExpr, Option<super::RelatedRow>)> {
    let embed = node.fields.iter().find_map(|f| match f {
        OutField::Embed { key, join, to_one, plan, .. } if key == rel || plan.table == rel => Some((join, *to_one, plan)),
        _ => None,
    });
    let Some((join, to_one, child)) = embed else {
        return Err(Error::new(400, "PGRST108", format!("'{rel}' is not an embedded resource in this request"))
            .hint(format!("Verify that '{rel}' is included in the 'select' query parameter of '{}'.", node.table)));
    };
    if !to_one {
        return Err(Error::new(400, "PGRST118", format!("A related order on '{rel}' is not possible"))
            .details(format!("'{}' and '{rel}' do not form a many-to-one or one-to-one relationship", node.table)));
    }
    let table = lookup(catalog, &child.table)?;
    let expr = resolve::column(table, &child.alias, field)?;
    let related =
        super::RelatedRow { table: child.table.clone(), alias: child.alias.clone(), join: join.clone(), conds: child.conds.clone() };
    Ok((expr, Some(related)))
}

/// `embed=is.null` / `embed=not.is.null`: filter parents by whether a child row exists.
fn embed_existence(node: &ReadPlan, key: &str, op: &Operation, negate: bool) -> Result<Option<Cond>> {
    let embed = node.fields.iter().find_map(|f| match f {
        OutField::Embed { key: k, join, plan, .. } if k == key => Some((join, plan)),
        _ => None,
    });
    let Some((join, child)) = embed else { return Ok(None) };
    let wants_missing = match (op, negate) {
        (Operation::Is(IsValue::Null), false) | (Operation::Is(IsValue::NotNull), true) => true,
        (Operation::Is(IsValue::NotNull), false) | (Operation::Is(IsValue::Null), true) => false,
        _ => {
            return Err(Error::new(400, "PGRST120", "Bad operator on the embedded resource")
                .details("Only is null or not is null filters are allowed on embedded resources"))
        }
    };
    Ok(Some(Cond::Exists {
        negate: wants_missing,
        table: child.table.clone(),
        alias: child.alias.clone(),
        join: join.clone(),
        conds: child.conds.clone(),
    }))
}

/// Inner embeds keep only parents with a matching child (after the child's own filters).
fn finalize_inner(node: &mut ReadPlan) {
    let mut extra = Vec::new();
    for f in &mut node.fields {
        if let OutField::Embed { join, inner, plan, .. } = f {
            finalize_inner(plan);
            if *inner {
                extra.push(Cond::Exists {
                    negate: false,
                    table: plan.table.clone(),
                    alias: plan.alias.clone(),
                    join: join.clone(),
                    conds: plan.conds.clone(),
                });
            }
        }
    }
    node.conds.extend(extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_request, Headers};

    fn catalog() -> Catalog {
        basalt_schema::parse_schema(
            r#"
[tables.lists]
columns.id = { type = "uuid", primary_key = true }
[tables.todos]
columns.id = { type = "uuid", primary_key = true }
columns.list_id = { type = "uuid", references = "lists.id" }
columns.meta = { type = "jsonb" }
columns.rank = { type = "integer" }
"#,
        )
        .unwrap()
    }

    const SERVICE: Access = Access { role: "service_role", claims: &serde_json::Value::Null, enforce: true };

    fn plan(q: &str) -> Result<ReadPlan> {
        plan_read(&catalog(), &parse_request("GET", "todos", q, Headers::default(), b"")?, SERVICE)
    }

    #[test]
    fn self_references_by_hint() {
        let c = basalt_schema::parse_schema(
            "[tables.tasks]\ncolumns.id = { type = \"uuid\", primary_key = true }\ncolumns.parent_id = { type = \"uuid\", references = \"tasks.id\" }\n",
        )
        .unwrap();
        let p = |q: &str| plan_read(&c, &parse_request("GET", "tasks", q, Headers::default(), b"").unwrap(), SERVICE);
        assert_eq!(p("select=id,tasks(id)").unwrap_err().code, "PGRST201");
        let up = p("select=id,parent:tasks!parent_id(id)").unwrap();
        assert!(matches!(&up.fields[1], OutField::Embed { to_one: true, .. }));
        let down = p("select=id,children:tasks!tasks_parent_id_fkey(id)").unwrap();
        assert!(matches!(&down.fields[1], OutField::Embed { to_one: false, .. }));
    }

    #[test]
    fn resolves_names() {
        assert_eq!(plan("select=nope").unwrap_err().code, "42703");
        assert_eq!(plan("rank=eq.x").unwrap_err().code, "22P02");
        assert_eq!(plan("select=*,nope(*)").unwrap_err().code, "PGRST200");
        assert_eq!(plan("nope.rank=eq.1").unwrap_err().code, "PGRST108");
        assert_eq!(
            plan_read(&catalog(), &parse_request("GET", "todo", "", Headers::default(), b"").unwrap(), SERVICE).unwrap_err().code,
            "PGRST205"
        );
        let p = plan("select=id,lists!inner(id)&lists.id=eq.a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11&order=rank.desc&limit=5").unwrap();
        assert_eq!(p.limit, Some(5));
        assert!(p.order[0].nulls_first);
        assert!(matches!(p.conds.last(), Some(Cond::Exists { negate: false, .. })));
    }
}
