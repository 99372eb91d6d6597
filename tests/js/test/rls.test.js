// Row-level security through supabase-js: two signed-in users (each its own client holding its
// session), the anon key and the service key against schema_auth.toml (owner shorthand, explicit
// policies, exists() through a parent, the on_signup profile hook, cascades from auth.users).
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { useServer, makeClient, uniq, ok, fails } from './helpers/server.js';

const PASSWORD = 'password-123';

describe('rls', () => {
  const ctx = useServer({ schema: 'schema_auth.toml', env: { BASALT_AUTH_AUTOCONFIRM: 'true' } });
  /** `{ client, id, email, name }` per signed-in user. */
  const users = {};

  async function newUser(name) {
    const client = makeClient(ctx.url, ctx.anonKey);
    const email = `${uniq(name.toLowerCase())}@example.com`;
    const { data, error } = await client.auth.signUp({ email, password: PASSWORD, options: { data: { name } } });
    assert.equal(error, null, JSON.stringify(error));
    assert.ok(data.session, 'autoconfirm: signed in');
    return { client, id: data.user.id, email, name };
  }

  before(async () => {
    users.A = await newUser('A');
    users.B = await newUser('B');
  });

  /** Notes made by a user's own client (user_id defaults to auth.uid()). */
  async function note(user, body, isPublic = false) {
    return ok(await user.client.from('notes').insert({ body, is_public: isPublic }).select().single(), 201);
  }

  test('a user inserts rows owned by themselves (user_id defaults to auth.uid())', async () => {
    const { A } = users;
    const row = await note(A, uniq('mine'));
    assert.equal(row.user_id, A.id);
    assert.equal(row.is_public, false);
    // Naming oneself explicitly is fine too.
    const row2 = ok(await A.client.from('notes').insert({ body: uniq('explicit'), user_id: A.id }).select('user_id').single(), 201);
    assert.equal(row2.user_id, A.id);
  });

  test('each user reads only own rows plus public ones; anon only public; service all', async () => {
    const { A, B } = users;
    const tag = uniq('read');
    const aPriv = await note(A, `${tag}-a-private`);
    const aPub = await note(A, `${tag}-a-public`, true);
    const bPriv = await note(B, `${tag}-b-private`);
    const bodies = async (client) =>
      ok(await client.from('notes').select('body').like('body', `${tag}-%`).order('body'), 200).map((r) => r.body);

    assert.deepEqual(await bodies(A.client), [aPriv.body, aPub.body]);
    assert.deepEqual(await bodies(B.client), [aPub.body, bPriv.body]);
    assert.deepEqual(await bodies(ctx.anon), [aPub.body]);
    assert.deepEqual(await bodies(ctx.admin), [aPriv.body, aPub.body, bPriv.body]);

    // Filtering for someone else's private row simply finds nothing.
    assert.deepEqual(ok(await A.client.from('notes').select('id').eq('id', bPriv.id), 200), []);
    fails(await A.client.from('notes').select('id').eq('id', bPriv.id).single(), 406, 'PGRST116');
    // Counts respect the policies too.
    const { count } = await ctx.anon.from('notes').select('*', { count: 'exact', head: true }).like('body', `${tag}-%`);
    assert.equal(count, 1);
  });

  test('a user updates own rows; updates of others\' rows affect 0 rows without an error', async () => {
    const { A, B } = users;
    const mine = await note(A, uniq('upd-a'));
    const theirs = await note(B, uniq('upd-b'));
    const theirsPublic = await note(B, uniq('upd-b-pub'), true);

    const updated = ok(await A.client.from('notes').update({ body: 'edited' }).eq('id', mine.id).select('body'), 200);
    assert.deepEqual(updated, [{ body: 'edited' }]);

    for (const row of [theirs, theirsPublic]) {
      assert.deepEqual(ok(await A.client.from('notes').update({ body: 'hacked' }).eq('id', row.id).select(), 200), []);
      ok(await A.client.from('notes').update({ body: 'hacked' }).eq('id', row.id), 204);
      const still = ok(await ctx.admin.from('notes').select('body').eq('id', row.id).single(), 200);
      assert.equal(still.body, row.body, 'unchanged');
    }
  });

  test('a user cannot hand a row to someone else (update → 403 42501)', async () => {
    const { A, B } = users;
    const mine = await note(A, uniq('handoff'));
    fails(await A.client.from('notes').update({ user_id: B.id }).eq('id', mine.id), 403, '42501');
    const still = ok(await ctx.admin.from('notes').select('user_id').eq('id', mine.id).single(), 200);
    assert.equal(still.user_id, A.id);
  });

  test('a user deletes own rows; deletes of others\' rows affect 0 rows without an error', async () => {
    const { A, B } = users;
    const mine = await note(A, uniq('del-a'));
    const theirs = await note(B, uniq('del-b'));
    const theirsPublic = await note(B, uniq('del-b-pub'), true);

    for (const row of [theirs, theirsPublic]) {
      assert.deepEqual(ok(await A.client.from('notes').delete().eq('id', row.id).select(), 200), []);
      ok(await A.client.from('notes').delete().eq('id', row.id), 204);
      assert.equal(ok(await ctx.admin.from('notes').select('id').eq('id', row.id), 200).length, 1, 'still there');
    }
    const deleted = ok(await A.client.from('notes').delete().eq('id', mine.id).select('id'), 200);
    assert.deepEqual(deleted, [{ id: mine.id }]);
    assert.deepEqual(ok(await ctx.admin.from('notes').select('id').eq('id', mine.id), 200), []);
  });

  test('inserting a row owned by the other user → 403 42501', async () => {
    const { A, B } = users;
    const body = uniq('forged');
    fails(await A.client.from('notes').insert({ body, user_id: B.id }), 403, '42501');
    fails(await B.client.from('notes').insert({ body, user_id: A.id }).select().single(), 403, '42501');
    fails(await A.client.from('projects').insert({ name: body, owner_id: B.id }), 403, '42501');
    // A bulk insert with one forged row is refused as a whole.
    fails(await A.client.from('notes').insert([{ body }, { body, user_id: B.id }], { defaultToNull: false }), 403, '42501');
    assert.deepEqual(ok(await ctx.admin.from('notes').select('id').eq('body', body), 200), []);
    assert.deepEqual(ok(await ctx.admin.from('projects').select('id').eq('name', body), 200), []);
  });

  test('RLS WITH CHECK is evaluated before NOT NULL (PostgreSQL order): a missing owner → 403 42501', async () => {
    const { A, B } = users;
    const body = uniq('order');
    // Without missing=default, the first row's absent user_id becomes NULL (columns= semantics);
    // PostgreSQL checks the insert policy (user_id = auth.uid() → not true) before NOT NULL.
    fails(await A.client.from('notes').insert([{ body }, { body, user_id: B.id }]), 403, '42501');
    fails(await A.client.from('notes').insert({ body, user_id: null }), 403, '42501');
    assert.deepEqual(ok(await ctx.admin.from('notes').select('id').eq('body', body), 200), []);
  });

  test('RLS WITH CHECK is evaluated before foreign keys: an unknown owner id → 403 42501 (no user enumeration)', async () => {
    const { A } = users;
    const body = uniq('fk-order');
    // PostgreSQL checks foreign keys at the end of the statement, after the policy refused the row;
    // answering 409 23503 here would tell A which user ids exist.
    fails(await A.client.from('notes').insert({ body, user_id: crypto.randomUUID() }), 403, '42501');
    fails(await A.client.from('projects').insert({ name: body, owner_id: crypto.randomUUID() }), 403, '42501');
    fails(await A.client.from('tasks').insert({ project_id: crypto.randomUUID(), title: body }), 403, '42501');
    assert.deepEqual(ok(await ctx.admin.from('notes').select('id').eq('body', body), 200), []);
  });

  test('anon cannot insert (401 42501), update or delete', async () => {
    const { A } = users;
    const body = uniq('anon');
    fails(await ctx.anon.from('notes').insert({ body }), 401, '42501');
    fails(await ctx.anon.from('notes').insert({ body, user_id: A.id, is_public: true }), 401, '42501');
    fails(await ctx.anon.from('projects').insert({ name: body, owner_id: A.id }), 401, '42501');
    assert.deepEqual(ok(await ctx.admin.from('notes').select('id').eq('body', body), 200), []);

    const pub = await note(A, uniq('anon-target'), true);
    assert.deepEqual(ok(await ctx.anon.from('notes').update({ body: 'x' }).eq('id', pub.id).select(), 200), []);
    assert.deepEqual(ok(await ctx.anon.from('notes').delete().eq('id', pub.id).select(), 200), []);
    const still = ok(await ctx.admin.from('notes').select('body').eq('id', pub.id).single(), 200);
    assert.equal(still.body, pub.body);
  });

  test('service role reads and writes every row', async () => {
    const { A, B } = users;
    const tag = uniq('svc');
    ok(
      await ctx.admin.from('notes').insert([
        { body: `${tag}-a`, user_id: A.id },
        { body: `${tag}-b`, user_id: B.id },
      ]),
      201,
    );
    const rows = ok(await ctx.admin.from('notes').select('body, user_id').like('body', `${tag}-%`).order('body'), 200);
    assert.deepEqual(rows, [
      { body: `${tag}-a`, user_id: A.id },
      { body: `${tag}-b`, user_id: B.id },
    ]);
    const upd = ok(await ctx.admin.from('notes').update({ is_public: true }).like('body', `${tag}-%`).select('id'), 200);
    assert.equal(upd.length, 2);
    // A sees its own row and B's row that is now public.
    assert.equal(ok(await A.client.from('notes').select('id').like('body', `${tag}-%`), 200).length, 2);
    ok(await ctx.admin.from('notes').delete().like('body', `${tag}-%`), 204);
    assert.deepEqual(ok(await ctx.admin.from('notes').select('id').like('body', `${tag}-%`), 200), []);
  });

  test('on_signup created one profile per user, readable only by its owner', async () => {
    const { A, B } = users;
    assert.deepEqual(ok(await A.client.from('profiles').select('id, email, name'), 200), [{ id: A.id, email: A.email, name: 'A' }]);
    assert.deepEqual(ok(await B.client.from('profiles').select('id, email, name'), 200), [{ id: B.id, email: B.email, name: 'B' }]);
    assert.deepEqual(ok(await A.client.from('profiles').select('id').eq('id', B.id), 200), []);
    assert.deepEqual(ok(await ctx.anon.from('profiles').select('id'), 200), []);
    const both = ok(await ctx.admin.from('profiles').select('id, name').in('id', [A.id, B.id]).order('name'), 200);
    assert.deepEqual(both, [
      { id: A.id, name: 'A' },
      { id: B.id, name: 'B' },
    ]);
  });

  test('profiles: owner updates own profile; with_check guards it; no insert policy', async () => {
    const { A, B } = users;
    fails(await A.client.from('profiles').update({ name: null }).eq('id', A.id), 403, '42501');
    // Updating every visible profile touches only the own one.
    const rows = ok(await A.client.from('profiles').update({ name: 'A' }).neq('name', 'nobody').select('id, name'), 200);
    assert.deepEqual(rows, [{ id: A.id, name: 'A' }]);
    assert.deepEqual(ok(await A.client.from('profiles').update({ name: 'hacked' }).eq('id', B.id).select(), 200), []);
    const b = ok(await ctx.admin.from('profiles').select('name').eq('id', B.id).single(), 200);
    assert.equal(b.name, 'B');
    fails(await A.client.from('profiles').insert({ id: A.id, name: 'again' }), 403, '42501');
  });

  test('tasks are reachable only through a project the user owns', async () => {
    const { A, B } = users;
    const name = uniq('proj');
    const pa = ok(await A.client.from('projects').insert({ name: `${name}-a` }).select().single(), 201);
    assert.equal(pa.owner_id, A.id);
    const pb = ok(await B.client.from('projects').insert({ name: `${name}-b` }).select().single(), 201);
    assert.equal(pb.owner_id, B.id);

    const ta = ok(await A.client.from('tasks').insert({ project_id: pa.id, title: 'ta' }).select().single(), 201);
    ok(await B.client.from('tasks').insert({ project_id: pb.id, title: 'tb' }), 201);
    // A task in someone else's project is refused.
    fails(await A.client.from('tasks').insert({ project_id: pb.id, title: 'intrude' }), 403, '42501');
    fails(await A.client.from('tasks').update({ project_id: pb.id }).eq('id', ta.id), 403, '42501');

    const titles = async (client) =>
      ok(await client.from('tasks').select('title').in('project_id', [pa.id, pb.id]).order('title'), 200).map((r) => r.title);
    assert.deepEqual(await titles(A.client), ['ta']);
    assert.deepEqual(await titles(B.client), ['tb']);
    assert.deepEqual(await titles(ctx.anon), []);
    assert.deepEqual(await titles(ctx.admin), ['ta', 'tb']);

    // Embeds respect the child's policies.
    const embedded = ok(await A.client.from('projects').select('name, tasks(title)').like('name', `${name}-%`), 200);
    assert.deepEqual(embedded, [{ name: `${name}-a`, tasks: [{ title: 'ta' }] }]);
    assert.deepEqual(ok(await A.client.from('projects').select('id').eq('id', pb.id), 200), []);

    // B cannot change or delete A's task; A can.
    assert.deepEqual(ok(await B.client.from('tasks').update({ title: 'x' }).eq('id', ta.id).select(), 200), []);
    assert.deepEqual(ok(await B.client.from('tasks').delete().eq('id', ta.id).select(), 200), []);
    assert.deepEqual(ok(await A.client.from('tasks').update({ title: 'ta2' }).eq('id', ta.id).select('title'), 200), [{ title: 'ta2' }]);
    // Deleting the project cascades to its tasks.
    ok(await A.client.from('projects').delete().eq('id', pa.id), 204);
    assert.deepEqual(ok(await ctx.admin.from('tasks').select('id').eq('project_id', pa.id), 200), []);
  });

  test('auth.admin.deleteUser removes the user\'s rows everywhere', async () => {
    const C = await newUser('C');
    const D = await newUser('D');
    ok(await C.client.from('notes').insert([{ body: uniq('c1') }, { body: uniq('c2'), is_public: true }]), 201);
    ok(await D.client.from('notes').insert({ body: uniq('d1') }), 201);
    const pc = ok(await C.client.from('projects').insert({ name: uniq('pc') }).select().single(), 201);
    ok(await C.client.from('tasks').insert({ project_id: pc.id, title: 'tc' }), 201);
    const counts = async (id) => ({
      notes: ok(await ctx.admin.from('notes').select('id').eq('user_id', id), 200).length,
      projects: ok(await ctx.admin.from('projects').select('id').eq('owner_id', id), 200).length,
      tasks: ok(await ctx.admin.from('tasks').select('id').eq('project_id', pc.id), 200).length,
      profiles: ok(await ctx.admin.from('profiles').select('id').eq('id', id), 200).length,
    });
    assert.deepEqual(await counts(C.id), { notes: 2, projects: 1, tasks: 1, profiles: 1 });

    const { error } = await ctx.admin.auth.admin.deleteUser(C.id);
    assert.equal(error, null, JSON.stringify(error));
    assert.deepEqual(await counts(C.id), { notes: 0, projects: 0, tasks: 0, profiles: 0 });
    // Other users keep their rows.
    assert.equal(ok(await ctx.admin.from('notes').select('id').eq('user_id', D.id), 200).length, 1);
    assert.equal(ok(await ctx.admin.from('profiles').select('id').eq('id', D.id), 200).length, 1);
  });
});
