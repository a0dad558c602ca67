#!/usr/bin/env node
// openid-client (v6, unmodified) as a public native app with DPoP (RFC 9449) against Latchkey:
// discovery, a pushed authorization request (RFC 9126, with a DPoP proof, so the code is bound
// to the key), PKCE S256, state and nonce, the code exchange, userinfo, a refresh and a call to a
// resource API protected by latchkey-verify, every request with a DPoP proof from a key made
// here (openid-client's own randomDPoPKeyPair). Driven by tests/api/openid_client.rs:
//
//   node openid_client_dpop.mjs '<plan JSON>'
//
// plan: {issuer, client_id, redirect_uri, scope, api_url}. The script prints one JSON line
// {"authorization_url": ...}, reads the URL the browser was redirected to (one line on stdin),
// then prints one JSON line with what it saw, and exits 0; on any error it prints
// {"error": ...} and exits 1. It gives up after 40 s.

import * as readline from 'node:readline';
import * as client from 'openid-client';
import { calculateJwkThumbprint, decodeJwt } from 'jose';

const hardLimit = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timed out' }));
  process.exit(3);
}, 40_000);

function out(obj) {
  console.log(JSON.stringify(obj));
}

async function main() {
  const plan = JSON.parse(process.argv[2]);
  const config = await client.discovery(
    new URL(plan.issuer),
    plan.client_id,
    undefined,
    client.None(),
    { execute: [client.allowInsecureRequests] },
  );
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const dpop = client.getDPoPHandle(config, keyPair);
  const jkt = await calculateJwkThumbprint(
    await crypto.subtle.exportKey('jwk', keyPair.publicKey),
  );

  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authorizationUrl = await client.buildAuthorizationUrlWithPAR(
    config,
    {
      redirect_uri: plan.redirect_uri,
      scope: plan.scope,
      code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    },
    { DPoP: dpop },
  );
  out({ authorization_url: authorizationUrl.href });

  const rl = readline.createInterface({ input: process.stdin });
  let callback;
  for await (const line of rl) {
    callback = line.trim();
    break;
  }
  rl.close();
  if (!callback) throw new Error('no callback URL on stdin');

  const tokens = await client.authorizationCodeGrant(
    config,
    new URL(callback),
    { pkceCodeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true },
    undefined,
    { DPoP: dpop },
  );
  const claims = tokens.claims();
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, {
    DPoP: dpop,
  });
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, {
    DPoP: dpop,
  });

  let api = null;
  if (plan.api_url) {
    const r = await client.fetchProtectedResource(
      config,
      refreshed.access_token,
      new URL(plan.api_url),
      'GET',
      undefined,
      undefined,
      { DPoP: dpop },
    );
    api = { status: r.status, body: await r.json() };
    // The same token stolen and used as a bearer token.
    const stolen = await fetch(plan.api_url, {
      headers: { authorization: `Bearer ${refreshed.access_token}` },
    });
    api.bearer_status = stolen.status;
    api.bearer_challenge = stolen.headers.get('www-authenticate');
  }

  out({
    jkt,
    token_type: tokens.token_type,
    cnf_jkt: decodeJwt(tokens.access_token).cnf?.jkt ?? null,
    id_token_sub: claims.sub,
    userinfo_sub: userinfo.sub,
    refreshed_token_type: refreshed.token_type,
    refreshed_cnf_jkt: decodeJwt(refreshed.access_token).cnf?.jkt ?? null,
    refresh_token_rotated: refreshed.refresh_token !== tokens.refresh_token,
    api,
  });
}

main()
  .then(() => {
    clearTimeout(hardLimit);
    process.exit(0);
  })
  .catch((e) => {
    out({ error: `${e?.name ?? 'Error'}: ${e?.message ?? e}`, code: e?.code ?? null, cause: e?.cause ?? null });
    process.exit(1);
  });
