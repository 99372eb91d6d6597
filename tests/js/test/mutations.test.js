// Writes: insert, bulk insert (columns=), upsert, update, delete, single() on writes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, uniq, ok, fails, sleep } from './helpers/server.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIMESTAMPTZ = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$/;

/** Distinct item ids per test (bigint primary key without default). */
let nextItemId = 1000;
const itemIds = (n) => Array.from({ length: n }, () => nextItemId++);

function assertRecent(ts, label) {
  assert.match(ts, TIMESTAMPTZ, `${label} format: ${ts}`);
  const delta = Math.abs(Date.parse(ts) - Date.now());
  assert.ok(delta < 5 * 60_000, `${label} ${ts} should be close to now`);
}

describe('mutations', () => {
  const ctx = useServer();

  async function newList(prefix = 'mut') {
    return ok(await ctx.admin.from('lists').insert({ name: uniq(prefix) }).select().single(), 201);
  }

  async function todosOf(listId, columns = 'title') {
    return ok(await ctx.admin.from('todos').select(columns).eq('list_id', listId).order('title'), 200);
  }

  test('insert one: 201 with no body', async () => {
    const name = uniq('insert-one');
    const res = await ctx.admin.from('lists').insert({ name });
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    assert.equal(res.data, null);
    const rows = ok(await ctx.admin.from('lists').select('name').eq('name', name), 200);
    assert.deepEqual(rows, [{ name }]);
  });

  test('insert().select().single(): the created row with defaults filled', async () => {
    const list = await newList();
    const res = await ctx.admin.from('todos').insert({ list_id: list.id, title: 'fresh' }).select().single();
    const row = ok(res, 201);
    assert.ok(row && !Array.isArray(row), 'single() gives an object');
    assert.match(row.id, UUID_V4);
    assert.equal(row.list_id, list.id);
    assert.equal(row.title, 'fresh');
    assert.equal(row.done, false);
    assert.equal(row.rank, null);
    assert.deepEqual(row.tags, []);
    assert.deepEqual(row.meta, {});
    assert.equal(row.status, 'open');
    assert.equal(row.due, null);
    assert.equal(row.price, null);
    assertRecent(row.created_at, 'created_at');
    assertRecent(row.updated_at, 'updated_at');
    assert.ok(Date.parse(row.updated_at) >= Date.parse(row.created_at));
  });

  test('insert with explicit values round-trips them', async () => {
    const list = await newList();
    const row = ok(
      await ctx.admin
        .from('todos')
        .insert({
          list_id: list.id,
          title: 'full',
          done: true,
          rank: -7,
          tags: ['x', 'y'],
          meta: { a: [1, { b: null }], s: 'str' },
          status: 'closed',
          due: '2026-02-14',
          price: 19.95,
        })
        .select('title, done, rank, tags, meta, status, due, price')
        .single(),
      201,
    );
    assert.deepEqual(row, {
      title: 'full',
      done: true,
      rank: -7,
      tags: ['x', 'y'],
      meta: { a: [1, { b: null }], s: 'str' },
      status: 'closed',
      due: '2026-02-14',
      price: 19.95,
    });
  });

  test('insert with a caller-supplied uuid primary key', async () => {
    const id = '6f1c1e0a-3b7d-4c61-9a55-2f0e8c1d7b42';
    const row = ok(await ctx.admin.from('lists').insert({ id, name: uniq('own-id') }).select('id').single(), 201);
    assert.equal(row.id, id);
  });

  test('insert().select() with a column list shapes the representation', async () => {
    const list = await newList();
    const rows = ok(
      await ctx.admin.from('todos').insert({ list_id: list.id, title: 'shaped', rank: 4 }).select('title, rank'),
      201,
    );
    assert.deepEqual(rows, [{ title: 'shaped', rank: 4 }]);
  });

  test('bulk insert with different keys: absent keys in columns= become NULL', async () => {
    const list = await newList();
    const res = await ctx.admin
      .from('todos')
      .insert([
        { list_id: list.id, title: 'bulk-a' },
        { list_id: list.id, title: 'bulk-b', done: true, rank: 3 },
      ])
      .select('title, done, rank, status, tags');
    const rows = ok(res, 201);
    rows.sort((x, y) => x.title.localeCompare(y.title));
    assert.deepEqual(rows, [
      // done/rank are in columns= (keys of the 2nd row), so absent → NULL, not the default.
      { title: 'bulk-a', done: null, rank: null, status: 'open', tags: [] },
      { title: 'bulk-b', done: true, rank: 3, status: 'open', tags: [] },
    ]);
  });

  test("bulk insert with defaultToNull: false uses column defaults for absent keys", async () => {
    const list = await newList();
    const res = await ctx.admin
      .from('todos')
      .insert(
        [
          { list_id: list.id, title: 'dflt-a' },
          { list_id: list.id, title: 'dflt-b', done: true, status: 'closed' },
        ],
        { defaultToNull: false },
      )
      .select('title, done, status, rank');
    const rows = ok(res, 201);
    rows.sort((x, y) => x.title.localeCompare(y.title));
    assert.deepEqual(rows, [
      { title: 'dflt-a', done: false, status: 'open', rank: null },
      { title: 'dflt-b', done: true, status: 'closed', rank: null },
    ]);
  });

  test('bulk insert without select: 201, no body, all rows written', async () => {
    const list = await newList();
    const res = await ctx.admin.from('todos').insert([
      { list_id: list.id, title: 'm1' },
      { list_id: list.id, title: 'm2' },
      { list_id: list.id, title: 'm3' },
    ]);
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    assert.equal(res.data, null);
    assert.deepEqual((await todosOf(list.id)).map((r) => r.title), ['m1', 'm2', 'm3']);
  });

  test('upsert merges on the primary key', async () => {
    const [id, other] = itemIds(2);
    const sku = uniq('sku');
    ok(await ctx.admin.from('items').insert({ id, sku, shop: 'main', qty: 1 }), 201);

    // Only an update: 200.
    const res = await ctx.admin.from('items').upsert({ id, sku, shop: 'main', qty: 5 }).select('id, sku, shop, qty');
    assert.deepEqual(ok(res, 200), [{ id, sku, shop: 'main', qty: 5 }]);

    // One update + one insert: 201.
    const res2 = await ctx.admin
      .from('items')
      .upsert([
        { id, sku, shop: 'main', qty: 6 },
        { id: other, sku, shop: 'annex', qty: 2 },
      ])
      .select('id, qty');
    const rows = ok(res2, 201);
    rows.sort((a, b) => a.id - b.id);
    assert.deepEqual(rows, [
      { id, qty: 6 },
      { id: other, qty: 2 },
    ]);

    const stored = ok(await ctx.admin.from('items').select('id, qty').eq('sku', sku).order('id'), 200);
    assert.deepEqual(stored, [
      { id, qty: 6 },
      { id: other, qty: 2 },
    ]);
  });

  test('upsert merge keeps columns absent from the payload', async () => {
    const list = await newList();
    const row = ok(
      await ctx.admin.from('todos').insert({ list_id: list.id, title: 'keep', rank: 9, tags: ['t'] }).select().single(),
      201,
    );
    const merged = ok(
      await ctx.admin.from('todos').upsert({ id: row.id, title: 'kept', done: true }).select('title, done, rank, tags, list_id').single(),
      200,
    );
    assert.deepEqual(merged, { title: 'kept', done: true, rank: 9, tags: ['t'], list_id: list.id });
  });

  test('upsert with onConflict on the composite unique (sku, shop)', async () => {
    const [id, newId] = itemIds(2);
    const sku = uniq('sku');
    ok(await ctx.admin.from('items').insert({ id, sku, shop: 'x', qty: 1 }), 201);
    ok(await ctx.admin.from('items').insert({ id: itemIds(1)[0], sku, shop: 'y', qty: 1 }), 201);

    const res = await ctx.admin
      .from('items')
      .upsert({ id: newId, sku, shop: 'x', qty: 7 }, { onConflict: 'sku,shop' })
      .select('id, sku, shop, qty');
    const rows = ok(res, 200);
    // merge-duplicates sets every payload column, including id.
    assert.deepEqual(rows, [{ id: newId, sku, shop: 'x', qty: 7 }]);

    const stored = ok(await ctx.admin.from('items').select('shop, qty').eq('sku', sku).order('shop'), 200);
    assert.deepEqual(stored, [
      { shop: 'x', qty: 7 },
      { shop: 'y', qty: 1 },
    ]);
  });

  test('upsert with onConflict inserts when there is no conflict', async () => {
    const [id] = itemIds(1);
    const sku = uniq('sku');
    const res = await ctx.admin.from('items').upsert({ id, sku, shop: 'z', qty: 3 }, { onConflict: 'sku,shop' }).select('id, qty');
    assert.deepEqual(ok(res, 201), [{ id, qty: 3 }]);
  });

  test('upsert ignoreDuplicates leaves existing rows untouched', async () => {
    const [id, other] = itemIds(2);
    const sku = uniq('sku');
    ok(await ctx.admin.from('items').insert({ id, sku, shop: 'main', qty: 1 }), 201);

    const res = await ctx.admin
      .from('items')
      .upsert(
        [
          { id, sku, shop: 'main', qty: 99 },
          { id: other, sku, shop: 'second', qty: 2 },
        ],
        { ignoreDuplicates: true },
      )
      .select('id, qty');
    // Only the newly inserted row is returned.
    assert.deepEqual(ok(res, 201), [{ id: other, qty: 2 }]);

    const stored = ok(await ctx.admin.from('items').select('id, qty').eq('sku', sku).order('id'), 200);
    assert.deepEqual(stored, [
      { id, qty: 1 },
      { id: other, qty: 2 },
    ]);
  });

  test('upsert ignoreDuplicates with onConflict on (sku, shop)', async () => {
    const [id, other] = itemIds(2);
    const sku = uniq('sku');
    ok(await ctx.admin.from('items').insert({ id, sku, shop: 'main', qty: 1 }), 201);
    const res = await ctx.admin
      .from('items')
      .upsert({ id: other, sku, shop: 'main', qty: 50 }, { onConflict: 'sku,shop', ignoreDuplicates: true });
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    const stored = ok(await ctx.admin.from('items').select('id, qty').eq('sku', sku), 200);
    assert.deepEqual(stored, [{ id, qty: 1 }]);
  });

  test('update with filter + select: changes only matching rows and bumps updated_at', async () => {
    const list = await newList();
    const a = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'upd-a' }).select().single(), 201);
    const b = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'upd-b' }).select().single(), 201);
    await sleep(50);

    const res = await ctx.admin.from('todos').update({ done: true, rank: 11 }).eq('id', a.id).select();
    const rows = ok(res, 200);
    assert.equal(rows.length, 1);
    const u = rows[0];
    assert.equal(u.id, a.id);
    assert.equal(u.done, true);
    assert.equal(u.rank, 11);
    assert.equal(u.title, 'upd-a');
    assert.equal(u.created_at, a.created_at, 'created_at is unchanged');
    assertRecent(u.updated_at, 'updated_at');
    assert.notEqual(u.updated_at, a.updated_at, 'updated_at changed');
    assert.ok(Date.parse(u.updated_at) > Date.parse(u.created_at), `${u.updated_at} > ${u.created_at}`);

    const untouched = ok(await ctx.admin.from('todos').select('done, rank, updated_at').eq('id', b.id).single(), 200);
    assert.deepEqual(untouched, { done: false, rank: null, updated_at: b.updated_at });
  });

  test('update without select: 204 and no body', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'quiet', rank: 1 }), 201);
    const res = await ctx.admin.from('todos').update({ rank: 2 }).eq('list_id', list.id);
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
    assert.equal(res.data, null);
    assert.deepEqual(await todosOf(list.id, 'title, rank'), [{ title: 'quiet', rank: 2 }]);
  });

  test('update matching several rows updates all of them', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'p1', rank: 1 },
        { list_id: list.id, title: 'p2', rank: 2 },
        { list_id: list.id, title: 'p3', rank: 3 },
      ]),
      201,
    );
    const rows = ok(
      await ctx.admin.from('todos').update({ status: 'closed' }).eq('list_id', list.id).lte('rank', 2).select('title, status'),
      200,
    );
    assert.deepEqual(rows.map((r) => r.title).sort(), ['p1', 'p2']);
    assert.deepEqual(await todosOf(list.id, 'title, status'), [
      { title: 'p1', status: 'closed' },
      { title: 'p2', status: 'closed' },
      { title: 'p3', status: 'open' },
    ]);
  });

  test('maxAffected(n) on update and delete: more rows fail with PGRST124 and change nothing', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert([{ list_id: list.id, title: 'm1' }, { list_id: list.id, title: 'm2' }]), 201);
    const e = fails(await ctx.admin.from('todos').update({ status: 'closed' }).eq('list_id', list.id).maxAffected(1), 400, 'PGRST124');
    assert.equal(e.details, 'The query affects 2 rows');
    fails(await ctx.admin.from('todos').delete().eq('list_id', list.id).maxAffected(1), 400, 'PGRST124');
    assert.deepEqual(await todosOf(list.id, 'title, status'), [
      { title: 'm1', status: 'open' },
      { title: 'm2', status: 'open' },
    ]);
    ok(await ctx.admin.from('todos').update({ status: 'closed' }).eq('list_id', list.id).maxAffected(2), 204);
    ok(await ctx.admin.from('todos').delete().eq('list_id', list.id).maxAffected(2), 204);
    assert.deepEqual(await todosOf(list.id), []);
  });

  test('update and delete with order + limit touch only those rows', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert([1, 2, 3].map((rank) => ({ list_id: list.id, title: `l${rank}`, rank }))), 201);
    const rows = ok(
      await ctx.admin.from('todos').update({ status: 'closed' }).eq('list_id', list.id).order('rank', { ascending: false }).limit(1).select('title'),
      200,
    );
    assert.deepEqual(rows, [{ title: 'l3' }]);
    ok(await ctx.admin.from('todos').delete().eq('list_id', list.id).order('rank').limit(1), 204);
    assert.deepEqual(await todosOf(list.id, 'title, status'), [
      { title: 'l2', status: 'open' },
      { title: 'l3', status: 'closed' },
    ]);
  });

  test('update of jsonb and text[] replaces the value', async () => {
    const list = await newList();
    const t = ok(
      await ctx.admin.from('todos').insert({ list_id: list.id, title: 'json', meta: { a: 1, b: 2 }, tags: ['x'] }).select('id').single(),
      201,
    );
    const row = ok(
      await ctx.admin.from('todos').update({ meta: { c: [3] }, tags: ['y', 'z'] }).eq('id', t.id).select('meta, tags').single(),
      200,
    );
    assert.deepEqual(row, { meta: { c: [3] }, tags: ['y', 'z'] });
  });

  test('update setting a column to null', async () => {
    const list = await newList();
    const t = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'nullme', rank: 5 }).select('id').single(), 201);
    const row = ok(await ctx.admin.from('todos').update({ rank: null }).eq('id', t.id).select('rank').single(), 200);
    assert.deepEqual(row, { rank: null });
  });

  test('delete with filter: 204, only matching rows removed', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert([{ list_id: list.id, title: 'd1' }, { list_id: list.id, title: 'd2' }]), 201);
    const res = await ctx.admin.from('todos').delete().eq('list_id', list.id).eq('title', 'd1');
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
    assert.equal(res.data, null);
    assert.deepEqual(await todosOf(list.id), [{ title: 'd2' }]);
  });

  test('delete with select returns the deleted rows', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'x1', rank: 1 },
        { list_id: list.id, title: 'x2', rank: 2 },
        { list_id: list.id, title: 'x3', rank: 3 },
      ]),
      201,
    );
    const res = await ctx.admin.from('todos').delete().eq('list_id', list.id).gte('rank', 2).select('title, rank');
    const rows = ok(res, 200);
    rows.sort((a, b) => a.rank - b.rank);
    assert.deepEqual(rows, [
      { title: 'x2', rank: 2 },
      { title: 'x3', rank: 3 },
    ]);
    assert.deepEqual(await todosOf(list.id), [{ title: 'x1' }]);
  });

  test('delete matching nothing: 204', async () => {
    const res = await ctx.admin.from('lists').delete().eq('name', uniq('nothing'));
    assert.equal(res.error, null);
    assert.equal(res.status, 204);
  });

  test('deleting a parent cascades to children and grandchildren', async () => {
    const list = await newList();
    const todo = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'casc' }).select('id').single(), 201);
    ok(await ctx.admin.from('comments').insert({ todo_id: todo.id, body: 'gone soon' }), 201);
    ok(await ctx.admin.from('lists').delete().eq('id', list.id), 204);
    assert.deepEqual(ok(await ctx.admin.from('todos').select('id').eq('id', todo.id), 200), []);
    assert.deepEqual(ok(await ctx.admin.from('comments').select('id').eq('todo_id', todo.id), 200), []);
  });

  test('update().single() affecting 0 rows → 406 PGRST116', async () => {
    const list = await newList();
    ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'single0', rank: 1 }), 201);
    const res = await ctx.admin
      .from('todos')
      .update({ rank: 100 })
      .eq('list_id', list.id)
      .eq('title', 'no such title')
      .select()
      .single();
    const err = fails(res, 406, 'PGRST116');
    assert.match(String(err.details), /0 rows/);
    assert.deepEqual(await todosOf(list.id, 'title, rank'), [{ title: 'single0', rank: 1 }]);
  });

  test('update().single() affecting 2 rows → 406 PGRST116 and the update is rolled back', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 's1', rank: 1 },
        { list_id: list.id, title: 's2', rank: 2 },
      ]),
      201,
    );
    const res = await ctx.admin.from('todos').update({ rank: 100 }).eq('list_id', list.id).select().single();
    const err = fails(res, 406, 'PGRST116');
    assert.match(String(err.details), /2 rows/);
    assert.deepEqual(await todosOf(list.id, 'title, rank'), [
      { title: 's1', rank: 1 },
      { title: 's2', rank: 2 },
    ]);
  });

  test('delete().single() affecting 2 rows → 406 PGRST116 and nothing is deleted', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'k1' },
        { list_id: list.id, title: 'k2' },
      ]),
      201,
    );
    const res = await ctx.admin.from('todos').delete().eq('list_id', list.id).select().single();
    fails(res, 406, 'PGRST116');
    assert.deepEqual(await todosOf(list.id), [{ title: 'k1' }, { title: 'k2' }]);
  });
  test("insert / update / delete with count: 'exact'", async () => {
    const list = await newList();
    const ins = await ctx.admin.from('todos').insert(
      [
        { list_id: list.id, title: 'c1', rank: 1 },
        { list_id: list.id, title: 'c2', rank: 2 },
        { list_id: list.id, title: 'c3', rank: 3 },
      ],
      { count: 'exact' },
    );
    assert.equal(ins.error, null);
    assert.equal(ins.status, 201);
    assert.equal(ins.count, 3);

    const upd = await ctx.admin.from('todos').update({ done: true }, { count: 'exact' }).eq('list_id', list.id).gte('rank', 2);
    assert.equal(upd.error, null);
    assert.equal(upd.count, 2);

    const del = await ctx.admin.from('todos').delete({ count: 'exact' }).eq('list_id', list.id).eq('rank', 1);
    assert.equal(del.error, null);
    assert.equal(del.count, 1);
    assert.deepEqual((await todosOf(list.id)).map((r) => r.title), ['c2', 'c3']);
  });

  test('insert of an empty array succeeds and writes nothing', async () => {
    const res = await ctx.admin.from('lists').insert([]).select();
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    assert.deepEqual(res.data, []);
  });

  test('insert().select().single() with 2 rows → 406 PGRST116 and nothing is inserted', async () => {
    const a = uniq('single-ins');
    const b = uniq('single-ins');
    const res = await ctx.admin.from('lists').insert([{ name: a }, { name: b }]).select().single();
    fails(res, 406, 'PGRST116');
    assert.deepEqual(ok(await ctx.admin.from('lists').select('name').in('name', [a, b]), 200), []);
  });

  test('raw: Preference-Applied echoes resolution and return', async () => {
    const [id] = itemIds(1);
    const res = await ctx.rest('/items?select=id', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        Prefer: 'resolution=merge-duplicates, return=representation',
      },
      body: JSON.stringify({ id, sku: uniq('pref'), shop: 's', qty: 1 }),
    });
    assert.equal(res.status, 201);
    const applied = (res.headers.get('preference-applied') ?? '').split(',').map((t) => t.trim());
    assert.ok(applied.includes('resolution=merge-duplicates'), `Preference-Applied: ${applied}`);
    assert.ok(applied.includes('return=representation'), `Preference-Applied: ${applied}`);
    assert.deepEqual(await res.json(), [{ id }]);
  });

  test('raw: PATCH and DELETE report Content-Range', async () => {
    const list = await newList();
    ok(
      await ctx.admin.from('todos').insert([
        { list_id: list.id, title: 'cr1' },
        { list_id: list.id, title: 'cr2' },
      ]),
      201,
    );
    let res = await ctx.rest(`/todos?list_id=eq.${list.id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rank: 5 }),
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('content-range'), '0-1/*');
    await res.arrayBuffer();

    res = await ctx.rest(`/todos?list_id=eq.${list.id}`, { method: 'DELETE', headers: { Prefer: 'count=exact' } });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('content-range'), '*/2');
    await res.arrayBuffer();
  });
  test('upsert merge counts as an update: updated_at bumped, created_at kept', async () => {
    const list = await newList();
    const row = ok(await ctx.admin.from('todos').insert({ list_id: list.id, title: 'ups-ts' }).select().single(), 201);
    await sleep(50);
    const merged = ok(
      await ctx.admin.from('todos').upsert({ id: row.id, title: 'ups-ts2' }).select('created_at, updated_at').single(),
      200,
    );
    assert.equal(merged.created_at, row.created_at);
    assert.ok(Date.parse(merged.updated_at) > Date.parse(row.updated_at), `${merged.updated_at} > ${row.updated_at}`);
  });

  test('update matching no rows: select gives [] with 200', async () => {
    const res = await ctx.admin.from('lists').update({ name: uniq('never') }).eq('name', uniq('missing')).select();
    assert.equal(res.error, null);
    assert.equal(res.status, 200);
    assert.deepEqual(res.data, []);
  });
  test('concurrent writes from many clients all succeed', async () => {
    const list = await newList();
    const inserts = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        ctx.admin.from('todos').insert({ list_id: list.id, title: `conc-${String(i).padStart(2, '0')}`, rank: i }).select('id').single(),
      ),
    );
    for (const r of inserts) ok(r, 201);
    const updates = await Promise.all(
      inserts.map((r, i) => ctx.admin.from('todos').update({ rank: i * 10 }).eq('id', r.data.id)),
    );
    for (const r of updates) ok(r, 204);
    const rows = await todosOf(list.id, 'title, rank');
    assert.equal(rows.length, 25);
    rows.forEach((r, i) => assert.deepEqual(r, { title: `conc-${String(i).padStart(2, '0')}`, rank: i * 10 }));
  });

  test('bulk insert of 500 rows in one request', async () => {
    const list = await newList();
    const rows = Array.from({ length: 500 }, (_, i) => ({ list_id: list.id, title: `bulk-${i}`, rank: i }));
    const res = await ctx.admin.from('todos').insert(rows, { count: 'exact' });
    assert.equal(res.error, null);
    assert.equal(res.status, 201);
    assert.equal(res.count, 500);
    const head = await ctx.admin.from('todos').select('*', { count: 'exact', head: true }).eq('list_id', list.id);
    assert.equal(head.count, 500);
    const top = ok(await ctx.admin.from('todos').select('rank').eq('list_id', list.id).order('rank', { ascending: false }).limit(1), 200);
    assert.deepEqual(top, [{ rank: 499 }]);
  });
});
