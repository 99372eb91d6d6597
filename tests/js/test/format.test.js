// Representation: CSV, single-object media type, JSON wire format of each type, OpenAPI root.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, uniq, ok } from './helpers/server.js';

describe('format', () => {
  const ctx = useServer();

  async function newList(prefix = 'fmt') {
    return ok(await ctx.admin.from('lists').insert({ name: uniq(prefix) }).select().single(), 201);
  }

  test('.csv() returns a header line and one line per row', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'alpha', rank: 1 },
        { list_id: list.id, title: 'beta', rank: 2 },
        { list_id: list.id, title: 'gamma', rank: null },
      ]),
      201,
    );
    const res = await ctx.admin.from('todos').select('title,rank').eq('list_id', list.id).order('title').csv();
    const text = ok(res, 200);
    assert.equal(typeof text, 'string');
    const lines = text.replace(/\r?\n$/, '').split(/\r?\n/);
    assert.deepEqual(lines, ['title,rank', 'alpha,1', 'beta,2', 'gamma,']);
  });

  test('raw: text/csv content type', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'only' }), 201);
    const res = await ctx.rest(`/todos?select=title&list_id=eq.${list.id}`, { headers: { Accept: 'text/csv' } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/csv/);
    assert.deepEqual((await res.text()).replace(/\r?\n$/, '').split(/\r?\n/), ['title', 'only']);
  });

  test('.single() asks for application/vnd.pgrst.object+json and gets an object', async () => {
    const list = await newList();
    const obj = ok(await ctx.admin.from('lists').select('id, name').eq('id', list.id).single(), 200);
    assert.deepEqual(obj, { id: list.id, name: list.name });

    const res = await ctx.rest(`/lists?select=name&id=eq.${list.id}`, {
      headers: { Accept: 'application/vnd.pgrst.object+json' },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/vnd\.pgrst\.object\+json/);
    assert.deepEqual(await res.json(), { name: list.name });
  });

  test('raw: unsupported Accept → 406 PGRST107', async () => {
    const res = await ctx.rest('/lists?select=name', { headers: { Accept: 'application/xml' } });
    assert.equal(res.status, 406);
    assert.equal((await res.json()).code, 'PGRST107');
  });

  test('wire format: booleans, integers, numeric, jsonb, text[], date, null', async () => {
    const list = await newList();
    const meta = {
      nested: { deep: { deeper: [1, 2, { x: 'y' }] } },
      arr: [true, false, null, 1.5, 'str', [], {}],
      num: 12345678901,
      unicode: 'héllo ✓ 日本',
    };
    const tags = ['plain', 'with space', 'a,b', 'quote"d', 'back\\slash', '{brace}', 'NULL', ''];
    const inserted = ok(
      await ctx.admin
        .from('todos')
        .insert({
          list_id: list.id,
          title: 'types ✓',
          done: true,
          rank: 2147483647,
          tags,
          meta,
          due: '2026-07-04',
          price: 1234.5,
        })
        .select('id')
        .single(),
      201,
    );

    // Read the raw JSON text so the wire representation itself is checked.
    const res = await ctx.rest(`/todos?select=*&id=eq.${inserted.id}`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const [row] = JSON.parse(text);

    assert.equal(row.done, true);
    assert.equal(typeof row.done, 'boolean');
    assert.equal(row.rank, 2147483647);
    assert.equal(typeof row.rank, 'number');
    assert.equal(row.price, 1234.5);
    assert.equal(typeof row.price, 'number');
    assert.deepEqual(row.meta, meta);
    assert.deepEqual(row.tags, tags);
    assert.ok(Array.isArray(row.tags));
    assert.equal(row.due, '2026-07-04');
    assert.match(row.due, /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(row.title, 'types ✓');
    assert.equal(row.status, 'open');

    // Literal wire text checks.
    assert.match(text, /"done"\s*:\s*true/);
    assert.match(text, /"rank"\s*:\s*2147483647/);
    assert.match(text, /"price"\s*:\s*1234\.50*[,}]/);
    assert.match(text, /"due"\s*:\s*"2026-07-04"/);
  });

  test('wire format: false, nulls, negative and zero numbers', async () => {
    const list = await newList();
    const t = ok(
      await ctx.admin
        .from('todos')
        .insert({ list_id: list.id, title: 'zeros', done: false, rank: -1, price: 0 })
        .select('id')
        .single(),
      201,
    );
    const res = await ctx.rest(`/todos?select=done,rank,price,due,meta,tags&id=eq.${t.id}`);
    const text = await res.text();
    assert.deepEqual(JSON.parse(text), [{ done: false, rank: -1, price: 0, due: null, meta: {}, tags: [] }]);
    assert.match(text, /"done"\s*:\s*false/);
    assert.match(text, /"due"\s*:\s*null/);
  });

  test('numeric keeps fractional precision', async () => {
    const list = await newList();
    const row = ok(
      await ctx.admin.from('todos').insert({ list_id: list.id, title: 'precise', price: 0.1 }).select('price').single(),
      201,
    );
    assert.equal(row.price, 0.1);
    const upd = ok(
      await ctx.admin.from('todos').update({ price: 99.99 }).eq('list_id', list.id).select('price').single(),
      200,
    );
    assert.equal(upd.price, 99.99);
  });

  test('bigint primary key is a JSON number', async () => {
    const id = 9007199254740; // < 2^53
    ok(await ctx.admin.from('items').insert({ id, sku: uniq('big'), shop: 's' }), 201);
    const res = await ctx.rest(`/items?select=id,qty&id=eq.${id}`);
    const text = await res.text();
    assert.deepEqual(JSON.parse(text), [{ id, qty: 0 }]);
    assert.match(text, new RegExp(`"id"\\s*:\\s*${id}`));
  });

  test('jsonb scalar and array top-level values round-trip', async () => {
    const list = await newList();
    for (const meta of [[1, 'two', { three: 3 }], 'just a string', 42, true, null]) {
      const row = ok(
        await ctx.admin.from('todos').insert({ list_id: list.id, title: `json ${JSON.stringify(meta)}`, meta }).select('meta').single(),
        201,
      );
      assert.deepEqual(row, { meta });
    }
  });

  test('timestamps are RFC 3339 with +00:00 offset', async () => {
    const list = await newList();
    assert.match(list.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$/);
    assert.match(list.updated_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$/);
  });

  test('uuids are lowercase canonical form', async () => {
    const upper = 'A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D';
    const row = ok(await ctx.admin.from('lists').insert({ id: upper, name: uniq('upper') }).select('id').single(), 201);
    assert.equal(row.id, upper.toLowerCase());
  });

  test('CORS preflight (OPTIONS) allows browser clients', async () => {
    const res = await fetch(`${ctx.url}/rest/v1/todos`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://localhost:3000',
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers': 'apikey, authorization, content-type, prefer, x-client-info, content-profile',
      },
    });
    assert.ok(res.status === 200 || res.status === 204, `status ${res.status}`);
    const origin = res.headers.get('access-control-allow-origin');
    assert.ok(origin === '*' || origin === 'http://localhost:3000', `allow-origin ${origin}`);
    const methods = (res.headers.get('access-control-allow-methods') ?? '').toUpperCase();
    assert.ok(methods === '*' || methods.includes('POST'), `allow-methods ${methods}`);
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['apikey', 'authorization', 'content-type', 'prefer']) {
      assert.ok(allowed === '*' || allowed.includes(h), `allow-headers ${allowed} lacks ${h}`);
    }
    await res.arrayBuffer();
  });

  test('stripNulls() drops null-valued keys', async () => {
    const list = await newList();
    const t = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'sparse' }).select('id').single(), 201);
    const rows = ok(await ctx.admin.from('todos').select('title, rank, due').eq('id', t.id).stripNulls(), 200);
    assert.deepEqual(rows, [{ title: 'sparse' }]);
  });

  test('OpenAPI root: GET /rest/v1/ with the service key', async () => {
    const res = await ctx.rest('/');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /json/);
    const doc = await res.json();
    assert.equal(doc.swagger, '2.0');
    assert.ok(doc.definitions && typeof doc.definitions === 'object');
    assert.ok(doc.definitions.todos, 'definitions.todos');
    const props = doc.definitions.todos.properties;
    for (const col of ['id', 'list_id', 'title', 'done', 'rank', 'tags', 'meta', 'created_at', 'updated_at']) {
      assert.ok(props?.[col], `definitions.todos.properties.${col}`);
    }
    for (const t of ['lists', 'comments', 'items']) assert.ok(doc.definitions[t], `definitions.${t}`);
    assert.ok(doc.paths?.['/todos'], 'paths./todos');
  });
});
