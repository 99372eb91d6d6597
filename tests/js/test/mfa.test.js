// MFA with TOTP through supabase-js' auth.mfa: enroll, challengeAndVerify to aal2, the
// assurance level as the client computes it, codes refused, refresh keeping aal2, unenroll.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { useServer, makeClient, uniq } from './helpers/server.js';

const PASSWORD = 'password-123';

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.replace(/=+$/, '')) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The six-digit code an authenticator app shows now (RFC 6238: SHA-1, 30 s steps). */
function totp(secret, at = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 1000 / 30)));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

function ok(result) {
  assert.equal(result.error, null, `unexpected error: ${JSON.stringify(result.error)}`);
  return result.data;
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

describe('auth.mfa: TOTP', () => {
  const ctx = useServer({ schema: 'schema_auth.toml', env: { BASALT_AUTH_AUTOCONFIRM: 'true' } });

  test('enroll, verify to aal2, refresh, unenroll', async () => {
    const client = makeClient(ctx.url, ctx.anonKey);
    ok(await client.auth.signUp({ email: `${uniq('mfa')}@example.com`, password: PASSWORD }));

    const enrolled = ok(await client.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'Authenticator' }));
    assert.equal(enrolled.type, 'totp');
    assert.equal(enrolled.friendly_name, 'Authenticator');
    assert.match(enrolled.totp.qr_code, /^data:image\/svg\+xml;utf-8,.*<svg/s);
    assert.match(enrolled.totp.uri, /^otpauth:\/\/totp\//);
    assert.equal(enrolled.totp.secret.length, 32);

    let factors = ok(await client.auth.mfa.listFactors());
    assert.deepEqual([factors.all.length, factors.all[0].status, factors.totp.length], [1, 'unverified', 0]);
    let level = ok(await client.auth.mfa.getAuthenticatorAssuranceLevel());
    assert.deepEqual([level.currentLevel, level.nextLevel], ['aal1', 'aal1']);

    // A wrong code is refused with GoTrue's error code; the right one raises the session.
    const challenge = ok(await client.auth.mfa.challenge({ factorId: enrolled.id }));
    assert.equal(challenge.type, 'totp');
    const right = totp(enrolled.totp.secret);
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    const refused = await client.auth.mfa.verify({ factorId: enrolled.id, challengeId: challenge.id, code: wrong });
    assert.equal(refused.error?.status, 422);
    assert.equal(refused.error?.code, 'mfa_verification_failed');
    const verified = ok(await client.auth.mfa.challengeAndVerify({ factorId: enrolled.id, code: right }));
    assert.equal(claims(verified.access_token).aal, 'aal2');

    level = ok(await client.auth.mfa.getAuthenticatorAssuranceLevel());
    assert.deepEqual([level.currentLevel, level.nextLevel], ['aal2', 'aal2']);
    assert.equal(level.currentAuthenticationMethods[0].method, 'totp');
    factors = ok(await client.auth.mfa.listFactors());
    assert.deepEqual(factors.totp.map((f) => [f.id, f.status]), [[enrolled.id, 'verified']]);

    // The same code again, on a new challenge: accepted once only.
    const again = await client.auth.mfa.challengeAndVerify({ factorId: enrolled.id, code: right });
    assert.equal(again.error?.code, 'mfa_verification_failed');

    const refreshed = ok(await client.auth.refreshSession());
    assert.equal(claims(refreshed.session.access_token).aal, 'aal2');

    ok(await client.auth.mfa.unenroll({ factorId: enrolled.id }));
    factors = ok(await client.auth.mfa.listFactors());
    assert.equal(factors.all.length, 0);
    const lowered = ok(await client.auth.refreshSession());
    assert.equal(claims(lowered.session.access_token).aal, 'aal1');
  });

  test('another user cannot challenge a factor', async () => {
    const owner = makeClient(ctx.url, ctx.anonKey);
    ok(await owner.auth.signUp({ email: `${uniq('owner')}@example.com`, password: PASSWORD }));
    const { id } = ok(await owner.auth.mfa.enroll({ factorType: 'totp' }));
    const other = makeClient(ctx.url, ctx.anonKey);
    ok(await other.auth.signUp({ email: `${uniq('other')}@example.com`, password: PASSWORD }));
    const r = await other.auth.mfa.challenge({ factorId: id });
    assert.equal(r.error?.status, 404);
    assert.equal(r.error?.code, 'mfa_factor_not_found');
  });
});
