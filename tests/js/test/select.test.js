// Vertical filtering: select=*, column lists, aliases, casts, JSON paths, embeds.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, uniq, ok } from './helpers/server.js';

const TODO_COLUMNS = [
  'created_at', 'done', 'due', 'id', 'list_id', 'meta', 'price', 'rank', 'status', 'tags', 'title', 'updated_at',
];

const byKey = (k) => (a, b) => (a[k] < b[k] ? -1 : a[k] > b[k] ? 1 : 0);

describe('select', () => {
  const ctx = useServer();

  async function newList(prefix = 'list') {
    return ok(await ctx.admin.from('lists').insert({ name: uniq(prefix) }).select().single(), 201);
  }

  async function newTodo(fields) {
    return ok(await ctx.admin.from('todos').insert(fields).select().single(), 201);
  }

  async function newComments(todoId, bodies) {
    const rows = bodies.map((b) => (typeof b === 'string' ? { todo_id: todoId, body: b } : { todo_id: todoId, ...b }));
    return ok(await ctx.admin.from('comments').insert(rows).select(), 201);
  }

  test('select * returns every column, including created_at/updated_at', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'star', rank: 3 });
    const rows = ok(await ctx.admin.from('todos').select('*').eq('id', todo.id), 200);
    assert.equal(rows.length, 1);
    assert.deepEqual(Object.keys(rows[0]).sort(), TODO_COLUMNS);
    assert.equal(rows[0].id, todo.id);
    assert.equal(rows[0].list_id, list.id);
    assert.equal(rows[0].title, 'star');
    assert.equal(rows[0].rank, 3);
    assert.equal(rows[0].done, false);
    assert.equal(rows[0].status, 'open');
    assert.deepEqual(rows[0].tags, []);
    assert.deepEqual(rows[0].meta, {});
    assert.equal(rows[0].due, null);
    assert.equal(rows[0].price, null);
  });

  test('select() with no argument means *', async () => {
    const list = await newList();
    const rows = ok(await ctx.admin.from('lists').select().eq('id', list.id), 200);
    assert.deepEqual(Object.keys(rows[0]).sort(), ['created_at', 'id', 'name', 'updated_at']);
    assert.equal(rows[0].name, list.name);
  });

  test('column list returns exactly those columns, in order', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'cols', rank: 7, done: true });
    const rows = ok(await ctx.admin.from('todos').select('title, rank,done').eq('id', todo.id), 200);
    assert.deepEqual(rows, [{ title: 'cols', rank: 7, done: true }]);
    assert.deepEqual(Object.keys(rows[0]), ['title', 'rank', 'done']);
  });

  test('aliases rename output keys', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'aliased', rank: 2 });
    const rows = ok(await ctx.admin.from('todos').select('heading:title, r:rank, id').eq('id', todo.id), 200);
    assert.deepEqual(rows, [{ heading: 'aliased', r: 2, id: todo.id }]);
  });

  test('casts change the JSON type (rank::text is a string)', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'cast', rank: 42 });
    const rows = ok(await ctx.admin.from('todos').select('rank::text, r:rank::text, title').eq('id', todo.id), 200);
    assert.deepEqual(rows, [{ rank: '42', r: '42', title: 'cast' }]);
  });

  test('JSON paths: -> keeps JSON, ->> gives text, key = last path element', async () => {
    const list = await newList();
    const meta = { a: { b: 'x', n: 2, deep: { k: [1, 2] } }, top: 'T', num: 5 };
    const todo = await newTodo({ list_id: list.id, title: 'json', meta });
    const rows = ok(
      await ctx.admin
        .from('todos')
        .select('meta->a->>b, meta->a->n, meta->>top, meta->a->deep, meta->>num, bee:meta->a->>b, meta->>missing')
        .eq('id', todo.id),
      200,
    );
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0], {
      b: 'x',
      n: 2,
      top: 'T',
      deep: { k: [1, 2] },
      num: '5',
      bee: 'x',
      missing: null,
    });
  });

  test('filter on a JSON path (meta->>color)', async () => {
    const list = await newList();
    await newTodo({ list_id: list.id, title: 'red one', meta: { color: 'red' } });
    await newTodo({ list_id: list.id, title: 'blue one', meta: { color: 'blue' } });
    const rows = ok(
      await ctx.admin.from('todos').select('title, color:meta->>color').eq('list_id', list.id).eq('meta->>color', 'red'),
      200,
    );
    assert.deepEqual(rows, [{ title: 'red one', color: 'red' }]);
  });

  test('many-to-one embed: todos with lists(*) gives an object', async () => {
    const list = await newList('parent');
    const todo = await newTodo({ list_id: list.id, title: 'child' });
    const rows = ok(await ctx.admin.from('todos').select('title, lists(*)').eq('id', todo.id), 200);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].title, 'child');
    assert.ok(rows[0].lists && !Array.isArray(rows[0].lists), `lists should be an object: ${JSON.stringify(rows[0].lists)}`);
    assert.equal(rows[0].lists.id, list.id);
    assert.equal(rows[0].lists.name, list.name);
    assert.deepEqual(Object.keys(rows[0].lists).sort(), ['created_at', 'id', 'name', 'updated_at']);
  });

  test('many-to-one embed is null when the foreign key is null', async () => {
    const todo = await newTodo({ title: 'orphan' });
    const rows = ok(await ctx.admin.from('todos').select('title, lists(name)').eq('id', todo.id), 200);
    assert.deepEqual(rows, [{ title: 'orphan', lists: null }]);
  });

  test('embed with alias and *: select("*, list:lists(name)")', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'alias-embed' });
    const rows = ok(await ctx.admin.from('todos').select('*, list:lists(name)').eq('id', todo.id), 200);
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0].list, { name: list.name });
    assert.equal(rows[0].title, 'alias-embed');
    assert.equal(rows[0].id, todo.id);
    assert.ok(!('lists' in rows[0]));
  });

  test('one-to-many embed: lists with todos(*) gives an array', async () => {
    const list = await newList();
    const empty = await newList('empty');
    await newTodo({ list_id: list.id, title: 'one', rank: 1 });
    await newTodo({ list_id: list.id, title: 'two', rank: 2 });
    const rows = ok(
      await ctx.admin.from('lists').select('name, todos(*)').in('id', [list.id, empty.id]).order('name'),
      200,
    );
    assert.equal(rows.length, 2);
    const full = rows.find((r) => r.name === list.name);
    const none = rows.find((r) => r.name === empty.name);
    assert.ok(Array.isArray(full.todos));
    assert.deepEqual(full.todos.map((t) => t.title).sort(), ['one', 'two']);
    assert.deepEqual(Object.keys(full.todos[0]).sort(), TODO_COLUMNS);
    for (const t of full.todos) assert.equal(t.list_id, list.id);
    assert.deepEqual(none.todos, []);
  });

  test('nested embeds two levels down: lists(todos(comments(*)))', async () => {
    const list = await newList();
    const t1 = await newTodo({ list_id: list.id, title: 'a' });
    const t2 = await newTodo({ list_id: list.id, title: 'b' });
    await newComments(t1.id, ['a1', 'a2']);
    const rows = ok(
      await ctx.admin.from('lists').select('name, todos(title, comments(*))').eq('id', list.id),
      200,
    );
    assert.equal(rows.length, 1);
    assert.equal(rows[0].name, list.name);
    const todos = [...rows[0].todos].sort(byKey('title'));
    assert.deepEqual(todos.map((t) => t.title), ['a', 'b']);
    assert.ok(Array.isArray(todos[0].comments));
    assert.deepEqual(todos[0].comments.map((c) => c.body).sort(), ['a1', 'a2']);
    for (const c of todos[0].comments) {
      assert.equal(c.todo_id, t1.id);
      assert.equal(c.approved, true);
      assert.deepEqual(Object.keys(c).sort(), ['approved', 'body', 'created_at', 'id', 'todo_id', 'updated_at']);
    }
    assert.deepEqual(todos[1].comments, []);
    assert.ok(t2.id);
  });

  test('nested many-to-one embeds: comments -> todos -> lists', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'mid' });
    const [c] = await newComments(todo.id, ['leaf']);
    const rows = ok(await ctx.admin.from('comments').select('body, todos(title, lists(name))').eq('id', c.id), 200);
    assert.deepEqual(rows, [{ body: 'leaf', todos: { title: 'mid', lists: { name: list.name } } }]);
  });

  test('!inner drops parents without children', async () => {
    const withTodos = await newList('with');
    const without = await newList('without');
    await newTodo({ list_id: withTodos.id, title: 'kid' });
    const rows = ok(
      await ctx.admin.from('lists').select('name, todos!inner(title)').in('id', [withTodos.id, without.id]),
      200,
    );
    assert.deepEqual(rows, [{ name: withTodos.name, todos: [{ title: 'kid' }] }]);

    // Without !inner both parents come back.
    const left = ok(
      await ctx.admin.from('lists').select('name, todos(title)').in('id', [withTodos.id, without.id]).order('name'),
      200,
    );
    assert.equal(left.length, 2);
  });

  test('filter on an embedded resource filters the children only', async () => {
    const list = await newList();
    const t1 = await newTodo({ list_id: list.id, title: 'has approved' });
    const t2 = await newTodo({ list_id: list.id, title: 'only rejected' });
    await newComments(t1.id, [{ body: 'good', approved: true }, { body: 'bad', approved: false }]);
    await newComments(t2.id, [{ body: 'nope', approved: false }]);
    const rows = ok(
      await ctx.admin
        .from('todos')
        .select('title, comments(body)')
        .eq('list_id', list.id)
        .eq('comments.approved', true)
        .order('title'),
      200,
    );
    assert.deepEqual(rows, [
      { title: 'has approved', comments: [{ body: 'good' }] },
      { title: 'only rejected', comments: [] },
    ]);
  });

  test('!inner combined with an embedded filter drops non-matching parents', async () => {
    const list = await newList();
    const t1 = await newTodo({ list_id: list.id, title: 'has approved' });
    const t2 = await newTodo({ list_id: list.id, title: 'only rejected' });
    await newComments(t1.id, [{ body: 'good', approved: true }, { body: 'bad', approved: false }]);
    await newComments(t2.id, [{ body: 'nope', approved: false }]);
    const rows = ok(
      await ctx.admin
        .from('todos')
        .select('title, comments!inner(body)')
        .eq('list_id', list.id)
        .eq('comments.approved', true),
      200,
    );
    assert.deepEqual(rows, [{ title: 'has approved', comments: [{ body: 'good' }] }]);
  });

  test('order and limit inside an embed (referencedTable)', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'many comments' });
    await newComments(todo.id, ['c2', 'c4', 'c1', 'c3']);
    const rows = ok(
      await ctx.admin
        .from('todos')
        .select('title, comments(body)')
        .eq('id', todo.id)
        .order('body', { referencedTable: 'comments', ascending: false })
        .limit(2, { referencedTable: 'comments' }),
      200,
    );
    assert.deepEqual(rows, [{ title: 'many comments', comments: [{ body: 'c4' }, { body: 'c3' }] }]);
  });

  test('select * keys follow the schema declaration order', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'ordered keys' });
    const rows = ok(await ctx.admin.from('todos').select('*').eq('id', todo.id), 200);
    const declared = ['id', 'list_id', 'title', 'done', 'rank', 'tags', 'meta', 'status', 'due', 'price'];
    const keys = Object.keys(rows[0]).filter((k) => declared.includes(k));
    assert.deepEqual(keys, declared);
  });

  test('empty embed used only for filtering: comments() with not.is.null / is.null', async () => {
    const list = await newList();
    const t1 = await newTodo({ list_id: list.id, title: 'with comments' });
    await newTodo({ list_id: list.id, title: 'without comments' });
    await newComments(t1.id, ['hello']);
    const withC = ok(
      await ctx.admin.from('todos').select('title, comments()').eq('list_id', list.id).not('comments', 'is', null),
      200,
    );
    const withoutC = ok(
      await ctx.admin.from('todos').select('title, comments()').eq('list_id', list.id).is('comments', null),
      200,
    );
    assert.deepEqual(withC.map((r) => r.title), ['with comments']);
    assert.deepEqual(withoutC.map((r) => r.title), ['without comments']);
    // An empty embed is not part of the output.
    assert.deepEqual(withC, [{ title: 'with comments' }]);
    assert.deepEqual(withoutC, [{ title: 'without comments' }]);
  });

  test('spread of a to-one embed flattens its columns: ...lists(name)', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'spread' });
    const rows = ok(await ctx.admin.from('todos').select('title, ...lists(list_name:name)').eq('id', todo.id), 200);
    assert.deepEqual(rows, [{ title: 'spread', list_name: list.name }]);
  });

  test('or() inside an embed (referencedTable)', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'or-embed' });
    await newComments(todo.id, ['keep-a', 'keep-b', 'drop-c']);
    const rows = ok(
      await ctx.admin
        .from('todos')
        .select('title, comments(body)')
        .eq('id', todo.id)
        .or('body.eq.keep-a,body.eq.keep-b', { referencedTable: 'comments' }),
      200,
    );
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0].comments.map((c) => c.body).sort(), ['keep-a', 'keep-b']);
  });

  test('order by a JSON path', async () => {
    const list = await newList();
    await newTodo({ list_id: list.id, title: 'p2', meta: { p: 2 } });
    await newTodo({ list_id: list.id, title: 'p10', meta: { p: 10 } });
    await newTodo({ list_id: list.id, title: 'p1', meta: { p: 1 } });
    // -> keeps jsonb, so numbers compare numerically.
    const rows = ok(
      await ctx.admin.from('todos').select('title').eq('list_id', list.id).order('meta->p', { ascending: false }),
      200,
    );
    assert.deepEqual(rows.map((r) => r.title), ['p10', 'p2', 'p1']);
  });

  test('filter children by a parent column: lists!inner(name) + eq("lists.name")', async () => {
    const a = await newList('parent-a');
    const b = await newList('parent-b');
    await newTodo({ list_id: a.id, title: 'in a' });
    await newTodo({ list_id: b.id, title: 'in b' });
    const rows = ok(
      await ctx.admin.from('todos').select('title, lists!inner(name)').eq('lists.name', a.name),
      200,
    );
    assert.deepEqual(rows, [{ title: 'in a', lists: { name: a.name } }]);
    const counted = await ctx.admin
      .from('todos')
      .select('title, lists!inner(name)', { count: 'exact', head: true })
      .eq('lists.name', b.name);
    assert.equal(counted.error, null);
    assert.equal(counted.count, 1);
  });

  test('embed with a foreign-key column hint: list:lists!list_id(name)', async () => {
    const list = await newList();
    const todo = await newTodo({ list_id: list.id, title: 'hinted' });
    const rows = ok(await ctx.admin.from('todos').select('title, list:lists!list_id(name)').eq('id', todo.id), 200);
    assert.deepEqual(rows, [{ title: 'hinted', list: { name: list.name } }]);
  });

  test('single() returns one object with embeds', async () => {
    const list = await newList();
    await newTodo({ list_id: list.id, title: 'x' });
    const obj = ok(await ctx.admin.from('lists').select('name, todos(title)').eq('id', list.id).single(), 200);
    assert.deepEqual(obj, { name: list.name, todos: [{ title: 'x' }] });
  });

  test('maybeSingle() gives null for no rows and the object for one row', async () => {
    const list = await newList();
    const none = await ctx.admin.from('lists').select('name').eq('name', uniq('absent')).maybeSingle();
    assert.equal(none.error, null);
    assert.equal(none.data, null);
    const one = ok(await ctx.admin.from('lists').select('name').eq('id', list.id).maybeSingle(), 200);
    assert.deepEqual(one, { name: list.name });
  });
});

describe('aggregates (db-aggregates-enabled)', () => {
  const ctx = useServer({ env: { BASALT_DB_AGGREGATES_ENABLED: 'true' } });

  test('count(), sum() and max() grouped by the other columns, in embeds too', async () => {
    const list = ok(await ctx.admin.from('lists').insert({ name: uniq('agg') }).select().single(), 201);
    const rows = [
      { list_id: list.id, title: 'a', rank: 1, status: 'open' },
      { list_id: list.id, title: 'b', rank: 2, status: 'open' },
      { list_id: list.id, title: 'c', rank: 7, status: 'closed' },
    ];
    ok(await ctx.admin.from('todos').insert(rows), 201);
    const groups = ok(
      await ctx.admin.from('todos').select('status, count(), total:rank.sum(), rank.max()').eq('list_id', list.id).order('status'),
      200,
    );
    assert.deepEqual(groups, [
      { status: 'closed', count: 1, total: 7, max: 7 },
      { status: 'open', count: 2, total: 3, max: 2 },
    ]);
    const { data, count } = await ctx.admin.from('todos').select('status, count()', { count: 'exact' }).eq('list_id', list.id).limit(1);
    assert.equal(data.length, 1);
    assert.equal(count, 2, 'count=exact counts the groups');
    const withTodos = ok(await ctx.admin.from('lists').select('name, todos(count())').eq('id', list.id).single(), 200);
    assert.deepEqual(withTodos, { name: list.name, todos: [{ count: 3 }] });
    const { error } = await ctx.admin.from('todos').select('title.sum()');
    assert.equal(error.code, '42883');
  });
});

describe('aggregates, off by default', () => {
  const ctx = useServer();

  test('PGRST123', async () => {
    const { error, status } = await ctx.admin.from('todos').select('count()');
    assert.equal(status, 400);
    assert.equal(error.code, 'PGRST123');
  });
});
