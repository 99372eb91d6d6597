// Error mapping: SQLSTATE / PGRST codes, HTTP statuses, auth failures, atomic bulk writes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import { useServer, uniq, ok, fails, mintJwt, mintKey, makeClient } from './helpers/server.js';

/**
 * POST a large body over a raw socket the way curl does it: with `Expect: 100-continue`, the
 * body is only sent after `100 Continue` (or after 1 s without an answer). A server that
 * rejects on Content-Length answers right away; one that reads first still gets the body,
 * and writing stops as soon as any final response bytes arrive (no EPIPE race).
 */
function postRaw(urlString, headers, body) {
  const u = new URL(urlString);
  const buf = Buffer.from(body);
  const finalStatus = (text) => {
    const rest = text.replace(/^HTTP\/1\.[01] 100[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n/, '');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(rest);
    return m ? Number(m[1]) : null;
  };
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    const received = [];
    let sockErr = null;
    let onData = null;
    const text = () => Buffer.concat(received).toString('latin1');
    sock.on('data', (c) => {
      received.push(c);
      onData?.();
    });
    sock.on('error', (e) => {
      sockErr = e;
    });
    sock.on('close', () => {
      const status = finalStatus(text());
      if (status !== null) resolve({ status, raw: text() });
      else reject(sockErr ?? new Error('connection closed without a response'));
    });
    sock.on('connect', async () => {
      const head = [
        `POST ${u.pathname}${u.search} HTTP/1.1`,
        `host: ${u.host}`,
        'connection: close',
        'expect: 100-continue',
        `content-length: ${buf.length}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n');
      sock.write(head);
      // Wait for 100 Continue, an early final response, or 1 s.
      await new Promise((r) => {
        const timer = setTimeout(r, 1000);
        onData = () => {
          clearTimeout(timer);
          r();
        };
        sock.once('close', r);
      });
      onData = null;
      for (let i = 0; i < buf.length; i += 65536) {
        if (finalStatus(text()) !== null || sockErr || sock.destroyed) return;
        if (!sock.write(buf.subarray(i, i + 65536))) {
          await new Promise((r) => {
            sock.once('drain', r);
            sock.once('close', r);
          });
        }
        // Let pending reads run: stop sending once the server has answered.
        await new Promise((r) => setImmediate(r));
      }
      if (!sock.destroyed) sock.end();
    });
  });
}

describe('errors', () => {
  const ctx = useServer();

  async function newList(prefix = 'err') {
    return ok(await ctx.admin.from('lists').insert({ name: uniq(prefix) }).select().single(), 201);
  }

  test('error bodies have code, details, hint and message', async () => {
    const res = await ctx.rest('/nope_table?select=*');
    assert.equal(res.status, 404);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const body = await res.json();
    for (const k of ['code', 'details', 'hint', 'message']) assert.ok(k in body, `missing "${k}" in ${JSON.stringify(body)}`);
    assert.equal(body.code, 'PGRST205');
    assert.equal(typeof body.message, 'string');
  });

  test('unique violation → 409 23505 (text uniqueness is case-sensitive)', async () => {
    const name = uniq('dup');
    ok(await ctx.admin.from('lists').insert({ name }), 201);
    ok(await ctx.admin.from('lists').insert({ name: name.toUpperCase() }), 201);
    const err = fails(await ctx.admin.from('lists').insert({ name }), 409, '23505');
    assert.equal(typeof err.message, 'string');
    const rows = ok(await ctx.admin.from('lists').select('name').eq('name', name), 200);
    assert.equal(rows.length, 1);
  });

  test('duplicate primary key → 409 23505', async () => {
    const list = await newList();
    fails(await ctx.admin.from('lists').insert({ id: list.id, name: uniq('other') }), 409, '23505');
  });

  test('foreign key violation → 409 23503', async () => {
    fails(await ctx.admin.from('todos').insert({ list_id: crypto.randomUUID(), title: 'fk' }), 409, '23503');
    fails(await ctx.admin.from('comments').insert({ todo_id: crypto.randomUUID(), body: 'fk' }), 409, '23503');
  });

  test('foreign key violation on update → 409 23503', async () => {
    const list = await newList();
    const t = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'fk-upd' }).select('id').single(), 201);
    fails(await ctx.admin.from('todos').update({ list_id: crypto.randomUUID() }).eq('id', t.id), 409, '23503');
  });

  test('not-null violation → 400 23502', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').insert({ list_id: list.id }), 400, '23502');
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: null }), 400, '23502');
  });

  test('not-null violation on update → 400 23502', async () => {
    const list = await newList();
    const t = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'nn' }).select('id').single(), 201);
    fails(await ctx.admin.from('todos').update({ title: null }).eq('id', t.id), 400, '23502');
    const row = ok(await ctx.admin.from('todos').select('title').eq('id', t.id).single(), 200);
    assert.equal(row.title, 'nn');
  });

  test('one_of check violation → 400 23514', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'chk', status: 'bogus' }), 400, '23514');
    const t = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'chk2' }).select('id').single(), 201);
    fails(await ctx.admin.from('todos').update({ status: 'Open' }).eq('id', t.id), 400, '23514');
  });

  test('invalid uuid in a filter → 400 22P02', async () => {
    fails(await ctx.admin.from('todos').select('*').eq('id', 'not-a-uuid'), 400, '22P02');
  });

  test('invalid integer / boolean in a filter → 400 22P02', async () => {
    fails(await ctx.admin.from('todos').select('*').eq('rank', 'abc'), 400, '22P02');
    fails(await ctx.admin.from('todos').select('*').eq('done', 'maybe'), 400, '22P02');
  });

  test('invalid value in an insert body → 400 22P02', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'bad', rank: 'abc' }), 400, '22P02');
    fails(await ctx.admin.from('todos').insert({ list_id: 'xyz', title: 'bad' }), 400, '22P02');
  });

  test('integer out of range / non-integer → 400 22003 / 22P02', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'big', rank: 2147483648 }), 400, '22003');
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'frac', rank: 1.5 }), 400, '22P02');
    assert.deepEqual(ok(await ctx.admin.from('todos').select('id').eq('list_id', list.id), 200), []);
  });

  test('invalid dates → 400 22008 / 22007', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'feb30', due: '2026-02-30' }), 400, '22008');
    fails(await ctx.admin.from('todos').select('id').eq('due', 'not-a-date'), 400, '22007');
  });

  test('unknown table → 404 PGRST205', async () => {
    fails(await ctx.admin.from('no_such_table').select('*'), 404, 'PGRST205');
    fails(await ctx.admin.from('no_such_table').insert({ a: 1 }), 404, 'PGRST205');
  });

  test('unknown column in select → 400 42703', async () => {
    fails(await ctx.admin.from('todos').select('id, no_such_column'), 400, '42703');
  });

  test('unknown column in a filter → 400 42703', async () => {
    fails(await ctx.admin.from('todos').select('id').eq('no_such_column', 1), 400, '42703');
  });

  test('unknown column in an insert body → 400 PGRST204', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'x', no_such_column: 1 }), 400, 'PGRST204');
    fails(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'y' },
        { list_id: list.id, title: 'z', no_such_column: 1 },
      ]),
      400,
      'PGRST204',
    );
    const rows = ok(await ctx.admin.from('todos').select('id').eq('list_id', list.id), 200);
    assert.deepEqual(rows, []);
  });

  test('unknown column in an update body → 400 PGRST204', async () => {
    const list = await newList();
    fails(await ctx.admin.from('todos').update({ no_such_column: 1 }).eq('list_id', list.id), 400, 'PGRST204');
  });

  test('embedding an unrelated table → 400 PGRST200', async () => {
    fails(await ctx.admin.from('todos').select('id, items(*)'), 400, 'PGRST200');
  });

  test('filter on an embed that is not selected → 400 PGRST108', async () => {
    fails(await ctx.admin.from('todos').select('title').eq('comments.approved', true), 400, 'PGRST108');
  });

  test('unknown schema in Accept-Profile → 406 PGRST106', async () => {
    const res = await ctx.rest('/todos?select=id', { headers: { 'Accept-Profile': 'other' } });
    assert.equal(res.status, 406);
    assert.equal((await res.json()).code, 'PGRST106');
    const viaClient = await ctx.admin.schema('other').from('todos').select('id');
    fails(viaClient, 406, 'PGRST106');
  });

  test('bad filter operator (raw ?rank=eqq.1) → 400 PGRST100', async () => {
    const res = await ctx.rest('/todos?select=id&rank=eqq.1');
    assert.equal(res.status, 400);
    const body = await res.json();
    assert.equal(body.code, 'PGRST100');
  });

  test('malformed select / order (raw) → 400 PGRST100', async () => {
    let res = await ctx.rest('/todos?select=id,lists(name');
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'PGRST100');
    res = await ctx.rest('/todos?select=id&order=rank.sideways');
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'PGRST100');
  });

  test('invalid JSON body (raw) → 400 PGRST102', async () => {
    const res = await ctx.rest('/lists', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name": ',
    });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).code, 'PGRST102');
  });

  test('single() with 0 rows → 406 PGRST116', async () => {
    const err = fails(await ctx.admin.from('lists').select('*').eq('name', uniq('none')).single(), 406, 'PGRST116');
    assert.match(String(err.details), /0 rows/);
  });

  test('single() with 2 rows → 406 PGRST116', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'one' },
        { list_id: list.id, title: 'two' },
      ]),
      201,
    );
    const err = fails(await ctx.admin.from('todos').select('*').eq('list_id', list.id).single(), 406, 'PGRST116');
    assert.match(String(err.details), /2 rows/);
  });

  test('oversized request body (20 MB) → 413', async () => {
    const body = `[{"name":"${'x'.repeat(20 * 1024 * 1024)}"}]`;
    const res = await postRaw(
      `${ctx.url}/rest/v1/lists`,
      {
        apikey: ctx.serviceKey,
        authorization: `Bearer ${ctx.serviceKey}`,
        'content-type': 'application/json',
      },
      body,
    );
    assert.equal(res.status, 413);
  });

  test('anon key cannot see todos (no policies): 401 42501 or RLS-filtered []', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'secret' }), 201);
    const res = await ctx.anon.from('todos').select('*').eq('list_id', list.id);
    if (res.error) {
      // Table privileges withheld from anon (PostgREST: permission denied → 401).
      assert.equal(res.status, 401, JSON.stringify(res.error));
      assert.equal(res.error.code, '42501');
      assert.equal(res.data, null);
    } else {
      // Supabase-style: anon has grants, RLS is on and no policy matches → no rows, no error.
      assert.equal(res.status, 200);
      assert.deepEqual(res.data, []);
    }
  });

  test('anon key cannot insert into todos → 401', async () => {
    const res = await ctx.anon.from('todos').insert({ title: 'anon write' });
    assert.ok(res.error);
    assert.equal(res.status, 401);
  });

  test('missing apikey and Authorization (raw) → 401', async () => {
    const res = await fetch(`${ctx.url}/rest/v1/todos?select=id`);
    assert.equal(res.status, 401);
    await res.arrayBuffer();
  });

  test('Authorization without apikey header (raw) → 401', async () => {
    const res = await fetch(`${ctx.url}/rest/v1/todos?select=id`, {
      headers: { authorization: `Bearer ${ctx.serviceKey}` },
    });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
  });

  test('Authorization bearer wins over the apikey for the role', async () => {
    const client = makeClient(ctx.url, ctx.anonKey, {
      global: { headers: { Authorization: `Bearer ${ctx.serviceKey}` } },
    });
    const res = await client.from('todos').select('id').limit(1);
    assert.equal(res.error, null, JSON.stringify(res.error));
    assert.equal(res.status, 200);
  });

  test('key signed with another secret → 401', async () => {
    const forged = mintKey('service_role', 'some-other-secret-that-is-40-chars-long!');
    const res = await makeClient(ctx.url, forged).from('todos').select('id');
    assert.ok(res.error);
    assert.equal(res.status, 401);
  });

  test('expired JWT → 401', async () => {
    const expired = mintJwt({ role: 'service_role', iss: 'basalt', iat: 1600000000, exp: 1600003600 });
    const res = await ctx.rest('/todos?select=id', {
      headers: { apikey: ctx.serviceKey, authorization: `Bearer ${expired}` },
    });
    assert.equal(res.status, 401);
    await res.arrayBuffer();
  });

  test('bulk insert where the 2nd row fails leaves no rows', async () => {
    const list = await newList();
    const res = await ctx.admin.from('todos').insert([
      { list_id: list.id, title: 'first is fine' },
      { list_id: list.id, title: null },
      { list_id: list.id, title: 'third is fine' },
    ]);
    fails(res, 400, '23502');
    assert.deepEqual(ok(await ctx.admin.from('todos').select('id').eq('list_id', list.id), 200), []);
  });

  test('bulk insert with a duplicate inside the batch leaves no rows', async () => {
    const name = uniq('batch-dup');
    const other = uniq('batch-ok');
    fails(await ctx.admin.from('lists').insert([{ name: other }, { name }, { name }]), 409, '23505');
    assert.deepEqual(ok(await ctx.admin.from('lists').select('id').in('name', [name, other]), 200), []);
  });
});
