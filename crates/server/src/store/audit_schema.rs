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
CREATE INDEX IF NOT EXISTS basalt_audit_log_row ON basalt_audit_log (table_name, row_id);
CREATE TABLE IF NOT EXISTS basalt_audit_head (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
INSERT OR IGNORE INTO basalt_audit_head (one, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
"#;

/// PostgreSQL: the log, the chain head, and `basalt.audit_record()`. The head row is locked
/// by each audited change until its transaction ends, so entries are numbered and chained in
/// commit order across every instance sharing the database.
pub const POSTGRES: &str = r#"
CREATE TABLE IF NOT EXISTS basalt.audit_log (
  id bigint PRIMARY KEY,
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
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_row ON basalt.audit_log (table_name, row_id);
CREATE TABLE IF NOT EXISTS basalt.audit_head (one boolean PRIMARY KEY DEFAULT true CHECK (one), seq bigint NOT NULL, hash text NOT NULL);
INSERT INTO basalt.audit_head (one, seq, hash) VALUES (true, 0, repeat('0', 64)) ON CONFLICT (one) DO NOTHING;
CREATE OR REPLACE FUNCTION basalt.audit_field(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT CASE WHEN v IS NULL THEN '~' ELSE char_length(v)::text || ':' || v END
$f$;
CREATE OR REPLACE FUNCTION basalt.audit_at(t timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
$f$;
CREATE OR REPLACE FUNCTION basalt.audit_record() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  pk text[] := TG_ARGV[0]::text[];
  redact text[] := TG_ARGV[1]::text[];
  claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
  old_j jsonb;
  new_j jsonb;
  c text;
  e basalt.audit_log%ROWTYPE;
BEGIN
  IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD); END IF;
  IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW); END IF;
  FOREACH c IN ARRAY redact LOOP
    IF jsonb_typeof(old_j -> c) <> 'null' THEN old_j := jsonb_set(old_j, ARRAY[c], '"[redacted]"'); END IF;
    IF jsonb_typeof(new_j -> c) <> 'null' THEN new_j := jsonb_set(new_j, ARRAY[c], '"[redacted]"'); END IF;
  END LOOP;
  IF array_length(pk, 1) = 1 THEN
    e.row_id := coalesce(new_j, old_j) ->> pk[1];
  ELSE
    e.row_id := (SELECT jsonb_agg(coalesce(new_j, old_j) -> k ORDER BY o) FROM unnest(pk) WITH ORDINALITY AS u(k, o))::text;
  END IF;
  SELECT h.seq + 1, h.hash INTO e.id, e.prev_hash FROM basalt.audit_head h WHERE h.one FOR UPDATE;
  e.at := clock_timestamp();
  e.table_name := TG_TABLE_NAME;
  e.op := TG_OP;
  e.old_row := old_j;
  e.new_row := new_j;
  e.actor_id := nullif(current_setting('request.jwt.claim.sub', true), '');
  e.actor_role := coalesce(claims ->> 'role', session_user::text);
  e.api_key_id := nullif(current_setting('basalt.api_key_id', true), '');
  e.ip := nullif(current_setting('basalt.ip', true), '');
  e.user_agent := nullif(current_setting('request.headers', true), '')::jsonb ->> 'user-agent';
  e.request_id := nullif(current_setting('basalt.request_id', true), '');
  e.hash := encode(sha256(convert_to(e.prev_hash
    || '|' || basalt.audit_field(e.id::text) || '|' || basalt.audit_field(basalt.audit_at(e.at))
    || '|' || basalt.audit_field(e.table_name) || '|' || basalt.audit_field(e.op)
    || '|' || basalt.audit_field(e.row_id) || '|' || basalt.audit_field(e.old_row::text)
    || '|' || basalt.audit_field(e.new_row::text) || '|' || basalt.audit_field(e.actor_id)
    || '|' || basalt.audit_field(e.actor_role) || '|' || basalt.audit_field(e.api_key_id)
    || '|' || basalt.audit_field(e.ip) || '|' || basalt.audit_field(e.user_agent)
    || '|' || basalt.audit_field(e.request_id), 'UTF8')), 'hex');
  INSERT INTO basalt.audit_log VALUES (e.*);
  UPDATE basalt.audit_head SET seq = e.id, hash = e.hash WHERE one;
  RETURN NULL;
END
$f$;
REVOKE ALL ON basalt.audit_log, basalt.audit_head FROM PUBLIC;
"#;

/// Reads entries after an id, oldest first, their times and JSON as the chain hashed them.
/// Parameters: after id, limit, table (or NULL), row id (or NULL).
pub const PG_ENTRIES: &str = "SELECT id, basalt.audit_at(at), table_name, op, row_id, old_row::text, new_row::text, actor_id, actor_role, \
     api_key_id, ip, user_agent, request_id, prev_hash, hash FROM basalt.audit_log \
     WHERE id > $1::bigint AND ($3::text IS NULL OR table_name = $3::text) AND ($4::text IS NULL OR row_id = $4::text) ORDER BY id LIMIT $2::bigint";

pub const SQLITE_ENTRIES: &str = "SELECT id, at, table_name, op, row_id, old_row, new_row, actor_id, actor_role, \
     api_key_id, ip, user_agent, request_id, prev_hash, hash FROM basalt_audit_log \
     WHERE id > ?1 AND (?3 IS NULL OR table_name = ?3) AND (?4 IS NULL OR row_id = ?4) ORDER BY id LIMIT ?2";

pub const PG_HEAD: &str = "SELECT seq, hash FROM basalt.audit_head";
pub const SQLITE_HEAD: &str = "SELECT seq, hash FROM basalt_audit_head";
