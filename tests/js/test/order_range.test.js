// Ordering, limits, ranges, counts, Content-Range and 206/416 statuses.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, uniq, ok, fails, sleep } from './helpers/server.js';

describe('order and range', () => {
  const ctx = useServer();

  async function seed(rows) {
    const list = ok(await ctx.admin.from('lists').insert({ name: uniq('order') }).select('id').single(), 201);
    for (const r of rows) ok(await ctx.admin.from('todos').insert({ list_id: list.id, ...r }), 201);
    return list.id;
  }

  // rank: a=1, b=2, c=3, n=null
  const RANKED = [
    { title: 'c', rank: 3 },
    { title: 'a', rank: 1 },
    { title: 'n' },
    { title: 'b', rank: 2 },
  ];

  const titlesOf = (rows) => rows.map((r) => r.title);

  async function ordered(listId, build) {
    const q = ctx.admin.from('todos').select('title').eq('list_id', listId);
    return titlesOf(ok(await build(q), 200));
  }

  test('order ascending (default) puts NULLs last', async () => {
    const id = await seed(RANKED);
    assert.deepEqual(await ordered(id, (q) => q.order('rank')), ['a', 'b', 'c', 'n']);
    assert.deepEqual(await ordered(id, (q) => q.order('rank', { ascending: true })), ['a', 'b', 'c', 'n']);
  });

  test("order by a to-one embed's column: order('lists(name)')", async () => {
    const tag = uniq('rel');
    const [b, a] = ok(await ctx.admin.from('lists').insert([{ name: `${tag}-b` }, { name: `${tag}-a` }]).select('id'), 201);
    ok(await ctx.admin.from('todos').insert([{ title: `${tag} in b`, list_id: b.id }, { title: `${tag} in a`, list_id: a.id }]), 201);
    const q = () => ctx.admin.from('todos').select('title, lists(name)').like('title', `${tag}%`);
    assert.deepEqual(titlesOf(ok(await q().order('lists(name)'), 200)), [`${tag} in a`, `${tag} in b`]);
    assert.deepEqual(titlesOf(ok(await q().order('lists(name)', { ascending: false }), 200)), [`${tag} in b`, `${tag} in a`]);
    const { error } = await ctx.admin.from('lists').select('name, todos(title)').order('todos(title)');
    assert.equal(error?.code, 'PGRST118');
  });

  test('order descending puts NULLs first', async () => {
    const id = await seed(RANKED);
    assert.deepEqual(await ordered(id, (q) => q.order('rank', { ascending: false })), ['n', 'c', 'b', 'a']);
  });

  test('nullsFirst / nullsLast override the defaults', async () => {
    const id = await seed(RANKED);
    assert.deepEqual(await ordered(id, (q) => q.order('rank', { nullsFirst: true })), ['n', 'a', 'b', 'c']);
    assert.deepEqual(
      await ordered(id, (q) => q.order('rank', { ascending: false, nullsFirst: false })),
      ['c', 'b', 'a', 'n'],
    );
    assert.deepEqual(
      await ordered(id, (q) => q.order('rank', { ascending: true, nullsFirst: false })),
      ['a', 'b', 'c', 'n'],
    );
    assert.deepEqual(
      await ordered(id, (q) => q.order('rank', { ascending: false, nullsFirst: true })),
      ['n', 'c', 'b', 'a'],
    );
  });

  test('order by text', async () => {
    const id = await seed(RANKED);
    assert.deepEqual(await ordered(id, (q) => q.order('title')), ['a', 'b', 'c', 'n']);
    assert.deepEqual(await ordered(id, (q) => q.order('title', { ascending: false })), ['n', 'c', 'b', 'a']);
  });

  test('multiple order columns (boolean false < true, then rank desc)', async () => {
    const id = await seed([
      { title: 'x', done: false, rank: 1 },
      { title: 'w', done: true, rank: 3 },
      { title: 'y', done: false, rank: 2 },
      { title: 'z', done: true, rank: 1 },
    ]);
    assert.deepEqual(
      await ordered(id, (q) => q.order('done').order('rank', { ascending: false })),
      ['y', 'x', 'w', 'z'],
    );
    assert.deepEqual(
      await ordered(id, (q) => q.order('done', { ascending: false }).order('rank')),
      ['z', 'w', 'x', 'y'],
    );
  });

  test('order by created_at desc gives newest first', async () => {
    const list = ok(await ctx.admin.from('lists').insert({ name: uniq('order') }).select('id').single(), 201);
    for (const title of ['first', 'second', 'third']) {
      ok(await ctx.admin.from('todos').insert({ list_id: list.id, title }), 201);
      await sleep(20);
    }
    assert.deepEqual(
      await ordered(list.id, (q) => q.order('created_at', { ascending: false })),
      ['third', 'second', 'first'],
    );
  });

  test('order by date and numeric', async () => {
    const id = await seed([
      { title: 'b', due: '2026-05-10', price: 10.5 },
      { title: 'a', due: '2026-01-31', price: 9.99 },
      { title: 'c', due: '2026-12-01', price: 100 },
    ]);
    assert.deepEqual(await ordered(id, (q) => q.order('due')), ['a', 'b', 'c']);
    assert.deepEqual(await ordered(id, (q) => q.order('price', { ascending: false })), ['c', 'b', 'a']);
  });

  test('limit', async () => {
    const id = await seed(RANKED);
    assert.deepEqual(await ordered(id, (q) => q.order('rank').limit(2)), ['a', 'b']);
    assert.deepEqual(await ordered(id, (q) => q.order('rank').limit(0)), []);
  });

  test('range(from, to) is inclusive', async () => {
    const id = await seed(RANKED);
    assert.deepEqual(await ordered(id, (q) => q.order('rank').range(1, 2)), ['b', 'c']);
    assert.deepEqual(await ordered(id, (q) => q.order('rank').range(3, 10)), ['n']);
    assert.deepEqual(await ordered(id, (q) => q.order('rank').range(0, 0)), ['a']);
  });

  test("count: 'exact' returns the total", async () => {
    const id = await seed(RANKED);
    const res = await ctx.admin.from('todos').select('title', { count: 'exact' }).eq('list_id', id).order('rank');
    assert.equal(res.error, null);
    assert.equal(res.status, 200);
    assert.equal(res.count, 4);
    assert.deepEqual(titlesOf(res.data), ['a', 'b', 'c', 'n']);

    const filtered = await ctx.admin.from('todos').select('title', { count: 'exact' }).eq('list_id', id).gte('rank', 2);
    assert.equal(filtered.error, null);
    assert.equal(filtered.count, 2);
  });

  test('count with range gives a partial result: status 206', async () => {
    const id = await seed(RANKED);
    const res = await ctx.admin
      .from('todos')
      .select('title', { count: 'exact' })
      .eq('list_id', id)
      .order('rank')
      .range(0, 1);
    assert.equal(res.error, null);
    assert.equal(res.status, 206);
    assert.equal(res.count, 4);
    assert.deepEqual(titlesOf(res.data), ['a', 'b']);
  });

  test('count on an empty result is 0', async () => {
    const id = await seed([]);
    const res = await ctx.admin.from('todos').select('title', { count: 'exact' }).eq('list_id', id);
    assert.equal(res.error, null);
    assert.equal(res.status, 200);
    assert.equal(res.count, 0);
    assert.deepEqual(res.data, []);
  });

  test('head: true with count returns only the count', async () => {
    const id = await seed(RANKED);
    const res = await ctx.admin.from('todos').select('*', { count: 'exact', head: true }).eq('list_id', id);
    assert.equal(res.error, null);
    assert.equal(res.status, 200);
    assert.equal(res.count, 4);
    assert.equal(res.data, null);
  });

  test('offset past the total with count → 416 PGRST103', async () => {
    const id = await seed(RANKED);
    const res = await ctx.admin
      .from('todos')
      .select('title', { count: 'exact' })
      .eq('list_id', id)
      .order('rank')
      .range(10, 12);
    fails(res, 416, 'PGRST103');
  });

  test('raw: Content-Range on reads with and without count', async () => {
    const id = await seed(RANKED);
    const base = `/todos?select=title&list_id=eq.${id}&order=rank.asc`;

    let res = await ctx.rest(base);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-range'), '0-3/*');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(titlesOf(await res.json()), ['a', 'b', 'c', 'n']);

    res = await ctx.rest(base, { headers: { Prefer: 'count=exact' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-range'), '0-3/4');
    await res.arrayBuffer();

    res = await ctx.rest(`${base}&offset=1&limit=2`, { headers: { Prefer: 'count=exact' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), '1-2/4');
    assert.deepEqual(titlesOf(await res.json()), ['b', 'c']);

    res = await ctx.rest(`${base}&offset=1&limit=2`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-range'), '1-2/*');
    await res.arrayBuffer();
  });

  test('raw: Range header drives 206 + Content-Range when partial with count', async () => {
    const id = await seed([...RANKED, { title: 'e', rank: 5 }]);
    const base = `/todos?select=title&list_id=eq.${id}&order=rank.asc`;

    let res = await ctx.rest(base, { headers: { Range: '0-1', 'Range-Unit': 'items', Prefer: 'count=exact' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), '0-1/5');
    assert.deepEqual(titlesOf(await res.json()), ['a', 'b']);

    res = await ctx.rest(base, { headers: { Range: '2-3', 'Range-Unit': 'items', Prefer: 'count=exact' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), '2-3/5');
    assert.deepEqual(titlesOf(await res.json()), ['c', 'e']);

    // Open-ended range.
    res = await ctx.rest(base, { headers: { Range: '3-', 'Range-Unit': 'items', Prefer: 'count=exact' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), '3-4/5');
    assert.deepEqual(titlesOf(await res.json()), ['e', 'n']);

    // Whole window with count: 200.
    res = await ctx.rest(base, { headers: { Range: '0-9', Prefer: 'count=exact' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-range'), '0-4/5');
    await res.arrayBuffer();

    // Without count the total is unknown: 200 and "/*".
    res = await ctx.rest(base, { headers: { Range: '0-1' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-range'), '0-1/*');
    await res.arrayBuffer();
  });

  test('raw: empty result Content-Range uses */total', async () => {
    const id = await seed([]);
    const res = await ctx.rest(`/todos?select=title&list_id=eq.${id}`, { headers: { Prefer: 'count=exact' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-range'), '*/0');
    assert.deepEqual(await res.json(), []);
  });

  test('raw: HEAD with count', async () => {
    const id = await seed(RANKED);
    const res = await ctx.rest(`/todos?select=*&list_id=eq.${id}`, { method: 'HEAD', headers: { Prefer: 'count=exact' } });
    assert.equal(res.status, 200);
    const cr = res.headers.get('content-range');
    assert.ok(cr === '*/4' || cr === '0-3/4', `Content-Range ${cr}`);
  });
});
