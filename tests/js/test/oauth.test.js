// Sign-in with an OAuth provider through supabase-js: signInWithOAuth (PKCE flow) sends the
// browser to /authorize, a local stand-in for GitHub approves, /callback sends it back to the
// app with a code, and exchangeCodeForSession turns the code into a session.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer, makeClient } from './helpers/server.js';

const APP = 'http://app.example.com';

/** A stand-in for GitHub's authorize, token, user and e-mails endpoints. */
function fakeGitHub() {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const json = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/login/oauth/authorize') {
      const back = new URL(url.searchParams.get('redirect_uri'));
      back.searchParams.set('code', 'good-code');
      back.searchParams.set('state', url.searchParams.get('state'));
      res.writeHead(302, { location: back.toString() });
      return res.end();
    }
    if (url.pathname === '/login/oauth/access_token') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      const ok = form.get('code') === 'good-code' && form.get('client_secret') === 'gh-secret';
      return json(200, ok ? { access_token: 'gh-token', token_type: 'bearer' } : { error: 'bad_verification_code' });
    }
    if (req.headers.authorization !== 'Bearer gh-token') return json(401, { message: 'Bad credentials' });
    if (url.pathname === '/user') return json(200, { id: 99, login: 'jsocto', name: 'JS Octo', avatar_url: null, email: null });
    if (url.pathname === '/user/emails') return json(200, [{ email: 'jsocto@example.com', primary: true, verified: true }]);
    return json(404, {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** The browser: follows redirects until it is back at the app; returns that URL. */
async function follow(url) {
  for (let i = 0; i < 4; i++) {
    const res = await fetch(url, { redirect: 'manual' });
    await res.arrayBuffer();
    assert.ok([302, 303].includes(res.status), `${url}: ${res.status}`);
    url = res.headers.get('location');
    if (url.startsWith(APP)) return new URL(url);
  }
  throw new Error(`never came back to the app: ${url}`);
}

describe('auth: signInWithOAuth (GitHub, PKCE)', () => {
  let github;
  let server;
  before(async () => {
    github = await fakeGitHub();
    const gh = `http://127.0.0.1:${github.address().port}`;
    server = await startServer({
      schema: 'schema_auth.toml',
      env: {
        BASALT_AUTH_SITE_URL: APP,
        BASALT_AUTH_EXTERNAL_GITHUB_CLIENT_ID: 'gh-client',
        BASALT_AUTH_EXTERNAL_GITHUB_SECRET: 'gh-secret',
        BASALT_AUTH_EXTERNAL_GITHUB_AUTHORIZE_URL: `${gh}/login/oauth/authorize`,
        BASALT_AUTH_EXTERNAL_GITHUB_TOKEN_URL: `${gh}/login/oauth/access_token`,
        BASALT_AUTH_EXTERNAL_GITHUB_USERINFO_URL: `${gh}/user`,
      },
    });
  });
  after(async () => {
    await server?.stop();
    github?.close();
  });

  test('the code comes back and becomes a session', async () => {
    const client = makeClient(server.url, server.anonKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType: 'pkce' },
    });
    const { data, error } = await client.auth.signInWithOAuth({
      provider: 'github',
      options: { redirectTo: `${APP}/callback`, skipBrowserRedirect: true },
    });
    assert.equal(error, null);
    assert.match(data.url, /\/auth\/v1\/authorize\?provider=github.*code_challenge=/);
    const landed = await follow(data.url);
    const code = landed.searchParams.get('code');
    assert.ok(code, `a code in ${landed}`);
    const exchanged = await client.auth.exchangeCodeForSession(code);
    assert.equal(exchanged.error, null, JSON.stringify(exchanged.error));
    const { user } = exchanged.data;
    assert.equal(user.email, 'jsocto@example.com');
    assert.equal(user.app_metadata.provider, 'github');
    assert.equal(user.user_metadata.user_name, 'jsocto');
    assert.deepEqual(user.identities.map((i) => i.provider), ['github']);
    const me = await client.auth.getUser();
    assert.equal(me.data.user.id, user.id);
  });

  test('a provider that is not configured is refused', async () => {
    const res = await fetch(`${server.url}/auth/v1/authorize?provider=google`, { redirect: 'manual' });
    assert.equal(res.status, 400);
    assert.equal((await res.json()).error_code, 'validation_failed');
  });
});
