// GoTrue-compatible auth at /auth/v1 through supabase-js' auth client: sign-up, password
// sign-in, user updates, refresh rotation and reuse detection, sign-out, anonymous users,
// e-mail OTP and recovery through the file outbox, the admin API, the approval gate and
// rate limits. Each describe starts its own server with the env it needs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, makeClient, lastMail, uniq, mintOpaqueKey } from './helpers/server.js';

const PASSWORD = 'password-123';
const SCHEMA = 'schema_auth.toml';

/** A fresh e-mail address per call. */
const email = (prefix = 'u') => `${uniq(prefix)}@example.com`;

/** A supabase-js client with the anon key that keeps its own session in memory. */
const userClient = (ctx) => makeClient(ctx.url, ctx.anonKey);

/** Assert an auth-js result has no error; return its data. */
function authOk(result) {
  assert.equal(result.error, null, `unexpected auth error: ${result.error && JSON.stringify({ name: result.error.name, status: result.error.status, code: result.error.code, message: result.error.message })}`);
  return result.data;
}

/** Assert an auth-js result failed with an AuthApiError of the given status (and code). */
function authFails(result, status, code) {
  const e = result.error;
  assert.ok(e, `expected an auth error, got data=${JSON.stringify(result.data)}`);
  const shown = JSON.stringify({ name: e.name, status: e.status, code: e.code, message: e.message });
  assert.equal(e.name, 'AuthApiError', shown);
  assert.equal(e.__isAuthError, true, shown);
  assert.equal(e.status, status, shown);
  if (code !== undefined) assert.equal(e.code, code, shown);
  return e;
}

/** Sign up on an autoconfirm server; returns `{ client, session, user, email }`. */
async function signUp(ctx, data = {}, prefix = 'u') {
  const client = userClient(ctx);
  const addr = email(prefix);
  const { session, user } = authOk(await client.auth.signUp({ email: addr, password: PASSWORD, options: { data } }));
  assert.ok(session, 'autoconfirm: sign-up returns a session');
  return { client, session, user, email: addr };
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

describe('auth: sessions (autoconfirm)', () => {
  const ctx = useServer({
    schema: SCHEMA,
    env: {
      BASALT_AUTH_AUTOCONFIRM: 'true',
      BASALT_AUTH_ANONYMOUS_ENABLED: 'true',
      BASALT_AUTH_REFRESH_REUSE_INTERVAL: '0',
    },
  });

  test('signUp returns a session and the user with user_metadata', async () => {
    const client = userClient(ctx);
    const addr = email('signup');
    const { session, user } = authOk(await client.auth.signUp({ email: addr, password: PASSWORD, options: { data: { name: 'Ann', n: 1 } } }));
    assert.ok(session?.access_token && session.refresh_token && session.expires_in, JSON.stringify(session));
    assert.equal(session.token_type, 'bearer');
    assert.equal(typeof session.expires_at, 'number');
    assert.equal(user.id, session.user.id);
    assert.equal(user.email, addr);
    assert.equal(user.aud, 'authenticated');
    assert.equal(user.role, 'authenticated');
    assert.equal(user.user_metadata.name, 'Ann');
    assert.equal(user.user_metadata.n, 1);
    assert.equal(user.app_metadata.provider, 'email');
    assert.deepEqual(user.app_metadata.providers, ['email']);
    assert.ok(user.email_confirmed_at, 'autoconfirm confirms the e-mail');
    assert.equal(user.is_anonymous, false);
    const c = claims(session.access_token);
    assert.equal(c.sub, user.id);
    assert.equal(c.role, 'authenticated');
    assert.equal(c.email, addr);
    assert.equal(c.user_metadata.name, 'Ann');
    // The client now holds the session.
    const { session: held } = authOk(await client.auth.getSession());
    assert.equal(held.access_token, session.access_token);
  });

  test('signUp with an existing e-mail → user_already_exists; weak password → weak_password', async () => {
    const { email: addr } = await signUp(ctx, {}, 'dupe');
    authFails(await userClient(ctx).auth.signUp({ email: addr, password: PASSWORD }), 422, 'user_already_exists');
    const r = await userClient(ctx).auth.signUp({ email: email('weak'), password: '12' });
    assert.ok(r.error, 'weak password refused');
    assert.equal(r.error.name, 'AuthWeakPasswordError');
    assert.equal(r.error.status, 422);
    assert.equal(r.error.code, 'weak_password');
    assert.ok(r.error.reasons.includes('length'), JSON.stringify(r.error.reasons));
  });

  test('signInWithPassword: ok, and wrong password → invalid_credentials 400', async () => {
    const { email: addr, user } = await signUp(ctx, {}, 'signin');
    const client = userClient(ctx);
    const { session, user: u } = authOk(await client.auth.signInWithPassword({ email: addr, password: PASSWORD }));
    assert.ok(session.access_token && session.refresh_token);
    assert.equal(u.id, user.id);
    assert.ok(u.last_sign_in_at);

    const bad = userClient(ctx);
    const e = authFails(await bad.auth.signInWithPassword({ email: addr, password: 'wrong-password' }), 400, 'invalid_credentials');
    assert.equal(e.message, 'Invalid login credentials');
    const { session: none } = authOk(await bad.auth.getSession());
    assert.equal(none, null);
    authFails(await bad.auth.signInWithPassword({ email: email('nobody'), password: PASSWORD }), 400, 'invalid_credentials');
  });

  test('getUser returns the signed-in user; a jwt argument works too', async () => {
    const { client, session, user, email: addr } = await signUp(ctx, { name: 'Gus' }, 'getuser');
    const { user: got } = authOk(await client.auth.getUser());
    assert.equal(got.id, user.id);
    assert.equal(got.email, addr);
    assert.equal(got.user_metadata.name, 'Gus');
    assert.ok(Array.isArray(got.identities) && got.identities[0]?.provider === 'email', JSON.stringify(got.identities));
    const { user: byJwt } = authOk(await userClient(ctx).auth.getUser(session.access_token));
    assert.equal(byJwt.id, user.id);
    // No session at all → AuthSessionMissingError, no request.
    const r = await userClient(ctx).auth.getUser();
    assert.ok(r.error);
    assert.equal(r.error.name, 'AuthSessionMissingError');
  });

  test('updateUser merges user_metadata; a new password signs in, the old one no longer', async () => {
    const { client, email: addr } = await signUp(ctx, { a: 1, name: 'Upd' }, 'update');
    const { user } = authOk(await client.auth.updateUser({ data: { b: 2 } }));
    assert.equal(user.user_metadata.a, 1);
    assert.equal(user.user_metadata.b, 2);
    assert.equal(user.user_metadata.name, 'Upd');
    const { user: again } = authOk(await client.auth.getUser());
    assert.equal(again.user_metadata.b, 2);
    // After a refresh the new JWT carries the merged metadata.
    const { session } = authOk(await client.auth.refreshSession());
    assert.equal(claims(session.access_token).user_metadata.b, 2);

    authOk(await client.auth.updateUser({ password: 'new-password-456' }));
    authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: 'new-password-456' }));
    authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 400, 'invalid_credentials');
    const weak = await client.auth.updateUser({ password: '123' });
    assert.equal(weak.error?.code, 'weak_password', JSON.stringify(weak.error));
    assert.equal(weak.error.status, 422);
  });

  test('refreshSession rotates the tokens', async () => {
    const { client, session, user } = await signUp(ctx, {}, 'refresh');
    const { session: next, user: u } = authOk(await client.auth.refreshSession());
    assert.ok(next.access_token && next.refresh_token);
    assert.notEqual(next.refresh_token, session.refresh_token);
    assert.equal(u.id, user.id);
    assert.equal(claims(next.access_token).session_id, claims(session.access_token).session_id, 'same session');
    const { session: held } = authOk(await client.auth.getSession());
    assert.equal(held.refresh_token, next.refresh_token, 'the client keeps the rotated session');
    // An explicit refresh token works on a client without a session.
    const { session: third } = authOk(await userClient(ctx).auth.refreshSession({ refresh_token: next.refresh_token }));
    assert.notEqual(third.refresh_token, next.refresh_token);
    authFails(await userClient(ctx).auth.refreshSession({ refresh_token: 'no-such-token' }), 400, 'refresh_token_not_found');
  });

  test('refresh token reuse (interval 0): A→B, B→C, then A → refresh_token_already_used', async () => {
    const { session } = await signUp(ctx, {}, 'reuse');
    const a = session.refresh_token;
    const { session: sb } = authOk(await userClient(ctx).auth.refreshSession({ refresh_token: a }));
    const b = sb.refresh_token;
    const { session: sc } = authOk(await userClient(ctx).auth.refreshSession({ refresh_token: b }));
    const c = sc.refresh_token;
    assert.equal(new Set([a, b, c]).size, 3);
    authFails(await userClient(ctx).auth.refreshSession({ refresh_token: a }), 400, 'refresh_token_already_used');
    // Reuse revoked the whole session: C no longer works, nor do its access tokens.
    const r = await userClient(ctx).auth.refreshSession({ refresh_token: c });
    assert.ok(r.error, 'the family is revoked');
    assert.equal(r.error.status, 400);
    // GET /user answers 403 session_not_found, which auth-js turns into AuthSessionMissingError.
    const g = await userClient(ctx).auth.getUser(sc.access_token);
    assert.ok(g.error, 'the access token of a revoked session is refused');
    assert.equal(g.error.name, 'AuthSessionMissingError', JSON.stringify(g.error));
    const res = await fetch(`${ctx.url}/auth/v1/user`, { headers: { apikey: ctx.anonKey, authorization: `Bearer ${sc.access_token}` } });
    const body = await res.json();
    assert.equal(res.status, 403, JSON.stringify(body));
    assert.equal(body.code, 'session_not_found');
  });

  test('signOut ends the session: the refresh token then fails', async () => {
    const { client, session } = await signUp(ctx, {}, 'signout');
    authOk(await client.auth.signOut());
    const { session: none } = authOk(await client.auth.getSession());
    assert.equal(none, null, 'local session cleared');
    const r = await userClient(ctx).auth.refreshSession({ refresh_token: session.refresh_token });
    assert.ok(r.error, 'refresh after sign-out fails');
    assert.equal(r.error.status, 400);
    const g = await userClient(ctx).auth.getUser(session.access_token);
    assert.ok(g.error, 'the old access token no longer reaches /user');
  });

  test('signInAnonymously returns a session for an anonymous user', async () => {
    const client = userClient(ctx);
    const { session, user } = authOk(await client.auth.signInAnonymously({ options: { data: { name: 'Anon' } } }));
    assert.ok(session?.access_token && session.refresh_token);
    assert.equal(user.is_anonymous, true);
    assert.equal(user.user_metadata.name, 'Anon');
    assert.ok(!user.email, `no e-mail: ${JSON.stringify(user.email)}`);
    assert.equal(claims(session.access_token).is_anonymous, true);
    assert.equal(claims(session.access_token).role, 'authenticated');
    const { user: got } = authOk(await client.auth.getUser());
    assert.equal(got.id, user.id);
    assert.equal(got.is_anonymous, true);
  });
});

describe('auth: anonymous sign-in disabled by default', () => {
  const ctx = useServer({ schema: SCHEMA, env: { BASALT_AUTH_AUTOCONFIRM: 'true' } });

  test('signInAnonymously → 422 anonymous_provider_disabled', async () => {
    authFails(await userClient(ctx).auth.signInAnonymously(), 422, 'anonymous_provider_disabled');
  });
});

describe('auth: e-mail flows through the outbox (no autoconfirm)', () => {
  // These tests send several mails of a kind to one user at once; the interval has its own test.
  const ctx = useServer({ schema: SCHEMA, env: { BASALT_AUTH_MAIL_MAX_FREQUENCY: '0' } });

  test('signUp without autoconfirm: a user, no session, a confirmation mail; sign-in refused until confirmed', async () => {
    const client = userClient(ctx);
    const addr = email('confirm');
    const { session, user } = authOk(await client.auth.signUp({ email: addr, password: PASSWORD }));
    assert.equal(session, null);
    assert.equal(user.email, addr);
    assert.ok(user.confirmation_sent_at);
    authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 400, 'email_not_confirmed');
    const mail = await lastMail(ctx.server, addr, 'signup');
    const token = new URL(mail.link).searchParams.get('token');
    assert.ok(token, mail.link);
    const { session: s } = authOk(await userClient(ctx).auth.verifyOtp({ token_hash: token, type: 'signup' }));
    assert.equal(s.user.email, addr);
    assert.ok(s.user.email_confirmed_at);
    authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }));
  });

  test('resend({type: "signup"}) sends the confirmation again; its link confirms', async () => {
    const addr = email('resend');
    authOk(await userClient(ctx).auth.signUp({ email: addr, password: PASSWORD }));
    const first = await lastMail(ctx.server, addr, 'signup');
    const sent = authOk(await userClient(ctx).auth.resend({ type: 'signup', email: addr, options: { emailRedirectTo: 'http://localhost:3000/again' } }));
    assert.equal(sent.session, null);
    let again = first;
    for (let i = 0; i < 100 && again.link === first.link; i++) again = await lastMail(ctx.server, addr, 'signup');
    assert.notEqual(again.link, first.link);
    assert.equal(new URL(again.link).searchParams.get('redirect_to'), 'http://localhost:3000/again');
    const { session } = authOk(await userClient(ctx).auth.verifyOtp({ token_hash: new URL(again.link).searchParams.get('token'), type: 'signup' }));
    assert.ok(session.user.email_confirmed_at);
    // Unknown addresses get the same answer.
    authOk(await userClient(ctx).auth.resend({ type: 'signup', email: email('ghost') }));
  });

  test('reauthenticate() mails a code; updateUser({password, nonce}) takes it', async () => {
    const addr = email('reauth');
    authOk(await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true }));
    const client = userClient(ctx);
    authOk(await client.auth.signInWithPassword({ email: addr, password: PASSWORD }));
    authOk(await client.auth.reauthenticate());
    const mail = await lastMail(ctx.server, addr, 'reauthentication');
    assert.match(mail.otp, /^\d{6}$/);
    authOk(await client.auth.updateUser({ password: 'reauthed-pass-1', nonce: mail.otp }));
    authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: 'reauthed-pass-1' }));
  });

  test('flowType "pkce": the magic link redirects with ?code=, exchangeCodeForSession opens the session', async () => {
    const addr = email('pkce');
    const client = makeClient(ctx.url, ctx.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType: 'pkce' },
    });
    authOk(await client.auth.signInWithOtp({ email: addr, options: { emailRedirectTo: 'http://localhost:3000/auth/callback' } }));
    const mail = await lastMail(ctx.server, addr);
    const res = await fetch(mail.link, { redirect: 'manual' });
    assert.equal(res.status, 303);
    const location = new URL(res.headers.get('location'));
    assert.equal(location.origin + location.pathname, 'http://localhost:3000/auth/callback');
    const code = location.searchParams.get('code');
    assert.ok(code, location.href);
    const { session, user } = authOk(await client.auth.exchangeCodeForSession(code));
    assert.ok(session.access_token);
    assert.equal(user.email, addr);
    const { user: got } = authOk(await client.auth.getUser());
    assert.equal(got.id, user.id);
  });

  test('signInWithOtp + verifyOtp({email, token, type: "email"}) with the code from the outbox', async () => {
    const addr = email('otp');
    const client = userClient(ctx);
    const sent = authOk(await client.auth.signInWithOtp({ email: addr }));
    assert.equal(sent.session, null);
    const mail = await lastMail(ctx.server, addr);
    assert.match(mail.otp, /^\d{6}$/, JSON.stringify(mail));
    // A wrong code is refused.
    authFails(await client.auth.verifyOtp({ email: addr, token: mail.otp === '000000' ? '111111' : '000000', type: 'email' }), 403, 'otp_expired');
    const { session, user } = authOk(await client.auth.verifyOtp({ email: addr, token: mail.otp, type: 'email' }));
    assert.ok(session?.access_token && session.refresh_token);
    assert.equal(user.email, addr);
    assert.ok(user.email_confirmed_at);
    const { user: got } = authOk(await client.auth.getUser());
    assert.equal(got.id, user.id);
    // The code is single-use.
    authFails(await userClient(ctx).auth.verifyOtp({ email: addr, token: mail.otp, type: 'email' }), 403, 'otp_expired');
  });

  test('signInWithOtp with shouldCreateUser=false for an unknown e-mail creates no user', async () => {
    const addr = email('nocreate');
    const r = await userClient(ctx).auth.signInWithOtp({ email: addr, options: { shouldCreateUser: false } });
    assert.ok(r.error, 'GoTrue refuses otp sign-in for unknown users when create_user is false');
    const { data } = await ctx.admin.auth.admin.listUsers({ page: 1, perPage: 1000 });
    assert.equal(data.users.some((u) => u.email === addr), false);
  });

  test('resetPasswordForEmail + verifyOtp({token_hash, type: "recovery"}) then a new password', async () => {
    // A confirmed user made through the admin API.
    const addr = email('recover');
    authOk(await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true }));
    const res = authOk(await userClient(ctx).auth.resetPasswordForEmail(addr, { redirectTo: 'http://localhost:3000/reset' }));
    assert.deepEqual(res, {});
    // Unknown e-mails get the same answer (no enumeration).
    assert.deepEqual(authOk(await userClient(ctx).auth.resetPasswordForEmail(email('ghost'))), {});
    const mail = await lastMail(ctx.server, addr, 'recovery');
    const tokenHash = new URL(mail.link).searchParams.get('token');
    assert.ok(tokenHash, mail.link);
    const client = userClient(ctx);
    const { session, user } = authOk(await client.auth.verifyOtp({ token_hash: tokenHash, type: 'recovery' }));
    assert.ok(session?.access_token);
    assert.equal(user.email, addr);
    authOk(await client.auth.updateUser({ password: 'recovered-pass-1' }));
    authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: 'recovered-pass-1' }));
    authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 400, 'invalid_credentials');
    // The link is single-use.
    authFails(await userClient(ctx).auth.verifyOtp({ token_hash: tokenHash, type: 'recovery' }), 403, 'otp_expired');
  });
});

describe('auth: admin API (service key)', () => {
  const ctx = useServer({ schema: SCHEMA, env: { BASALT_AUTH_AUTOCONFIRM: 'true' } });

  test('opaque keys: sb_secret_ works as the service key, sb_publishable_ as the anon key', async () => {
    const admin = makeClient(ctx.url, mintOpaqueKey('sb_secret_'));
    const addr = email('opaque');
    authOk(await admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true }));
    const { users } = authOk(await admin.auth.admin.listUsers({ page: 1, perPage: 1000 }));
    assert.ok(users.some((u) => u.email === addr));
    const app = makeClient(ctx.url, mintOpaqueKey('sb_publishable_'));
    const { session } = authOk(await app.auth.signInWithPassword({ email: addr, password: PASSWORD }));
    assert.ok(session.access_token);
    const { error } = await app.auth.admin.listUsers();
    assert.ok(error, 'the publishable key is no admin');
  });

  test('createUser, getUserById, duplicate e-mail → email_exists', async () => {
    const addr = email('admin');
    const { user } = authOk(
      await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true, user_metadata: { name: 'Adm' }, app_metadata: { plan: 'pro' } }),
    );
    assert.equal(user.email, addr);
    assert.equal(user.user_metadata.name, 'Adm');
    assert.equal(user.app_metadata.plan, 'pro');
    assert.ok(user.email_confirmed_at);
    const { user: got } = authOk(await ctx.admin.auth.admin.getUserById(user.id));
    assert.equal(got.id, user.id);
    authFails(await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD }), 422, 'email_exists');
    authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }));
  });

  test('listUsers({page, perPage}) pages with total', async () => {
    const before = authOk(await ctx.admin.auth.admin.listUsers({ page: 1, perPage: 1000 }));
    const created = [];
    for (let i = 0; i < 3; i++) {
      created.push(authOk(await ctx.admin.auth.admin.createUser({ email: email(`list${i}`), password: PASSWORD })).user.id);
    }
    const total = before.users.length + 3;
    const page1 = authOk(await ctx.admin.auth.admin.listUsers({ page: 1, perPage: 2 }));
    assert.equal(page1.users.length, 2);
    assert.equal(page1.total, total);
    assert.equal(page1.nextPage, 2);
    assert.equal(page1.lastPage, Math.ceil(total / 2));
    const page2 = authOk(await ctx.admin.auth.admin.listUsers({ page: 2, perPage: 2 }));
    assert.equal(page2.total, total);
    const ids1 = page1.users.map((u) => u.id);
    for (const u of page2.users) assert.ok(!ids1.includes(u.id), 'pages do not overlap');
    const all = authOk(await ctx.admin.auth.admin.listUsers({ page: 1, perPage: 1000 }));
    assert.equal(all.users.length, total);
    for (const id of created) assert.ok(all.users.some((u) => u.id === id));
  });

  test('updateUserById ban_duration 24h refuses sign-in (user_banned); "none" unbans', async () => {
    const addr = email('ban');
    const { user } = authOk(await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true }));
    const { user: banned } = authOk(await ctx.admin.auth.admin.updateUserById(user.id, { ban_duration: '24h' }));
    assert.ok(banned.banned_until, JSON.stringify(banned));
    assert.ok(Date.parse(banned.banned_until) > Date.now() + 23 * 3600 * 1000);
    authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 400, 'user_banned');
    const { user: unbanned } = authOk(await ctx.admin.auth.admin.updateUserById(user.id, { ban_duration: 'none' }));
    assert.ok(!unbanned.banned_until || Date.parse(unbanned.banned_until) <= Date.now(), JSON.stringify(unbanned.banned_until));
    authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }));
  });

  test('updateUserById merges app_metadata and user_metadata', async () => {
    const { user } = authOk(await ctx.admin.auth.admin.createUser({ email: email('meta'), password: PASSWORD, user_metadata: { a: 1 } }));
    const { user: u } = authOk(await ctx.admin.auth.admin.updateUserById(user.id, { user_metadata: { b: 2 }, app_metadata: { role2: 'x' } }));
    assert.equal(u.user_metadata.a, 1);
    assert.equal(u.user_metadata.b, 2);
    assert.equal(u.app_metadata.role2, 'x');
    assert.equal(u.app_metadata.provider, 'email');
  });

  test('deleteUser removes the user; getUserById → user_not_found', async () => {
    const addr = email('del');
    const { user } = authOk(await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true }));
    authOk(await ctx.admin.auth.admin.deleteUser(user.id));
    authFails(await ctx.admin.auth.admin.getUserById(user.id), 404, 'user_not_found');
    authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 400, 'invalid_credentials');
  });

  test('generateLink({type: "magiclink"}) → properties.action_link that verifies', async () => {
    const addr = email('link');
    const { user } = authOk(await ctx.admin.auth.admin.createUser({ email: addr, password: PASSWORD, email_confirm: true }));
    const { properties, user: u } = authOk(await ctx.admin.auth.admin.generateLink({ type: 'magiclink', email: addr }));
    assert.equal(u.id, user.id);
    assert.equal(properties.verification_type, 'magiclink');
    const link = new URL(properties.action_link);
    assert.equal(link.pathname, '/auth/v1/verify');
    assert.equal(link.searchParams.get('type'), 'magiclink');
    assert.equal(link.searchParams.get('token'), properties.hashed_token);
    const { session } = authOk(await userClient(ctx).auth.verifyOtp({ token_hash: properties.hashed_token, type: 'magiclink' }));
    assert.equal(session.user.id, user.id);
  });

  test('the admin API refuses a user token (not_admin) and the anon key', async () => {
    const { session } = await signUp(ctx, {}, 'notadmin');
    const asUser = makeClient(ctx.url, ctx.anonKey, { global: { headers: { Authorization: `Bearer ${session.access_token}` } } });
    authFails(await asUser.auth.admin.listUsers(), 403, 'not_admin');
    authFails(await ctx.anon.auth.admin.listUsers(), 403, 'not_admin');
  });
});

describe('auth: approval gate (BASALT_AUTH_REQUIRE_APPROVAL)', () => {
  const ctx = useServer({ schema: SCHEMA, env: { BASALT_AUTH_AUTOCONFIRM: 'true', BASALT_AUTH_REQUIRE_APPROVAL: 'true' } });

  test('signUp works, signIn is refused with user_not_approved until app_metadata.approved', async () => {
    const addr = email('approve');
    const { user, session } = authOk(await userClient(ctx).auth.signUp({ email: addr, password: PASSWORD }));
    assert.equal(session, null, 'no session while awaiting approval');
    assert.equal(user.email, addr);
    authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 403, 'user_not_approved');
    authOk(await ctx.admin.auth.admin.updateUserById(user.id, { app_metadata: { approved: true } }));
    const { session: s } = authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }));
    assert.equal(s.user.app_metadata.approved, true);
  });
});

describe('auth: minimum interval between mails to a user', () => {
  const ctx = useServer({ schema: SCHEMA });

  test('resend and resetPasswordForEmail within a minute → 429 with the seconds to wait', async () => {
    const addr = email('interval');
    authOk(await userClient(ctx).auth.signUp({ email: addr, password: PASSWORD }));
    const e = authFails(await userClient(ctx).auth.resend({ type: 'signup', email: addr }), 429, 'over_email_send_rate_limit');
    assert.match(e.message, /^For security purposes, you can only request this after (5[5-9]|60) seconds\.$/);
    authOk(await userClient(ctx).auth.resetPasswordForEmail(addr));
    authFails(await userClient(ctx).auth.resetPasswordForEmail(addr), 429, 'over_email_send_rate_limit');
  });
});

describe('auth: rate limit per e-mail', () => {
  const ctx = useServer({ schema: SCHEMA, env: { BASALT_AUTH_AUTOCONFIRM: 'true', BASALT_AUTH_RATE_LIMIT_EMAIL_PER_MINUTE: '3' } });

  test('the 4th signInWithPassword for one e-mail within a minute → 429', async () => {
    const addr = email('rate');
    authOk(await userClient(ctx).auth.signUp({ email: addr, password: PASSWORD }));
    for (let i = 0; i < 3; i++) authOk(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }));
    const e = authFails(await userClient(ctx).auth.signInWithPassword({ email: addr, password: PASSWORD }), 429);
    assert.ok(['over_request_rate_limit', 'over_email_send_rate_limit'].includes(e.code), e.code);
    // Another e-mail is not affected.
    const other = email('rate2');
    authOk(await userClient(ctx).auth.signUp({ email: other, password: PASSWORD }));
    authOk(await userClient(ctx).auth.signInWithPassword({ email: other, password: PASSWORD }));
  });
});
