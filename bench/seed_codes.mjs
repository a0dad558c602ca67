#!/usr/bin/env node
// Pre-seeds authorization codes (with their PKCE verifiers) for the code-exchange workload
// of bench/code_exchange.sh, against ANY OpenID Connect issuer on loopback, without a browser.
// Works like ../shared/peers/load/seed_tokens.mjs (same form filling: hidden inputs copied,
// text input = username, password input = password, the approving button pressed), but
//   - each worker logs in ONCE (its own cookie jar = one login session) and then runs the
//     authorization request again and again in that session, so a code costs what the
//     server's authorize path costs with a live session (Latchkey: one "Continue as" press
//     for a native public client, RFC 8252 §8.6, or one redirect for a claimed https one;
//     oidc-provider: a consent interaction, which it requires for native clients every
//     time) and no password hashing;
//   - it stops at the redirect: the code is NOT redeemed. Prints `CODE VERIFIER`, one pair
//     per line, every code with its own fresh PKCE (S256) verifier.
//
//   node seed_codes.mjs http://127.0.0.1:8080 --client-id ID --count 2000 --scope "openid offline_access"
//
// Options (each also settable as an env var, shown in brackets):
//   --client-id      [SEED_CLIENT_ID]      default bench-mobile
//   --redirect-uri   [SEED_REDIRECT_URI]   default http://127.0.0.1:9/cb (never contacted)
//   --scope          [SEED_SCOPE]          default "openid offline_access"
//   --resource       [SEED_RESOURCE]       RFC 8707 resource for the authorization request
//   --prompt         [SEED_PROMPT]         e.g. consent (oidc-provider needs it for offline_access)
//   --username       [SEED_USERNAME]       default bench-user
//   --password       [SEED_PASSWORD]       default bench-password
//   --count          [SEED_COUNT]          default 1
//   --concurrency    [SEED_CONCURRENCY]    default 4 (= login sessions)
// Diagnostics go to stderr; exit code is non-zero if any flow failed.
import { createHash, randomBytes } from 'node:crypto';

const argv = process.argv.slice(2);
const positional = [];
const opts = {};
for (let i = 0; i < argv.length; i += 1) {
  const a = argv[i];
  if (a.startsWith('--')) {
    const [k, v] = a.includes('=') ? [a.slice(2, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a.slice(2), argv[++i]];
    opts[k] = v;
  } else positional.push(a);
}
const opt = (name, env, dflt) => opts[name] ?? process.env[env] ?? dflt;

const issuer = (positional[0] ?? process.env.ISSUER ?? '').replace(/\/+$/, '');
if (!issuer) {
  console.error('usage: seed_codes.mjs ISSUER_URL [--count N] [--client-id ID] ...');
  process.exit(2);
}
const cfg = {
  clientId: opt('client-id', 'SEED_CLIENT_ID', 'bench-mobile'),
  redirectUri: opt('redirect-uri', 'SEED_REDIRECT_URI', 'http://127.0.0.1:9/cb'),
  scope: opt('scope', 'SEED_SCOPE', 'openid offline_access'),
  resource: opt('resource', 'SEED_RESOURCE', ''),
  prompt: opt('prompt', 'SEED_PROMPT', ''),
  username: opt('username', 'SEED_USERNAME', 'bench-user'),
  password: opt('password', 'SEED_PASSWORD', 'bench-password'),
  count: Number.parseInt(opt('count', 'SEED_COUNT', '1'), 10),
  concurrency: Number.parseInt(opt('concurrency', 'SEED_CONCURRENCY', '4'), 10),
};

function assertLoopback(u) {
  const { hostname } = new URL(u);
  if (!['127.0.0.1', 'localhost', '[::1]', '::1'].includes(hostname) && !hostname.startsWith('127.')) {
    throw new Error(`refusing to contact non-loopback host ${hostname} (${u})`);
  }
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const formEncode = (s) => encodeURIComponent(s).replace(/%20/g, '+');

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos|#39);/gi, (m, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos' || l === '#39') return "'";
    if (l.startsWith('#x')) return String.fromCodePoint(Number.parseInt(l.slice(2), 16));
    return String.fromCodePoint(Number.parseInt(l.slice(1), 10));
  });
}

function attrs(tag) {
  const out = {};
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?/g;
  let m;
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  while ((m = re.exec(inner))) out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

const APPROVE = /allow|approve|accept|authori[sz]e|consent|continue|confirm|yes|sign.?in|log.?in|submit/i;
const DENY = /deny|cancel|reject|abort|decline|\bno\b/i;

function fillForm(html, pageUrl) {
  const forms = [...html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)].map((m) => m[0]);
  if (!forms.length) return null;
  const labels = (f) => [...f.matchAll(/<button\b[^>]*>([\s\S]*?)<\/button>|<input\b[^>]*type\s*=\s*["']?submit[^>]*>/gi)]
    .map((m) => (m[1] ?? '').replace(/<[^>]*>/g, '') + ' ' + (attrs(m[0].match(/<[a-z]+\b[^>]*>/i)[0]).value ?? ''));
  const pick = forms.find((f) => /type\s*=\s*["']?password/i.test(f))
    ?? forms.find((f) => labels(f).some((l) => APPROVE.test(l) && !DENY.test(l)))
    ?? forms.find((f) => /method\s*=\s*["']?post/i.test(f.match(/<form\b[^>]*>/i)[0]))
    ?? forms[0];
  const formAttrs = attrs(pick.match(/<form\b[^>]*>/i)[0]);
  const action = new URL(formAttrs.action || pageUrl, pageUrl).toString();
  const method = (formAttrs.method || 'get').toUpperCase();
  const fields = [];
  let usernameSet = false;
  for (const [tag] of pick.matchAll(/<input\b[^>]*>/gi)) {
    const a = attrs(tag);
    const type = (a.type || 'text').toLowerCase();
    if (!a.name || 'disabled' in a) continue;
    if (type === 'password') fields.push([a.name, cfg.password]);
    else if (!usernameSet && ['text', 'email', 'username'].includes(type)) {
      fields.push([a.name, cfg.username]);
      usernameSet = true;
    } else if (type === 'hidden') fields.push([a.name, a.value ?? '']);
    else if ((type === 'checkbox' || type === 'radio') && 'checked' in a) fields.push([a.name, a.value ?? 'on']);
    else if (['text', 'email'].includes(type) && a.value) fields.push([a.name, a.value]);
  }
  const buttons = [];
  for (const m of pick.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)) {
    const a = attrs(`<button ${m[1]}>`);
    if ((a.type || 'submit').toLowerCase() !== 'submit') continue;
    buttons.push({ name: a.name, value: a.value ?? '', label: `${m[2].replace(/<[^>]*>/g, '')} ${a.value ?? ''}` });
  }
  for (const [tag] of pick.matchAll(/<input\b[^>]*>/gi)) {
    const a = attrs(tag);
    if ((a.type || '').toLowerCase() === 'submit') buttons.push({ name: a.name, value: a.value ?? '', label: a.value ?? '' });
  }
  const button = buttons.find((b) => APPROVE.test(b.label) && !DENY.test(b.label))
    ?? buttons.find((b) => !DENY.test(b.label)) ?? buttons[0];
  if (button?.name) fields.push([button.name, button.value]);
  return { method, action, body: fields.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join('&') };
}

class Jar {
  #c = new Map();

  store(res) {
    for (const line of res.headers.getSetCookie?.() ?? []) {
      const [pair, ...attrParts] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrParts.some((p) => {
        const [k, v] = p.split('=').map((x) => x?.trim().toLowerCase());
        return (k === 'max-age' && Number(v) <= 0) || (k === 'expires' && Date.parse(v) < Date.now());
      });
      if (expired || value === '') this.#c.delete(name);
      else this.#c.set(name, value);
    }
  }

  header() {
    return [...this.#c].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

async function http(jar, url, { method = 'GET', body } = {}) {
  assertLoopback(url);
  const headers = {};
  const cookie = jar.header();
  if (cookie) headers.cookie = cookie;
  if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
  const res = await fetch(url, { method, body, headers, redirect: 'manual' });
  jar.store(res);
  return res;
}

// One authorization request in `jar`'s session, through whatever forms the server shows,
// up to the redirect: returns [code, verifier].
async function oneCode(meta, jar, n) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(12));
  const auth = new URL(meta.authorization_endpoint);
  const q = {
    response_type: 'code',
    client_id: cfg.clientId,
    redirect_uri: cfg.redirectUri,
    scope: cfg.scope,
    state,
    nonce: b64url(randomBytes(12)),
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  };
  if (cfg.resource) q.resource = cfg.resource;
  if (cfg.prompt) q.prompt = cfg.prompt;
  for (const [k, v] of Object.entries(q)) auth.searchParams.set(k, v);
  const redirect = new URL(cfg.redirectUri);
  let req = { url: auth.toString(), method: 'GET' };
  for (let step = 0; step < 25; step += 1) {
    const res = await http(jar, req.url, req);
    if (res.status >= 300 && res.status < 400) {
      await res.arrayBuffer();
      const loc = new URL(res.headers.get('location'), req.url);
      if (loc.origin === redirect.origin && loc.pathname === redirect.pathname) {
        const p = loc.searchParams;
        if (p.get('error')) throw new Error(`code ${n}: ${p.get('error')}: ${p.get('error_description')}`);
        if (p.get('state') !== state) throw new Error(`code ${n}: state mismatch`);
        if (!p.get('code')) throw new Error(`code ${n}: no code in ${loc}`);
        return [p.get('code'), verifier];
      }
      req = { url: loc.toString(), method: 'GET' };
      continue;
    }
    const text = await res.text();
    if (res.status !== 200) throw new Error(`code ${n}: HTTP ${res.status} at ${req.url}: ${text.slice(0, 300)}`);
    const form = fillForm(text, req.url);
    if (!form) throw new Error(`code ${n}: page without a form at ${req.url}: ${text.slice(0, 300)}`);
    if (form.method === 'POST') req = { url: form.action, method: 'POST', body: form.body };
    else {
      const u = new URL(form.action);
      u.search = form.body;
      req = { url: u.toString(), method: 'GET' };
    }
  }
  throw new Error(`code ${n}: never reached the redirect_uri`);
}

const discoveryUrl = `${issuer}/.well-known/openid-configuration`;
assertLoopback(discoveryUrl);
const meta = await (await fetch(discoveryUrl)).json();
assertLoopback(meta.authorization_endpoint);

const out = [];
let next = 0;
let failed = 0;
async function worker() {
  const jar = new Jar(); // one login session per worker
  while (next < cfg.count) {
    const n = next;
    next += 1;
    try {
      out.push((await oneCode(meta, jar, n)).join(' '));
    } catch (err) {
      failed += 1;
      console.error(String(err?.message ?? err));
      if (failed > 10) throw err;
    }
  }
}
await Promise.all(Array.from({ length: Math.max(1, cfg.concurrency) }, worker));
process.stdout.write(out.length ? `${out.join('\n')}\n` : '');
if (failed) {
  console.error(`${failed} of ${cfg.count} codes failed`);
  process.exit(1);
}
