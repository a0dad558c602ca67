#!/usr/bin/env node
// An independent verifier for Latchkey access tokens, written against the RFCs with Node's
// built-ins only (no npm packages): OIDC discovery -> jwks_uri -> RFC 9068 checks.
//
//   node tests/node/verify_jwt.mjs <issuer> <token> <audience>
//
// Exit 0 and print "valid" only if the token is valid; otherwise print the reason on stderr
// and exit 1 (2 for usage errors).

import crypto from 'node:crypto';

const LEEWAY = 30; // seconds of clock skew tolerated on exp/nbf/iat
// The only algorithms accepted. Never "none", never HMAC with a published key.
const ALGS = {
  ES256: { hash: 'sha256', kty: 'EC', crv: 'P-256', dsaEncoding: 'ieee-p1363' },
  RS256: { hash: 'sha256', kty: 'RSA' },
};

function fail(reason) {
  console.error(`invalid: ${reason}`);
  process.exit(1);
}

function b64urlJson(part, what) {
  if (!/^[A-Za-z0-9_-]+$/.test(part)) fail(`${what} is not base64url`);
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (e) {
    fail(`${what} is not JSON: ${e.message}`);
  }
}

async function getJson(url) {
  const res = await fetch(url, { redirect: 'error' });
  if (res.status !== 200) fail(`GET ${url}: HTTP ${res.status}`);
  return res.json();
}

async function main() {
  const [issuer, token, audience] = process.argv.slice(2);
  if (!issuer || !token || !audience) {
    console.error('usage: verify_jwt.mjs <issuer> <token> <audience>');
    process.exit(2);
  }

  // OIDC Discovery 1.0 §4.3: the issuer in the document must equal the one we asked.
  const meta = await getJson(`${issuer}/.well-known/openid-configuration`);
  if (meta.issuer !== issuer) fail(`discovery issuer ${meta.issuer} != ${issuer}`);
  if (typeof meta.jwks_uri !== 'string') fail('discovery has no jwks_uri');
  const jwks = await getJson(meta.jwks_uri);
  if (!Array.isArray(jwks.keys)) fail('JWKS has no keys array');

  const parts = token.split('.');
  if (parts.length !== 3) fail('not a compact JWS');
  const [h64, p64, s64] = parts;
  const header = b64urlJson(h64, 'header');
  const payload = b64urlJson(p64, 'payload');

  // RFC 9068 §2.1 / §4.
  if (header.typ !== 'at+jwt' && header.typ !== 'application/at+jwt') {
    fail(`typ is ${JSON.stringify(header.typ)}, not at+jwt`);
  }
  const spec = Object.hasOwn(ALGS, header.alg) ? ALGS[header.alg] : undefined;
  if (!spec) fail(`alg ${JSON.stringify(header.alg)} is not allowed`);
  if (typeof header.kid !== 'string') fail('no kid');
  if (header.crit !== undefined) fail('crit is not supported');

  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) fail(`kid ${header.kid} is not in the JWKS`);
  if (jwk.alg !== undefined && jwk.alg !== header.alg) fail(`JWK alg ${jwk.alg} != ${header.alg}`);
  if (jwk.use !== undefined && jwk.use !== 'sig') fail(`JWK use ${jwk.use} != sig`);
  if (jwk.kty !== spec.kty) fail(`JWK kty ${jwk.kty} does not fit ${header.alg}`);
  if (spec.crv && jwk.crv !== spec.crv) fail(`JWK crv ${jwk.crv} does not fit ${header.alg}`);
  for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) {
    if (jwk[m] !== undefined) fail(`the JWKS publishes private member ${m}`);
  }

  let key;
  try {
    key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    fail(`unusable JWK: ${e.message}`);
  }
  if (!/^[A-Za-z0-9_-]+$/.test(s64)) fail('signature is not base64url');
  const sig = Buffer.from(s64, 'base64url');
  const data = Buffer.from(`${h64}.${p64}`, 'ascii');
  const keyOpts = spec.dsaEncoding ? { key, dsaEncoding: spec.dsaEncoding } : key;
  if (!crypto.verify(spec.hash, data, keyOpts, sig)) fail('bad signature');

  // RFC 9068 §4: iss, aud, exp (and iat/nbf sanity).
  const now = Math.floor(Date.now() / 1000);
  if (payload.iss !== issuer) fail(`iss ${payload.iss} != ${issuer}`);
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!aud.includes(audience)) fail(`aud ${JSON.stringify(payload.aud)} does not include ${audience}`);
  if (typeof payload.exp !== 'number') fail('no numeric exp');
  if (payload.exp + LEEWAY <= now) fail(`expired at ${payload.exp}`);
  if (payload.nbf !== undefined && payload.nbf - LEEWAY > now) fail(`not valid before ${payload.nbf}`);
  if (typeof payload.iat !== 'number' || payload.iat - LEEWAY > now) fail('iat missing or in the future');
  for (const c of ['sub', 'client_id', 'jti']) {
    if (typeof payload[c] !== 'string' || payload[c] === '') fail(`no ${c}`);
  }

  console.log(`valid: sub=${payload.sub} scope=${payload.scope ?? ''} kid=${header.kid}`);
}

main().catch((e) => fail(e && e.message ? e.message : String(e)));
