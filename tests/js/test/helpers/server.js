// Shared test harness: starts one Basalt server per test file.
//
// - binary: $BASALT_BIN, else ../../target/debug/basalt relative to tests/js
// - storage: a fresh temp --data-dir (SQLite); or, when $BASALT_TEST_DATABASE_URL is
//   set, a fresh PostgreSQL database basalt_js_<hex> that is dropped afterwards.
// - keys: HS256 JWTs minted here from a fixed test secret.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { createClient } from '@supabase/supabase-js';
import pg from 'pg';
import assert from 'node:assert/strict';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Absolute path of tests/js. */
export const JS_ROOT = path.resolve(HERE, '..', '..');
export const SCHEMA_PATH = path.join(JS_ROOT, 'schema.toml');

/** Fixed 40-character JWT secret shared by the server and the tests. */
export const JWT_SECRET = 'basalt-js-conformance-secret-0123456789a';
if (JWT_SECRET.length !== 40) throw new Error('test secret must be 40 chars');

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export function basaltBin() {
  return process.env.BASALT_BIN
    ? path.resolve(process.env.BASALT_BIN)
    : path.resolve(JS_ROOT, '..', '..', 'target', 'debug', 'basalt');
}

// ---------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** Mint an HS256 JWT for arbitrary claims (default: the test secret). */
export function mintJwt(claims, secret = JWT_SECRET) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  return `${header}.${payload}.${b64url(sig)}`;
}

export const KEY_IAT = 1735689600; // 2025-01-01T00:00:00Z
export const KEY_EXP = 2366841600; // 2045-01-01T00:00:00Z

/**
 * The opaque key Basalt derives for a prefix (`sb_publishable_`, `sb_secret_`): the prefix and
 * 32 characters of base64url HMAC-SHA256(secret, prefix), as Basalt prints them at start.
 */
export function mintOpaqueKey(prefix, secret = JWT_SECRET) {
  return prefix + crypto.createHmac('sha256', secret).update(prefix).digest('base64url').slice(0, 32);
}

/** Mint a project key (legacy JWT key) for a role. */
export function mintKey(role, secret = JWT_SECRET) {
  return mintJwt({ role, iss: 'basalt', iat: KEY_IAT, exp: KEY_EXP }, secret);
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withDatabase(urlString, dbName) {
  const u = new URL(urlString);
  u.pathname = `/${dbName}`;
  return u.toString();
}

async function adminQuery(urlString, sql) {
  const client = new pg.Client({ connectionString: urlString });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

/**
 * Start a Basalt server. Resolves to
 * `{ url, anonKey, serviceKey, backend, dataDir, stop(), stderr() }`.
 *
 * Options: `schema` (path to a .toml, absolute or relative to tests/js; default `schema.toml`)
 * and `env` (extra environment variables for the server, e.g. `BASALT_AUTH_AUTOCONFIRM`).
 */
export async function startServer(options = {}) {
  const schemaPath = options.schema ? path.resolve(JS_ROOT, options.schema) : SCHEMA_PATH;
  if (!fs.existsSync(schemaPath)) throw new Error(`schema not found at ${schemaPath}`);
  const extraEnv = Object.fromEntries(Object.entries(options.env ?? {}).map(([k, v]) => [k, String(v)]));
  const bin = basaltBin();
  // The binary may be replaced by a rebuild right now: give it a moment to reappear.
  for (let i = 0; i < 60 && !fs.existsSync(bin); i++) await sleep(1_000);
  if (!fs.existsSync(bin)) {
    throw new Error(`basalt binary not found at ${bin} (build it, or set BASALT_BIN)`);
  }
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'basalt-js-'));
  const args = [
    'serve',
    '--schema', schemaPath,
    '--data-dir', dataDir,
    '--listen', `127.0.0.1:${port}`,
  ];

  const adminUrl = process.env.BASALT_TEST_DATABASE_URL;
  let dbName = null;
  if (adminUrl) {
    dbName = `basalt_js_${crypto.randomBytes(6).toString('hex')}`;
    await adminQuery(adminUrl, `CREATE DATABASE "${dbName}"`);
    args.push('--database-url', withDatabase(adminUrl, dbName));
  }

  const child = spawn(bin, args, {
    cwd: JS_ROOT,
    env: { ...process.env, BASALT_JWT_SECRET: JWT_SECRET, RUST_LOG: 'warn', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);

  let output = '';
  const keep = (chunk) => {
    output += chunk.toString();
    if (output.length > 64_000) output = output.slice(-64_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve(exited);
    });
    child.on('error', (err) => {
      exited = { code: null, signal: null, err };
      live.delete(child);
      resolve(exited);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!exited) child.kill('SIGKILL');
      }, STOP_TIMEOUT_MS);
      await exitPromise;
      clearTimeout(timer);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (dbName) {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    }
  };

  // Wait for GET /health to answer 200.
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      await stop();
      const how = exited.err ? `failed to spawn: ${exited.err.message}` : `exited with code ${exited.code} signal ${exited.signal}`;
      throw new Error(`basalt ${how}\n--- server output ---\n${output}`);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`basalt did not become healthy within ${STARTUP_TIMEOUT_MS} ms\n--- server output ---\n${output}`);
    }
    await sleep(100);
  }

  return {
    url,
    anonKey: mintKey('anon'),
    serviceKey: mintKey('service_role'),
    backend: dbName ? 'postgres' : 'sqlite',
    dataDir,
    stop,
    stderr: () => output,
  };
}

// ---------------------------------------------------------------------------
// Clients and per-file fixture
// ---------------------------------------------------------------------------

/** supabase-js client that works on Node 20 (dummy realtime transport, no session). */
export function makeClient(url, key, options = {}) {
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: class DummyWebSocket {} },
    ...options,
  });
}

/**
 * Register before/after hooks that start one server for the enclosing suite.
 * Returns a context object filled in by `before`:
 * `{ url, anonKey, serviceKey, admin, anon, server, rest(path, init) }`.
 * Call it inside a `describe` callback. `options` as for `startServer` (`schema`, `env`).
 */
export function useServer(options = {}) {
  const ctx = {};
  before(async () => {
    const server = await startServer(options);
    ctx.server = server;
    ctx.url = server.url;
    ctx.anonKey = server.anonKey;
    ctx.serviceKey = server.serviceKey;
    ctx.admin = makeClient(server.url, server.serviceKey);
    ctx.anon = makeClient(server.url, server.anonKey);
    // Raw fetch against /rest/v1 with the service key unless headers override it.
    ctx.rest = (p, init = {}) => {
      const headers = new Headers(init.headers ?? {});
      if (!headers.has('apikey')) headers.set('apikey', server.serviceKey);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${server.serviceKey}`);
      return fetch(`${server.url}/rest/v1${p}`, { ...init, headers });
    };
  });
  after(async () => {
    if (ctx.server) await ctx.server.stop();
  });
  return ctx;
}

/** A short unique string for row names in tests. */
export function uniq(prefix = 't') {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

export { sleep };

/**
 * Assert a supabase-js result has no error (and optionally a status); return its data.
 */
export function ok(result, status) {
  assert.equal(result.error, null, `unexpected error (HTTP ${result.status}): ${JSON.stringify(result.error)}`);
  if (status !== undefined) assert.equal(result.status, status, `unexpected HTTP status ${result.status}`);
  return result.data;
}

/**
 * Assert a supabase-js result failed with the given HTTP status and error code.
 */
export function fails(result, status, code) {
  assert.ok(result.error, `expected an error, got HTTP ${result.status} data=${JSON.stringify(result.data)}`);
  assert.equal(result.status, status, `HTTP status (error=${JSON.stringify(result.error)})`);
  if (code !== undefined) assert.equal(result.error.code, code, `error code (error=${JSON.stringify(result.error)})`);
  assert.equal(result.data, null);
  return result.error;
}

/**
 * The newest message in the server's file outbox (`<data-dir>/outbox/*.json`) addressed to
 * `email` (and of `type`, when given): `{ to, type, subject, link, otp, text }`. Waits up to
 * `timeoutMs` for it to appear.
 */
export async function lastMail(server, email, type, timeoutMs = 5_000) {
  const dir = path.join(server.dataDir, 'outbox');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.json')).sort() : [];
    for (const name of names.reverse()) {
      let mail;
      try {
        mail = JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));
      } catch {
        continue; // still being written
      }
      if (mail.to?.toLowerCase() === email.toLowerCase() && (type === undefined || mail.type === type)) return mail;
    }
    if (Date.now() > deadline) throw new Error(`no ${type ?? ''} mail to ${email} in ${dir} (files: ${names.join(', ')})`);
    await sleep(50);
  }
}
