#!/usr/bin/env node
// openid-client (v6, unmodified) as a TV app using the device authorization grant (RFC 8628)
// against Latchkey, with DPoP (RFC 9449): initiateDeviceAuthorization, then
// pollDeviceAuthorizationGrant (which waits `interval`, and longer after `slow_down`) while the
// test, as the person, approves at /device. Driven by tests/api/openid_client.rs:
//
//   node openid_client_device.mjs '<plan JSON>'
//
// plan: {issuer, client_id, scope}. Prints one JSON line with the device authorization
// response, then (once the poll ends) one JSON line with what the tokens said, and exits 0; on
// any error it prints {"error": ...} and exits 1. It gives up after 40 s.

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
  const started = await client.initiateDeviceAuthorization(config, { scope: plan.scope });
  out({
    user_code: started.user_code,
    verification_uri: started.verification_uri,
    verification_uri_complete: started.verification_uri_complete ?? null,
    interval: started.interval ?? null,
    expires_in: started.expires_in,
  });
  const tokens = await client.pollDeviceAuthorizationGrant(config, started, undefined, {
    DPoP: dpop,
  });
  out({
    jkt,
    token_type: tokens.token_type,
    cnf_jkt: decodeJwt(tokens.access_token).cnf?.jkt ?? null,
    sub: decodeJwt(tokens.access_token).sub,
    id_token_sub: tokens.claims()?.sub ?? null,
    has_refresh_token: typeof tokens.refresh_token === 'string',
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
