//! The audit log's tables and, on PostgreSQL, the trigger function every audited table calls.
//! The per-table triggers come from the schema (`basalt_schema::audit`). Neither backend lets
//! the API roles read or write these tables: on PostgreSQL they live in schema `basalt`, which
//! the roles cannot use, and the trigger function runs as its owner; on SQLite they are not in
//! the catalog the data API serves.

/// SQLite: the log and the chain head (one row).
pub const SQLITE: &str = r#"
CREATE TABLE IF NOT EXISTS basalt_audit_log (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  table_name TEXT NOT NULL,
  op TEXT NOT NULL,
  row_id TEXT,
  old_row TEXT,
  new_row TEXT,
  actor_id TEXT,
  actor_role TEXT NOT NULL,
  api_key_id TEXT,
  ip TEXT,
  user_agent TEXT,
  request_id TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS basalt_audit_log_row ON basalt_audit_log (table_name, row_id, id);
CREATE INDEX IF NOT EXISTS basalt_audit_log_actor ON basalt_audit_log (actor_id, id);
CREATE TABLE IF NOT EXISTS basalt_audit_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
INSERT OR IGNORE INTO basalt_audit_head (one, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
"#;

/// Auth events (GoTrue's `auth.audit_log_entries`) are audited like a schema table: on SQLite
/// their triggers come from the same generator, recreated at every start.
pub fn sqlite_auth_event_triggers() -> String {
    use basalt_schema::{Audit, Column, ColumnType, DdlDialect, Table};
    let column = |name: &str, ty: ColumnType| {
        (name.to_string(), Column { name: name.into(), ty, not_null: false, default: None, description: None })
    };
    let table = Table {
        columns: [
            column("instance_id", ColumnType::Uuid),
            column("id", ColumnType::Uuid),
            column("payload", ColumnType::Jsonb),
            column("created_at", ColumnType::Timestamptz),
            column("ip_address", ColumnType::Text),
        ]
        .into_iter()
        .collect(),
        primary_key: vec!["id".into()],
        audit: Some(Audit::default()),
        ..Table::empty("auth.audit_log_entries")
    };
    let mut sql = basalt_schema::audit::drop_triggers(&table.name, DdlDialect::Sqlite);
    sql.extend(basalt_schema::audit::create_triggers(&table, DdlDialect::Sqlite));
    sql.join(";\n") + ";"
}

/// PostgreSQL: the log, the chain head, and `basalt.audit_record()`. The trigger only appends
/// (no lock: audited writes commit concurrently, as any other); entries join the chain when a
/// sealer ([`super::audit_log`]) hashes them in order, under an advisory lock, shortly after
/// they commit. `seq` is the chain position, NULL until sealed.
pub const POSTGRES: &str = r#"
CREATE SEQUENCE IF NOT EXISTS basalt.audit_log_id_seq;
CREATE TABLE IF NOT EXISTS basalt.audit_log (
  id bigint PRIMARY KEY DEFAULT nextval('basalt.audit_log_id_seq'),
  seq bigint UNIQUE,
  at timestamptz NOT NULL,
  table_name text NOT NULL,
  op text NOT NULL,
  row_id text,
  old_row jsonb,
  new_row jsonb,
  actor_id text,
  actor_role text NOT NULL,
  api_key_id text,
  ip text,
  user_agent text,
  request_id text,
  prev_hash text,
  hash text
);
CREATE INDEX IF NOT EXISTS audit_log_row_seq ON basalt.audit_log (table_name, row_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_actor_seq ON basalt.audit_log (actor_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_unsealed ON basalt.audit_log (id) WHERE seq IS NULL;
CREATE TABLE IF NOT EXISTS basalt.audit_head (one boolean PRIMARY KEY DEFAULT true CHECK (one), seq bigint NOT NULL, hash text NOT NULL);
INSERT INTO basalt.audit_head (one, seq, hash) VALUES (true, 0, repeat('0', 64)) ON CONFLICT (one) DO NOTHING;
CREATE OR REPLACE FUNCTION basalt.audit_at(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
$f$;
CREATE OR REPLACE FUNCTION basalt.audit_record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  pk text[] := TG_ARGV[0]::text[];
  redact text[] := TG_ARGV[1]::text[];
  old_j jsonb;
  new_j jsonb;
  row_id text;
  c text;
BEGIN
  IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD); END IF;
  IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW); END IF;
  FOREACH c IN ARRAY redact LOOP
    IF jsonb_typeof(old_j -> c) <> 'null' THEN old_j := jsonb_set(old_j, ARRAY[c], '"[redacted]"'); END IF;
    IF jsonb_typeof(new_j -> c) <> 'null' THEN new_j := jsonb_set(new_j, ARRAY[c], '"[redacted]"'); END IF;
  END LOOP;
  IF array_length(pk, 1) = 1 THEN
    row_id := coalesce(new_j, old_j) ->> pk[1];
  ELSE
    -- As SQLite's json_array writes it: [1,"a"].
    row_id := '[' || (SELECT string_agg((coalesce(new_j, old_j) -> k)::text, ',' ORDER BY o) FROM unnest(pk) WITH ORDINALITY AS u(k, o)) || ']';
  END IF;
  INSERT INTO basalt.audit_log (at, table_name, op, row_id, old_row, new_row, actor_id, actor_role, api_key_id, ip, user_agent, request_id)
  VALUES (
    clock_timestamp(), CASE WHEN TG_TABLE_SCHEMA = 'auth' THEN 'auth.' || TG_TABLE_NAME ELSE TG_TABLE_NAME END, TG_OP, row_id, old_j, new_j,
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role', session_user::text),
    nullif(current_setting('basalt.api_key_id', true), ''),
    nullif(current_setting('basalt.ip', true), ''),
    left(nullif(current_setting('request.headers', true), '')::jsonb ->> 'user-agent', 512),
    nullif(current_setting('basalt.request_id', true), '')
  );
  RETURN NULL;
END
$f$;
REVOKE ALL ON basalt.audit_log, basalt.audit_head FROM PUBLIC;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'basalt_audit' AND tgrelid = 'auth.audit_log_entries'::regclass) THEN
    CREATE TRIGGER basalt_audit AFTER INSERT OR UPDATE OR DELETE ON auth.audit_log_entries
      FOR EACH ROW EXECUTE FUNCTION basalt.audit_record('{id}', '{}');
  END IF;
END $$;
"#;

/// The columns of an entry as [`crate::audit::Entry`] reads them: times and JSON as text, as
/// the chain hashes them.
const PG_COLUMNS: &str = "id, seq, basalt.audit_at(at), table_name, op, row_id, old_row::text, new_row::text, actor_id, actor_role, \
     api_key_id, ip, user_agent, request_id, prev_hash, hash";
const SQLITE_COLUMNS: &str = "id, id, at, table_name, op, row_id, old_row, new_row, actor_id, actor_role, \
     api_key_id, ip, user_agent, request_id, prev_hash, hash";

/// Which filters an entries query has: each present one becomes an equality the indexes serve
/// (an absent one a no-op on its NULL parameter), so each combination gets its own plan.
#[derive(Debug, Clone, Copy)]
pub struct Filters {
    pub table: bool,
    pub row: bool,
    pub actor: bool,
}

impl Filters {
    /// `table_name = $3 AND ...` with `mark` the parameter prefix (`$` or `?`).
    fn sql(&self, mark: char, cast: &str) -> String {
        let one = |on: bool, col: &str, n: u8| {
            if on {
                format!("{col} = {mark}{n}{cast}")
            } else {
                format!("{mark}{n}{cast} IS NULL")
            }
        };
        [one(self.table, "table_name", 3), one(self.row, "row_id", 4), one(self.actor, "actor_id", 5)].join(" AND ")
    }
}

/// Entries after a chain position, in chain order. Parameters: after, limit, then table, row id
/// and actor id, NULL where not filtered on. On PostgreSQL this pages by `seq`, not `id`: ids come
/// from a sequence in write order, and a lower id can commit after a higher one was read, so a
/// reader following the log by id would skip it; chain positions are handed out after commit.
pub fn pg_entries(f: Filters) -> String {
    format!("SELECT {PG_COLUMNS} FROM basalt.audit_log WHERE seq > $1::bigint AND {} ORDER BY seq LIMIT $2::bigint", f.sql('$', "::text"))
}

pub fn sqlite_entries(f: Filters) -> String {
    format!("SELECT {SQLITE_COLUMNS} FROM basalt_audit_log WHERE id > ?1 AND {} ORDER BY id LIMIT ?2", f.sql('?', ""))
}

/// The chain after a position, in chain order. Parameters: after seq, limit.
pub fn pg_chain() -> String {
    format!("SELECT {PG_COLUMNS} FROM basalt.audit_log WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint")
}

/// On SQLite, up to the head read before (parameter 3): each page is its own short read.
pub fn sqlite_chain() -> String {
    format!("SELECT {SQLITE_COLUMNS} FROM basalt_audit_log WHERE id > ?1 AND id <= ?3 ORDER BY id LIMIT ?2")
}

/// Entries not yet in the chain, oldest first (PostgreSQL). Parameter: limit.
pub fn pg_unsealed() -> String {
    format!("SELECT {PG_COLUMNS} FROM basalt.audit_log WHERE seq IS NULL ORDER BY id LIMIT $1::bigint")
}

pub const PG_UNSEALED_COUNT: &str = "SELECT count(*) FROM basalt.audit_log WHERE seq IS NULL";
pub const PG_ANY_UNSEALED: &str = "SELECT EXISTS (SELECT 1 FROM basalt.audit_log WHERE seq IS NULL)";

/// Puts entries into the chain: ids, chain positions, previous hashes, hashes (arrays).
pub const PG_SEAL: &str = "UPDATE basalt.audit_log AS l SET seq = u.seq, prev_hash = u.prev, hash = u.hash \
     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS u(id, seq, prev, hash) WHERE l.id = u.id";
pub const PG_SET_HEAD: &str = "UPDATE basalt.audit_head SET seq = $1::bigint, hash = $2::text WHERE one";
/// One sealer at a time across every instance.
pub const PG_SEAL_LOCK: &str = "SELECT pg_advisory_xact_lock(7234301627834167809)";
pub const PG_TRY_SEAL_LOCK: &str = "SELECT pg_try_advisory_xact_lock(7234301627834167809)";

pub const PG_HEAD: &str = "SELECT seq, hash FROM basalt.audit_head";
pub const SQLITE_HEAD: &str = "SELECT seq, hash FROM basalt_audit_head";
