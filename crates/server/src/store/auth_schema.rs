//! Basalt's auth tables, shaped like GoTrue's `auth` schema so Supabase apps (foreign keys to
//! `auth.users`, triggers, `auth.uid()` in policies) work unchanged. Idempotent.

/// SQLite: the same tables in the main database as `auth_<name>` (foreign keys need one database).
pub const SQLITE: &str = r#"
CREATE TABLE IF NOT EXISTS auth_users (
  id TEXT PRIMARY KEY,
  aud TEXT NOT NULL DEFAULT 'authenticated',
  role TEXT NOT NULL DEFAULT 'authenticated',
  email TEXT,
  encrypted_password TEXT,
  email_confirmed_at TEXT,
  invited_at TEXT,
  confirmation_sent_at TEXT,
  recovery_sent_at TEXT,
  email_change TEXT,
  email_change_sent_at TEXT,
  last_sign_in_at TEXT,
  raw_app_meta_data TEXT NOT NULL DEFAULT '{}',
  raw_user_meta_data TEXT NOT NULL DEFAULT '{}',
  phone TEXT,
  phone_confirmed_at TEXT,
  banned_until TEXT,
  is_anonymous INTEGER NOT NULL DEFAULT 0,
  is_sso_user INTEGER NOT NULL DEFAULT 0,
  deleted_at TEXT,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  updated_at TEXT NOT NULL DEFAULT (basalt_now())
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_users_email_key ON auth_users (lower(email)) WHERE email IS NOT NULL AND email <> '';
CREATE TABLE IF NOT EXISTS auth_identities (
  id TEXT PRIMARY KEY,
  provider_id TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
  identity_data TEXT NOT NULL DEFAULT '{}',
  provider TEXT NOT NULL,
  email TEXT,
  last_sign_in_at TEXT,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  updated_at TEXT NOT NULL DEFAULT (basalt_now()),
  UNIQUE (provider_id, provider)
);
CREATE TABLE IF NOT EXISTS auth_sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
  aal TEXT NOT NULL DEFAULT 'aal1',
  amr TEXT NOT NULL DEFAULT '[]',
  not_after TEXT,
  refreshed_at TEXT,
  user_agent TEXT,
  ip TEXT,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  updated_at TEXT NOT NULL DEFAULT (basalt_now())
);
CREATE INDEX IF NOT EXISTS auth_sessions_user_id_idx ON auth_sessions (user_id);
CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  token TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0,
  parent TEXT,
  session_id TEXT NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  updated_at TEXT NOT NULL DEFAULT (basalt_now())
);
CREATE INDEX IF NOT EXISTS auth_refresh_tokens_session_idx ON auth_refresh_tokens (session_id);
CREATE TABLE IF NOT EXISTS auth_one_time_tokens (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
  token_type TEXT NOT NULL,
  token_hash TEXT NOT NULL,
  relates_to TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (basalt_now())
);
CREATE INDEX IF NOT EXISTS auth_one_time_tokens_hash_idx ON auth_one_time_tokens (token_hash);
CREATE TABLE IF NOT EXISTS auth_flow_state (
  id TEXT PRIMARY KEY,
  user_id TEXT REFERENCES auth_users (id) ON DELETE CASCADE,
  auth_code TEXT NOT NULL,
  code_challenge_method TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  provider_type TEXT NOT NULL,
  authentication_method TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  updated_at TEXT NOT NULL DEFAULT (basalt_now()),
  auth_code_issued_at TEXT
);
CREATE INDEX IF NOT EXISTS auth_flow_state_code_idx ON auth_flow_state (auth_code);
CREATE TABLE IF NOT EXISTS auth_rate_limits (key TEXT PRIMARY KEY, tat INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS auth_mfa_factors (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES auth_users (id) ON DELETE CASCADE,
  friendly_name TEXT,
  factor_type TEXT NOT NULL,
  status TEXT NOT NULL,
  secret TEXT,
  last_challenged_at TEXT,
  last_used_step INTEGER,
  failed_attempts INTEGER NOT NULL DEFAULT 0,
  last_failed_at TEXT,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  updated_at TEXT NOT NULL DEFAULT (basalt_now())
);
CREATE UNIQUE INDEX IF NOT EXISTS auth_mfa_factors_user_friendly_name_unique ON auth_mfa_factors (friendly_name, user_id) WHERE trim(friendly_name) <> '';
CREATE INDEX IF NOT EXISTS auth_mfa_factors_user_id_idx ON auth_mfa_factors (user_id);
CREATE TABLE IF NOT EXISTS auth_mfa_challenges (
  id TEXT PRIMARY KEY,
  factor_id TEXT NOT NULL REFERENCES auth_mfa_factors (id) ON DELETE CASCADE,
  created_at TEXT NOT NULL DEFAULT (basalt_now()),
  verified_at TEXT,
  ip_address TEXT
);
CREATE TABLE IF NOT EXISTS auth_audit_log_entries (
  instance_id TEXT,
  id TEXT PRIMARY KEY,
  payload TEXT,
  created_at TEXT,
  ip_address TEXT NOT NULL DEFAULT ''
);
"#;

/// PostgreSQL: Supabase's roles, the `auth` schema, its tables and `auth.uid()`, `auth.role()`,
/// `auth.email()`, `auth.jwt()` reading `request.jwt.claims`, as PostgREST sets it.
pub const POSTGRES: &str = r#"
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN NOINHERIT; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'service_role') THEN CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS; END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
CREATE SCHEMA IF NOT EXISTS extensions;
DO $$
BEGIN
  CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
  CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'basalt: pgcrypto / uuid-ossp not available: %', SQLERRM;
END $$;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;
DO $$
BEGIN
  IF to_regprocedure('extensions.uuid_generate_v7()') IS NULL THEN
    CREATE FUNCTION extensions.uuid_generate_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $f$
      SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
        52, 1), 53, 1), 'hex')::uuid
    $f$;
    COMMENT ON FUNCTION extensions.uuid_generate_v7() IS 'Basalt: a version 7 uuid, 48 bits of Unix milliseconds, then gen_random_uuid()''s random bits with the version set to 7.';
  END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS auth;
CREATE TABLE IF NOT EXISTS auth.users (
  instance_id uuid,
  id uuid PRIMARY KEY,
  aud varchar(255) NOT NULL DEFAULT 'authenticated',
  role varchar(255) NOT NULL DEFAULT 'authenticated',
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_sent_at timestamptz,
  recovery_sent_at timestamptz,
  email_change varchar(255),
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb NOT NULL DEFAULT '{}',
  raw_user_meta_data jsonb NOT NULL DEFAULT '{}',
  phone text,
  phone_confirmed_at timestamptz,
  banned_until timestamptz,
  is_anonymous boolean NOT NULL DEFAULT false,
  is_sso_user boolean NOT NULL DEFAULT false,
  deleted_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON auth.users (lower(email)) WHERE email IS NOT NULL AND email <> '';
CREATE TABLE IF NOT EXISTS auth.identities (
  id uuid PRIMARY KEY,
  provider_id text NOT NULL,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  identity_data jsonb NOT NULL DEFAULT '{}',
  provider text NOT NULL,
  email text,
  last_sign_in_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider_id, provider)
);
CREATE TABLE IF NOT EXISTS auth.sessions (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  aal text NOT NULL DEFAULT 'aal1',
  amr jsonb NOT NULL DEFAULT '[]',
  not_after timestamptz,
  refreshed_at timestamptz,
  user_agent text,
  ip text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON auth.sessions (user_id);
CREATE TABLE IF NOT EXISTS auth.refresh_tokens (
  id bigserial PRIMARY KEY,
  token varchar(255) NOT NULL UNIQUE,
  user_id varchar(255) NOT NULL,
  revoked boolean NOT NULL DEFAULT false,
  parent varchar(255),
  session_id uuid NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS refresh_tokens_session_id_idx ON auth.refresh_tokens (session_id);
CREATE TABLE IF NOT EXISTS auth.one_time_tokens (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  token_type text NOT NULL,
  token_hash text NOT NULL,
  relates_to text NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS one_time_tokens_hash_idx ON auth.one_time_tokens (token_hash);
CREATE TABLE IF NOT EXISTS auth.flow_state (
  id uuid PRIMARY KEY,
  user_id uuid REFERENCES auth.users (id) ON DELETE CASCADE,
  auth_code text NOT NULL,
  code_challenge_method text NOT NULL,
  code_challenge text NOT NULL,
  provider_type text NOT NULL,
  authentication_method text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  auth_code_issued_at timestamptz
);
CREATE INDEX IF NOT EXISTS flow_state_code_idx ON auth.flow_state (auth_code);
CREATE TABLE IF NOT EXISTS auth.rate_limits (key text PRIMARY KEY, tat bigint NOT NULL);
CREATE TABLE IF NOT EXISTS auth.mfa_factors (
  id uuid PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  friendly_name text,
  factor_type text NOT NULL,
  status text NOT NULL,
  secret text,
  last_challenged_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- Columns older GoTrue schemas lack, and Basalt's own (`last_used_step`: codes are spent once).
ALTER TABLE auth.mfa_factors ADD COLUMN IF NOT EXISTS last_challenged_at timestamptz;
ALTER TABLE auth.mfa_factors ADD COLUMN IF NOT EXISTS last_used_step bigint;
ALTER TABLE auth.mfa_factors ADD COLUMN IF NOT EXISTS failed_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE auth.mfa_factors ADD COLUMN IF NOT EXISTS last_failed_at timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS mfa_factors_user_friendly_name_unique ON auth.mfa_factors (friendly_name, user_id) WHERE trim(friendly_name) <> '';
CREATE INDEX IF NOT EXISTS mfa_factors_user_id_idx ON auth.mfa_factors (user_id);
CREATE TABLE IF NOT EXISTS auth.mfa_challenges (
  id uuid PRIMARY KEY,
  factor_id uuid NOT NULL REFERENCES auth.mfa_factors (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  verified_at timestamptz,
  ip_address inet
);
CREATE TABLE IF NOT EXISTS auth.audit_log_entries (
  instance_id uuid,
  id uuid PRIMARY KEY,
  payload json,
  created_at timestamptz,
  ip_address varchar(64) NOT NULL DEFAULT ''
);
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
$f$;
CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT nullif(coalesce(current_setting('request.jwt.claim.role', true), current_setting('request.jwt.claims', true)::jsonb ->> 'role'), '')::text
$f$;
CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT nullif(coalesce(current_setting('request.jwt.claim.email', true), current_setting('request.jwt.claims', true)::jsonb ->> 'email'), '')::text
$f$;
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''), nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$f$;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
CREATE SCHEMA IF NOT EXISTS basalt;
CREATE OR REPLACE FUNCTION basalt.notify_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $f$
BEGIN
  NOTIFY basalt_schema;
END;
$f$;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'basalt_ddl_watch') THEN
    CREATE EVENT TRIGGER basalt_ddl_watch ON ddl_command_end EXECUTE FUNCTION basalt.notify_ddl();
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE WARNING 'basalt: no event trigger for schema reloads (needs a superuser); run NOTIFY basalt_schema after DDL';
END $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.email(), auth.jwt() TO anon, authenticated, service_role;
"#;
