"""The systems under test: Basalt (SQLite or PostgreSQL), PocketBase, the axum ceiling, and the
PostgreSQL helpers (databases for Basalt and pgbench). Each server system can start, load the
dataset, check that the owner rule holds, hand out raw requests per workload, and stop."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor

import dataset
from load import raw_request
from procs import HarnessError, expect, free_port, http, peak_rss_kib, wait_http

GET_ROWS_PER_USER = 20  # row ids per user that get_by_id picks from
CHUNK = 500  # rows per bulk-load request
ROW_NS = uuid.UUID("6f1c4f0e-0b6a-4c38-9a55-5b1a8e0f1d2c")

BASALT_SCHEMA = """# bench/run: the `generations` table, with the owner rule (a user reads and writes only own rows)
# and the audit trail on (every insert leaves a hash-chained audit entry in its transaction).
[tables.generations]
owner = "owner"
audit = true
columns.id       = { type = "uuid", primary_key = true, default = "uuidv7()" }
columns.owner    = { type = "uuid", not_null = true, default = "auth.uid()", references = "auth.users.id", on_delete = "cascade" }
columns.status   = { type = "text", not_null = true, default = "'queued'", one_of = ["queued", "running", "succeeded", "failed"] }
columns.prompt   = { type = "text", not_null = true }
columns.settings = { type = "jsonb", not_null = true, default = "'{}'" }
indexes = [{ columns = ["owner", "status", "created_at desc"] }]
"""


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def mint(secret, role):
    """A project key as Basalt (and Supabase) mints it: HS256 with a role claim."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"role": role, "iss": "basalt", "iat": 1735689600, "exp": 2366841600}
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def pmap(fn, items, workers=4):
    with ThreadPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(fn, items))


class Server:
    name = "?"
    proc = None

    def rss_kib(self):
        return peak_rss_kib(self.proc.pid) if self.proc else None

    def stop(self):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None


class Basalt(Server):
    def __init__(self, procs, binary, workdir, secret, database_url=None):
        self.procs, self.binary, self.secret, self.database_url = procs, binary, secret, database_url
        self.name = "basalt-postgres" if database_url else "basalt-sqlite"
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.anon, self.service = mint(secret, "anon"), mint(secret, "service_role")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(self.dir, "server.log")

    def start(self):
        schema = os.path.join(self.dir, "basalt.toml")
        with open(schema, "w") as f:
            f.write(BASALT_SCHEMA)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BASALT_") and k != "RUST_LOG"}
        env.update(
            BASALT_JWT_SECRET=self.secret,
            BASALT_AUTH_AUTOCONFIRM="true",
            BASALT_AUTH_RATE_LIMIT_IP_PER_MINUTE="100000000",
            BASALT_AUTH_RATE_LIMIT_EMAIL_PER_MINUTE="100000000",
        )
        argv = [self.binary, "serve", "--schema", schema, "--data-dir", os.path.join(self.dir, "data"), "--listen", f"127.0.0.1:{self.port}"]
        if self.database_url:
            argv += ["--database-url", self.database_url]
        self.proc = self.procs.start(self.name, argv, self.log, env=env, cwd=self.dir)
        wait_http(self.base + "/health", self.proc, 180, self.name, self.log)

    def _svc(self):
        return {"apikey": self.service, "Authorization": f"Bearer {self.service}"}

    def _user(self, tok):
        return {"apikey": self.anon, "Authorization": f"Bearer {tok}"}

    def load(self, rows):
        def create(i):
            body = {"email": dataset.email(i), "password": dataset.PASSWORD, "email_confirm": True}
            s, u = http("POST", self.base + "/auth/v1/admin/users", body, self._svc())
            return expect(s, u, 200, f"{self.name}: create user {i}")["id"]

        self.uids = pmap(create, range(dataset.USERS))
        self.row_ids = [[] for _ in range(dataset.USERS)]
        payload = []
        for i, (owner, status, prompt, settings) in enumerate(rows):
            rid = str(uuid.uuid5(ROW_NS, f"row-{i}"))
            self.row_ids[owner].append(rid)
            payload.append({"id": rid, "owner": self.uids[owner], "status": status, "prompt": prompt, "settings": settings})
        for at in range(0, len(payload), CHUNK):
            s, b = http("POST", self.base + "/rest/v1/generations", payload[at : at + CHUNK], {**self._svc(), "Prefer": "return=minimal"})
            expect(s, b, 201, f"{self.name}: bulk load")
        self.tokens = pmap(self.sign_in, range(dataset.USERS))

    def sign_in(self, i):
        body = {"email": dataset.email(i), "password": dataset.PASSWORD}
        s, b = http("POST", self.base + "/auth/v1/token?grant_type=password", body, {"apikey": self.anon})
        return expect(s, b, 200, f"{self.name}: sign in {i}")["access_token"]

    LIST = f"/rest/v1/generations?select=*&status=eq.{dataset.LIST_STATUS}&order=created_at.desc&limit=20"

    def verify(self):
        """The owner rule holds, and each workload's request answers what it should."""
        t0, t1, u0 = self.tokens[0], self.tokens[1], self.uids[0]
        s, b = http("GET", f"{self.base}/rest/v1/generations?id=eq.{self.row_ids[0][0]}&select=*", headers=self._user(t0))
        expect(s, b, 200, "get own row")
        if not (isinstance(b, list) and len(b) == 1 and b[0]["owner"] == u0):
            raise HarnessError(f"{self.name}: get own row answered {b}")
        s, b = http("GET", f"{self.base}/rest/v1/generations?id=eq.{self.row_ids[0][0]}&select=*", headers=self._user(t1))
        if (s, b) != (200, []):
            raise HarnessError(f"{self.name}: another user's row is visible: {s} {b}")
        s, b = http("GET", self.base + self.LIST, headers=self._user(t0))
        expect(s, b, 200, "list")
        if len(b) != 20 or any(r["owner"] != u0 or r["status"] != dataset.LIST_STATUS for r in b):
            raise HarnessError(f"{self.name}: list answered {len(b)} rows, or rows not the user's")
        if [r["created_at"] for r in b] != sorted((r["created_at"] for r in b), reverse=True):
            raise HarnessError(f"{self.name}: list is not newest first")
        body = dataset.inserts(1)[0]
        s, b = http("POST", self.base + "/rest/v1/generations", body, {**self._user(t0), "Prefer": "return=representation"})
        expect(s, b, 201, "insert")
        if b[0]["owner"] != u0:
            raise HarnessError(f"{self.name}: insert did not default owner to the user: {b}")
        s, log = http("GET", f"{self.base}/audit/v1/entries?table=generations&row_id={b[0]['id']}", headers=self._svc())
        expect(s, log, 200, "audit entries")
        if not (len(log) == 1 and log[0]["op"] == "INSERT" and log[0]["actor_id"] == u0):
            raise HarnessError(f"{self.name}: the insert left no audit entry by its user: {log}")
        s, b = http("POST", self.base + "/rest/v1/generations", {**body, "owner": self.uids[1]}, self._user(t0))
        if s != 403:
            raise HarnessError(f"{self.name}: inserting a row for another user answered {s}, not 403: {b}")
        self.sign_in(0)

    def requests(self, inserts):
        host = f"127.0.0.1:{self.port}"
        acc = {"Accept": "application/json"}
        get, lst, ins, sig = [], [], [], []
        for u in range(dataset.USERS):
            h = {**self._user(self.tokens[u]), **acc}
            for rid in self.row_ids[u][:GET_ROWS_PER_USER]:
                get.append(raw_request(host, "GET", f"/rest/v1/generations?id=eq.{rid}&select=*", h))
            lst.append(raw_request(host, "GET", self.LIST, h))
            body = {"email": dataset.email(u), "password": dataset.PASSWORD}
            sig.append(raw_request(host, "POST", "/auth/v1/token?grant_type=password", {"apikey": self.anon, "Content-Type": "application/json"}, body))
        for j, body in enumerate(inserts):
            h = {**self._user(self.tokens[j % dataset.USERS]), **acc, "Content-Type": "application/json", "Prefer": "return=representation"}
            ins.append(raw_request(host, "POST", "/rest/v1/generations", h, body))
        return {"get": get, "list": lst, "insert": ins, "sign_in": sig}


class PocketBase(Server):
    name = "pocketbase"
    ADMIN = ("admin@bench.example.com", "bench-admin-password-123")

    def __init__(self, procs, binary, workdir):
        self.procs, self.binary = procs, binary
        self.dir = os.path.join(workdir, "pocketbase")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "pb_data")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(self.dir, "server.log")

    def version(self):
        return subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()

    def start(self):
        self.procs.run([self.binary, "superuser", "upsert", *self.ADMIN, "--dir", self.data], timeout=60)
        argv = [self.binary, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", self.data]
        self.proc = self.procs.start(self.name, argv, self.log, cwd=self.dir)
        wait_http(self.base + "/api/health", self.proc, 60, self.name, self.log)
        s, b = http("POST", self.base + "/api/collections/_superusers/auth-with-password", {"identity": self.ADMIN[0], "password": self.ADMIN[1]})
        self.admin = expect(s, b, 200, "pocketbase superuser sign-in")["token"]
        # Batch API on for the bulk load; request logs off (Basalt keeps none either); rate limits stay off (the default).
        settings = {"batch": {"enabled": True, "maxRequests": CHUNK, "timeout": 120, "maxBodySize": 0}, "logs": {"maxDays": 0}}
        s, b = http("PATCH", self.base + "/api/settings", settings, self._adm())
        expect(s, b, 200, "pocketbase settings")
        rule = "owner = @request.auth.id"
        coll = {
            "name": "generations",
            "type": "base",
            "listRule": rule,
            "viewRule": rule,
            "createRule": rule,
            "updateRule": rule,
            "deleteRule": rule,
            "fields": [
                {"name": "owner", "type": "relation", "required": True, "collectionId": "_pb_users_auth_", "maxSelect": 1, "cascadeDelete": True},
                {"name": "status", "type": "select", "required": True, "maxSelect": 1, "values": list(dataset.STATUSES)},
                {"name": "prompt", "type": "text", "required": True},
                {"name": "settings", "type": "json"},
                {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
                {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
            ],
            "indexes": ["CREATE INDEX idx_generations_owner_status_created ON generations (owner, status, created)"],
        }
        s, b = http("POST", self.base + "/api/collections", coll, self._adm())
        expect(s, b, 200, "pocketbase create collection")

    def _adm(self):
        return {"Authorization": self.admin}

    def load(self, rows):
        def create(i):
            body = {"email": dataset.email(i), "password": dataset.PASSWORD, "passwordConfirm": dataset.PASSWORD, "verified": True}
            s, u = http("POST", self.base + "/api/collections/users/records", body, self._adm())
            return expect(s, u, 200, f"pocketbase: create user {i}")["id"]

        self.uids = pmap(create, range(dataset.USERS))
        self.row_ids = [[] for _ in range(dataset.USERS)]
        reqs = []
        for i, (owner, status, prompt, settings) in enumerate(rows):
            rid = f"g{i:014d}"  # PocketBase ids are 15 characters of [a-z0-9]
            self.row_ids[owner].append(rid)
            body = {"id": rid, "owner": self.uids[owner], "status": status, "prompt": prompt, "settings": settings}
            reqs.append({"method": "POST", "url": "/api/collections/generations/records", "body": body})
        for at in range(0, len(reqs), CHUNK):
            s, b = http("POST", self.base + "/api/batch", {"requests": reqs[at : at + CHUNK]}, self._adm(), timeout=300)
            expect(s, b, 200, "pocketbase: batch load")
            bad = [r for r in b if r.get("status") != 200]
            if bad:
                raise HarnessError(f"pocketbase: batch load: {bad[:2]}")
        self.tokens = pmap(self.sign_in, range(dataset.USERS))

    def sign_in(self, i):
        body = {"identity": dataset.email(i), "password": dataset.PASSWORD}
        s, b = http("POST", self.base + "/api/collections/users/auth-with-password", body)
        return expect(s, b, 200, f"pocketbase: sign in {i}")["token"]

    LIST = "/api/collections/generations/records?" + urllib.parse.urlencode(
        {"filter": f"status='{dataset.LIST_STATUS}'", "sort": "-created", "perPage": 20, "skipTotal": 1}
    )

    def verify(self):
        t0, t1, u0 = self.tokens[0], self.tokens[1], self.uids[0]
        rec = f"{self.base}/api/collections/generations/records/{self.row_ids[0][0]}"
        s, b = http("GET", rec, headers={"Authorization": t0})
        expect(s, b, 200, "pocketbase: get own row")
        if b["owner"] != u0:
            raise HarnessError(f"pocketbase: get own row answered {b}")
        s, b = http("GET", rec, headers={"Authorization": t1})
        if s != 404:
            raise HarnessError(f"pocketbase: another user's row is visible: {s} {b}")
        s, b = http("GET", self.base + self.LIST, headers={"Authorization": t0})
        items = expect(s, b, 200, "pocketbase: list")["items"]
        if len(items) != 20 or any(r["owner"] != u0 or r["status"] != dataset.LIST_STATUS for r in items):
            raise HarnessError(f"pocketbase: list answered {len(items)} rows, or rows not the user's")
        body = {**dataset.inserts(1)[0], "owner": u0}
        s, b = http("POST", self.base + "/api/collections/generations/records", body, {"Authorization": t0})
        expect(s, b, 200, "pocketbase: insert")
        s, b = http("POST", self.base + "/api/collections/generations/records", {**body, "owner": self.uids[1]}, {"Authorization": t0})
        if s < 400:
            raise HarnessError(f"pocketbase: inserting a row for another user answered {s}: {b}")
        self.sign_in(0)

    def requests(self, inserts):
        host = f"127.0.0.1:{self.port}"
        get, lst, ins, sig = [], [], [], []
        for u in range(dataset.USERS):
            h = {"Authorization": self.tokens[u], "Accept": "application/json"}
            for rid in self.row_ids[u][:GET_ROWS_PER_USER]:
                get.append(raw_request(host, "GET", f"/api/collections/generations/records/{rid}", h))
            lst.append(raw_request(host, "GET", self.LIST, h))
            body = {"identity": dataset.email(u), "password": dataset.PASSWORD}
            sig.append(raw_request(host, "POST", "/api/collections/users/auth-with-password", {"Content-Type": "application/json"}, body))
        for j, body in enumerate(inserts):
            u = j % dataset.USERS
            h = {"Authorization": self.tokens[u], "Accept": "application/json", "Content-Type": "application/json"}
            ins.append(raw_request(host, "POST", "/api/collections/generations/records", h, {**body, "owner": self.uids[u]}))
        return {"get": get, "list": lst, "insert": ins, "sign_in": sig}


class Ceiling(Server):
    name = "ceiling-axum"

    def __init__(self, procs, binary, workdir):
        self.procs, self.binary = procs, binary
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = os.path.join(workdir, "ceiling.log")

    def start(self):
        self.proc = self.procs.start(self.name, [self.binary, f"127.0.0.1:{self.port}"], self.log)
        wait_http(self.base + "/health", self.proc, 30, self.name, self.log)
        s, b = http("GET", self.base + "/")
        if (s, b) != (200, "hello"):
            raise HarnessError(f"ceiling answered {s} {b}")

    def requests(self):
        return {"hello": [raw_request(f"127.0.0.1:{self.port}", "GET", "/", {})]}


class Postgres:
    """Databases of our own on the local PostgreSQL (trust auth), dropped at the end."""

    def __init__(self, procs, admin_url):
        self.procs, self.admin_url = procs, admin_url
        self.psql = shutil.which("psql")
        self.created = []

    def url(self, db):
        p = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))

    def sql(self, sql, db=None, timeout=60):
        url = self.url(db) if db else self.admin_url
        return self.procs.run([self.psql, url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], timeout=timeout)[1].strip()

    def available(self):
        if not self.psql:
            return "psql not found"
        try:
            self.version = self.sql("select version()", timeout=15)
        except HarnessError as e:
            return str(e).splitlines()[0]
        return None

    def create(self, db):
        self.sql(f"CREATE DATABASE {db}")
        self.created.append(db)
        return self.url(db)

    def drop_all(self):
        for db in self.created:
            try:
                self.sql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            except HarnessError as e:
                print(f"warning: could not drop database {db}: {e}")
        self.created = []
