//! Rendered SQL per dialect for representative plans.

use super::*;
use crate::parse::{parse_request, Headers};
use crate::plan::{plan_mutate, plan_read, Access};

const SERVICE: Access = Access { role: "service_role", claims: &serde_json::Value::Null, enforce: true };

fn catalog() -> basalt_schema::Catalog {
    basalt_schema::parse_schema(
        r#"
[tables.lists]
columns.id = { type = "uuid", primary_key = true }
[tables.todos]
columns.id = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.list_id = { type = "uuid", references = "lists.id" }
columns.done = { type = "boolean" }
columns.tags = { type = "text[]" }
columns.rank = { type = "integer" }
"#,
    )
    .unwrap()
}

fn read(d: &dyn Dialect, q: &str) -> ReadSql {
    let req = parse_request("GET", "todos", q, Headers::default(), b"").unwrap();
    d.read(&plan_read(&catalog(), &req, SERVICE).unwrap(), Some(crate::request::CountPref::Exact))
}

#[test]
fn sqlite_read() {
    let r = read(&Sqlite, "select=id,done,lists(id)&rank=gt.3&tags=cs.{a}&order=rank.desc&limit=2");
    assert!(
        r.body
            .sql
            .starts_with("SELECT count(*), coalesce(json_group_array(json_object('id', _t0.\"id\", 'done', json(CASE WHEN _t0.\"done\""),
        "{}",
        r.body.sql
    );
    assert!(r.body.sql.contains("WHERE _t0.\"rank\" > ?1 AND basalt_contains(_t0.\"tags\", ?2)"), "{}", r.body.sql);
    assert!(r.body.sql.contains("ORDER BY _t0.\"rank\" DESC NULLS FIRST LIMIT ?3"), "{}", r.body.sql);
    assert_eq!(r.body.params.len(), 3);
    assert!(r.count.unwrap().sql.starts_with("SELECT count(*) FROM \"todos\" AS _t0 WHERE"));
}

#[test]
fn postgres_read() {
    let r = read(&Postgres, "select=id,lists(id)&rank=in.(1,2)&tags=cs.{a}");
    assert!(r.body.sql.contains("(SELECT row_to_json(_r1) FROM (SELECT _t1.\"id\" AS \"id\" FROM (SELECT _t1.* FROM \"lists\" AS _t1 WHERE _t1.\"id\" = _t0.\"list_id\") AS _t1) AS _r1) AS \"lists\""), "{}", r.body.sql);
    assert!(r.body.sql.contains("_t0.\"rank\" IN (SELECT _v::integer FROM jsonb_array_elements_text($1::jsonb) AS _v)"), "{}", r.body.sql);
    assert!(r.body.sql.contains("_t0.\"tags\" @> $2::text[]"), "{}", r.body.sql);
    assert_eq!(r.body.params[1], Param::Text("{\"a\"}".into()));
}

#[test]
fn writes() {
    let catalog = catalog();
    let mut req = parse_request(
        "POST",
        "todos",
        "select=id",
        Headers { prefer: Some("return=representation"), ..Default::default() },
        b"[{\"rank\":1}]",
    )
    .unwrap();
    req.prefer.resolution = None;
    let plan = plan_mutate(&catalog, &req, SERVICE).unwrap();
    let MutateSql::Single(pg) = Postgres.mutate(&plan) else { panic!() };
    assert!(
        pg.sql.starts_with("WITH _m AS (INSERT INTO \"todos\" AS _ins (\"rank\") SELECT _r.\"rank\" FROM jsonb_array_elements($1::jsonb)"),
        "{}",
        pg.sql
    );
    let MutateSql::Steps { collect, collect_body, read, .. } = Sqlite.mutate(&plan) else { panic!() };
    // One row is bound value by value; a plain insert's representation comes from its RETURNING
    // clause, the columns by the table's name.
    assert_eq!(collect.sql, "INSERT INTO \"todos\" (\"rank\") VALUES (?1) RETURNING rowid, json_object('id', \"todos\".\"id\")");
    assert_eq!(collect.params, vec![crate::value::Param::Int(1)]);
    assert!(collect_body && read.is_none());
    // Several rows are read from the JSON array.
    let mut two = parse_request(
        "POST",
        "todos",
        "select=id",
        Headers { prefer: Some("return=representation"), ..Default::default() },
        b"[{\"rank\":1},{\"rank\":2}]",
    )
    .unwrap();
    two.prefer.resolution = None;
    let MutateSql::Steps { collect, .. } = Sqlite.mutate(&plan_mutate(&catalog, &two, SERVICE).unwrap()) else { panic!() };
    assert!(
        collect.sql.contains("SELECT (_j.value ->> '$.\"rank\"') FROM jsonb_each(?1) AS _j WHERE true RETURNING rowid"),
        "{}",
        collect.sql
    );
    // An upsert reads its rows after the write, as updated ones are read.
    req.prefer.resolution = Some(crate::request::Resolution::MergeDuplicates);
    let plan = plan_mutate(&catalog, &req, SERVICE).unwrap();
    let MutateSql::Steps { collect, collect_body, read, .. } = Sqlite.mutate(&plan) else { panic!() };
    assert!(collect.sql.ends_with("RETURNING rowid"), "{}", collect.sql);
    assert!(!collect_body);
    assert!(read
        .unwrap()
        .sql
        .contains("FROM json_each(?1) AS _ids CROSS JOIN \"todos\" AS _t0 ON _t0.rowid = _ids.value ORDER BY _ids.key"));
}

#[test]
fn like_to_glob_escapes() {
    assert_eq!(sqlite::like_to_glob("a%b_c\\%*"), "a*b?c%[*]");
}

#[test]
fn sqlite_insert_check_builds_only_the_policy_columns() {
    let catalog = basalt_schema::parse_schema(
        r#"
[tables.notes]
owner = "user_id"
columns.id      = { type = "uuid", primary_key = true, default = "uuidv7()" }
columns.user_id = { type = "uuid", not_null = true, default = "auth.uid()" }
columns.body    = { type = "text" }
"#,
    )
    .unwrap();
    let claims = serde_json::json!({ "sub": "7c5a2b1e-0000-4000-8000-000000000001", "role": "authenticated" });
    let user = Access { role: "authenticated", claims: &claims, enforce: true };
    let req = parse_request("POST", "notes", "", Headers::default(), b"{\"body\":\"hi\"}").unwrap();
    let plan = plan_mutate(&catalog, &req, user).unwrap();
    let MutateSql::Steps { check, collect, .. } = Sqlite.mutate(&plan) else { panic!() };
    let check = check.expect("a policy check");
    assert!(check.sql.contains("AS \"user_id\""), "{}", check.sql);
    assert!(!check.sql.contains("AS \"id\"") && !check.sql.contains("AS \"body\""), "{}", check.sql);
    // One row: its values are bound, no JSON is parsed.
    assert!(!check.sql.contains("jsonb_each"), "{}", check.sql);
    assert!(collect.sql.starts_with("INSERT INTO \"notes\" (\"body\") VALUES (?1)"), "{}", collect.sql);
    // A payload column the policy reads is bound in the check as in the insert.
    let uid = "7c5a2b1e-0000-4000-8000-000000000001";
    let body = format!("{{\"body\":\"hi\",\"user_id\":\"{uid}\"}}");
    let req = parse_request("POST", "notes", "", Headers::default(), body.as_bytes()).unwrap();
    let MutateSql::Steps { check, .. } = Sqlite.mutate(&plan_mutate(&catalog, &req, user).unwrap()) else { panic!() };
    let check = check.expect("a policy check");
    assert!(check.sql.contains("(SELECT ?1 AS \"user_id\" ) AS _chk"), "{}", check.sql);
    assert_eq!(check.params.first(), Some(&crate::value::Param::Text(uid.into())));
    // Several rows are checked from the JSON array.
    let req = parse_request("POST", "notes", "", Headers::default(), b"[{\"body\":\"a\"},{\"body\":\"b\"}]").unwrap();
    let MutateSql::Steps { check, .. } = Sqlite.mutate(&plan_mutate(&catalog, &req, user).unwrap()) else { panic!() };
    assert!(check.expect("a policy check").sql.contains("FROM jsonb_each(?1)"));
    // Returning the row adds the SELECT policies to the check: the owner rule is both, so it is
    // checked once, still on its one column.
    let prefer = Headers { prefer: Some("return=representation"), ..Headers::default() };
    let req = parse_request("POST", "notes", "", prefer, b"{\"body\":\"hi\"}").unwrap();
    let MutateSql::Steps { check, collect_body: true, .. } = Sqlite.mutate(&plan_mutate(&catalog, &req, user).unwrap()) else { panic!() };
    let check = check.expect("a policy check");
    assert_eq!(
        check.sql,
        "SELECT count(*) FROM (SELECT (basalt_auth_uid()) AS \"user_id\" ) AS _chk WHERE NOT coalesce(((_chk.\"user_id\" = ?1)), false)"
    );
    assert_eq!(check.params, vec![crate::value::Param::Text(uid.into())]);
    // So does an update returning its rows; the rows it reaches meet the owner rule once, not as
    // the UPDATE policy and again as the SELECT one.
    let req = parse_request("PATCH", "notes", "id=eq.7c5a2b1e-0000-4000-8000-000000000002", prefer, b"{\"body\":\"hi\"}").unwrap();
    let MutateSql::Steps { check, collect, .. } = Sqlite.mutate(&plan_mutate(&catalog, &req, user).unwrap()) else { panic!() };
    assert_eq!(
        check.expect("a policy check").sql,
        "SELECT count(*) FROM (SELECT _t1.\"user_id\" AS \"user_id\" FROM \"notes\" AS _t1 WHERE (_t1.\"user_id\" = ?2) AND _t1.\"id\" = ?3) AS _chk \
         WHERE NOT coalesce(((_chk.\"user_id\" = ?4)), false)"
    );
    assert!(collect.sql.ends_with("WHERE (_t1.\"user_id\" = ?2) AND _t1.\"id\" = ?3 RETURNING rowid"), "{}", collect.sql);
}

/// Policies that reach each other through `exists` compile to a bounded query (PostgreSQL
/// refuses such a query with 42P17): a table reached again inside its own policies lets nothing
/// through there. Each level reads the other table only through its own SELECT policies.
#[test]
fn cyclic_policies_compile_to_a_bounded_query() {
    let catalog = basalt_schema::parse_schema(
        r#"
[tables.a]
columns.id = { type = "bigint", primary_key = true }
[[tables.a.policies]]
name = "a through b"
command = "select"
roles = ["authenticated"]
using = "exists (select 1 from b where b.id = a.id)"
[tables.b]
columns.id = { type = "bigint", primary_key = true }
[[tables.b.policies]]
name = "b through a"
command = "select"
roles = ["authenticated"]
using = "exists (select 1 from a where a.id = b.id)"
"#,
    )
    .unwrap();
    let claims = serde_json::json!({"sub": "7c5a2b1e-0000-4000-8000-000000000001"});
    let user = Access { role: "authenticated", claims: &claims, enforce: true };
    let req = parse_request("GET", "a", "select=id", Headers::default(), b"").unwrap();
    let sql = Sqlite.read(&plan_read(&catalog, &req, user).unwrap(), None).body.sql;
    assert_eq!(sql.matches("EXISTS").count(), 2, "{sql}");
    assert!(sql.contains("FROM \"b\" AS _t0_p1 WHERE"), "{sql}");
}
