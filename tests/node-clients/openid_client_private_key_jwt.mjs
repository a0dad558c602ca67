#!/usr/bin/env node
// openid-client (v6, unmodified) as a backend service authenticating with private_key_jwt
// (RFC 7523; openid-client's PrivateKeyJwt with a key made by the test): a client_credentials
// grant, then the same client at the introspection endpoint. Driven by tests/api/openid_client.rs:
//
//   node openid_client_private_key_jwt.mjs '<plan JSON>'
//
// plan: {issuer, client_id, private_jwk, kid, scope, resource}. Prints one JSON line with what
// it got, and exits 0; on any error it prints {"error": ...} and exits 1. Gives up after 40 s.

import * as client from 'openid-client';
import { decodeJwt } from 'jose';

const hardLimit = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timed out' }));
  process.exit(3);
}, 40_000);

function out(obj) {
  console.log(JSON.stringify(obj));
}

async function main() {
  const plan = JSON.parse(process.argv[2]);
  const key = await crypto.subtle.importKey(
    'jwk',
    plan.private_jwk,
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );
  const config = await client.discovery(
    new URL(plan.issuer),
    plan.client_id,
    undefined,
    client.PrivateKeyJwt({ key, kid: plan.kid }),
    { execute: [client.allowInsecureRequests] },
  );
  const tokens = await client.clientCredentialsGrant(config, {
    scope: plan.scope,
    resource: plan.resource,
  });
  const introspected = await client.tokenIntrospection(config, tokens.access_token);
  const claims = decodeJwt(tokens.access_token);
  out({ sub: claims.sub, aud: claims.aud, scope: tokens.scope, active: introspected.active });
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
