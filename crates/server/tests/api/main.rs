//! Integration tests: the real server over HTTP, on SQLite and on PostgreSQL.

mod helpers;

mod audit;
mod auth;
mod cli;
mod examples;
mod gate;
mod id_token;
mod mail;
mod mfa;
mod migrations;
mod oauth;
mod pg_auth;
mod postgrest;
mod read;
mod rls;
mod scale;
mod supabase;
mod write;

/// The schema most tests use.
pub const SCHEMA: &str = r#"
[tables.lists]
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.name    = { type = "text", not_null = true, unique = true }

[tables.todos]
columns.id      = { type = "uuid", primary_key = true, default = "gen_random_uuid()" }
columns.list_id = { type = "uuid", references = "lists.id", on_delete = "cascade" }
columns.title   = { type = "text", not_null = true }
columns.done    = { type = "boolean", default = "false" }
columns.rank    = { type = "integer" }
columns.tags    = { type = "text[]", default = "'{}'" }
columns.meta    = { type = "jsonb", default = "'{}'" }
columns.status  = { type = "varchar(10)", default = "'open'", one_of = ["open", "closed"] }
columns.price   = { type = "numeric" }
columns.due     = { type = "date" }
indexes = [{ columns = ["list_id", "created_at desc"] }]

[tables.notes]
columns.id      = { type = "bigint", primary_key = true }
columns.todo_id = { type = "uuid", references = "todos.id", on_delete = "set null" }
columns.body    = { type = "text" }
"#;
