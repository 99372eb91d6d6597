// Error mapping: SQLSTATE / PGRST codes, HTTP statuses, auth failures, atomic bulk writes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { useServer, uniq, ok, fails, mintJwt, mintKey, makeClient } from './helpers/server.js';

/** POST a large body with node:http so an early 413 + close is still observed. */
function postRaw(url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) } });
    let response = null;
    req.on('response', (res) => {
      response = res;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve({ status: res.statusCode, headers: res.headers, body: '' }));
    });
    req.on('error', (err) => {
      if (!response) reject(err);
    });
    req.end(body);
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

  test('unique violation → 409 23505', async () => {
    const name = uniq('dup');
    ok(await ctx.admin.from('lists').insert({ name }), 201);
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

  test('anon key cannot read todos → 401', async () => {
    const res = await ctx.anon.from('todos').select('*');
    assert.ok(res.error, `expected an error, got ${JSON.stringify(res.data)}`);
    assert.equal(res.status, 401);
    assert.equal(res.data, null);
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
