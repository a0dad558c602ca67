#!/usr/bin/env node
// Drives a real headless Chromium (Debian's /usr/bin/chromium, through playwright-core) through
// Latchkey's login and consent pages. Run by tests/api/chromium.rs, which owns the server, the
// app's loopback redirect listener and every assertion; this script only acts like a person at
// the browser and reports what it saw.
//
//   node tests/browser/login.mjs '<plan JSON>'
//
// The plan:
//   chromium         path of the browser executable
//   extra_args       more Chromium switches (the Rust side adds a marker to find its processes)
//   redirect_prefix  the app's redirect URI: a step ends when the page reaches it
//   timeout_ms       hard limit for the whole run (default 30000)
//   context          options for browser.newContext() (viewport, isMobile, hasTouch, ...)
//   screenshot_dir   if set, a PNG of every page seen is saved there
//   steps            run in order in ONE browser context (cookies carry over), each either
//     { name, action: "authorize", url, logins: [{username, password}], consent: "allow"|"deny",
//       continue: "allow"|"deny"|"switch", measure: true }
//        opens url and, until the redirect is reached, fills each login page it meets with the
//        next entry of `logins` (a login page with none left is a failure) and answers consent
//        pages with `consent` (a consent page without it is a failure) and the "Continue as"
//        page (RFC 8252 §8.6) with `continue` ("allow"|"deny"|"switch"). `measure` records the
//        layout of the login form (for the phone-viewport test).
//     { name, action: "device", url, user_code, logins, decision: "allow"|"deny" }
//        opens url (/device, or verification_uri_complete), types `user_code` if given (a
//        second code page then ends the step: a refusal), signs in with `logins`, answers the
//        confirmation with `decision`, and reports every page up to the final one.
//     { name, action: "account", url, logins, continue, sign_out: "App name" }
//        opens url (/account), signs in with `logins` (answering a "Continue as" page with
//        `continue`), reports the devices listed on the account page, and if `sign_out` names
//        one, presses its "Sign out this device" and reports the page after.
//     { name, action: "invite", url, passkey_name }
//        opens an invitation link, names the passkey, presses "Create passkey" (the virtual
//        authenticator answers) and reports the page after.
//     A `logins` entry { passkey: true } presses "Sign in with a passkey" instead of typing.
//   disable_conditional_ui  if true, pages see no conditional mediation (passkey autofill),
//        so the "Sign in with a passkey" button is what signs in.
//     { name, action: "conditional", url }
//        opens url and waits, touching nothing, until the redirect: passkey autofill
//        (conditional mediation, answered by the virtual authenticator) signs in.
//   virtual_authenticator  if true, a CDP WebAuthn virtual authenticator (internal, resident
//        keys, user verification) is added to the page: passkeys work without a person.
//     { name, action: "console", url, logins, ops: [...] }
//        opens url (/console), signs in with `logins` whenever the sign-in page shows, then runs
//        `ops` in order: { goto: "/path", shot }, { fill: selector, value }, { check: selector },
//        { select: selector, value }, { submit: selector, shot } (click, wait for the next page),
//        { copy: selector, as } (press a Copy button, read the clipboard into `read[as]`),
//        { text: selector, as } / { texts: selector, as } (text of the first / every match).
//        Reports `pages` (url, title, heading of each page reached) and `read`; a screenshot
//        of every page reached is named by its op's `shot`.
//   clipboard  if true, the pages may read and write the clipboard (the Copy buttons).
//     { name, action: "framed", url, frame_timeout_ms }
//        opens url (a page of the test's own that frames the login page) and reports what the
//        frame ended up showing.
//
// Prints one JSON object on stdout: { ok: true, steps: [...], cookies: [...] } and exits 0, or
// { ok: false, error, step, url, content } and exits 1. Exit 3: the hard timeout hit. The
// browser is closed on every path.

import { chromium } from 'playwright-core';

const plan = JSON.parse(process.argv[2] ?? process.env.LATCHKEY_BROWSER_PLAN ?? 'null');
if (!plan || !Array.isArray(plan.steps)) {
  console.error('usage: node login.mjs <plan JSON> (see the comment at the top)');
  process.exit(2);
}

let browser = null;
let page = null;
let current = null; // the step being run, for diagnostics
let timedOut = false;

async function closeBrowser() {
  const b = browser;
  browser = null;
  if (b) {
    try {
      await b.close();
    } catch (e) {
      console.error(`closing the browser failed: ${e}`);
    }
  }
}

const hardTimeout = setTimeout(async () => {
  timedOut = true;
  console.error(`login.mjs: hard timeout after ${plan.timeout_ms ?? 30000} ms in step ${current}`);
  await closeBrowser();
  process.exit(3);
}, plan.timeout_ms ?? 30000);

async function snippet() {
  try {
    const html = await page.content();
    return html.replace(/\s+/g, ' ').slice(0, 2000);
  } catch (e) {
    return `(no content: ${e})`;
  }
}

class StepError extends Error {}

let shot = 0;
async function screenshot(label) {
  if (!plan.screenshot_dir || !page) return;
  try {
    shot += 1;
    const file = `${plan.screenshot_dir}/${String(shot).padStart(2, '0')}-${current}-${label}.png`;
    await page.screenshot({ path: file, fullPage: true });
  } catch (e) {
    console.error(`screenshot failed: ${e}`);
  }
}

// Every main-frame document response, with all its headers (the cookies' Set-Cookie included).
let navigations = [];
// Console errors and warnings: CSP violations and framing refusals show up here.
let consoleMessages = [];

function watch(p) {
  p.on('response', (r) => {
    if (r.request().isNavigationRequest()) {
      const entry = { url: r.url(), status: r.status(), main_frame: r.frame() === p.mainFrame() };
      entry.headers = r.allHeaders().catch(() => r.headers());
      navigations.push(entry);
    }
  });
  p.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      consoleMessages.push({ type: m.type(), text: m.text(), url: m.location()?.url ?? null });
    }
  });
  p.on('pageerror', (e) => consoleMessages.push({ type: 'pageerror', text: String(e) }));
}

async function settle(list) {
  const out = [];
  for (const n of list) out.push({ ...n, headers: await n.headers });
  return out;
}

// The kind of page showing now.
async function kind() {
  if (page.url().startsWith(plan.redirect_prefix)) return 'redirect';
  if (await page.locator('input[name="password"]').count()) return 'login';
  if (await page.locator('button[name="decision"][value="switch"]').count()) return 'continue';
  if (await page.locator('button[name="decision"]').count()) return 'consent';
  return 'other';
}

// Clicks (or taps) `selector` and waits for the main frame to commit a new document.
async function submitWith(selector) {
  const navigated = page.waitForEvent('framenavigated', {
    predicate: (f) => f === page.mainFrame(),
    timeout: 15000,
  });
  if (plan.context?.hasTouch) {
    await page.tap(selector);
  } else {
    await page.click(selector);
  }
  await navigated;
  await page.waitForLoadState('domcontentloaded');
}

async function fillField(selector, value) {
  if (plan.context?.hasTouch) await page.tap(selector);
  await page.fill(selector, value);
}

// Layout facts about the login form, as a person on this viewport would see them.
async function measure() {
  return page.evaluate(() => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      const cs = getComputedStyle(el);
      return {
        left: r.left,
        right: r.right,
        top: r.top,
        bottom: r.bottom,
        width: r.width,
        height: r.height,
        font_size_px: parseFloat(cs.fontSize),
        visible: cs.visibility !== 'hidden' && cs.display !== 'none' && r.width > 0 && r.height > 0,
      };
    };
    const q = (s) => document.querySelector(s);
    return {
      inner_width: window.innerWidth,
      inner_height: window.innerHeight,
      scroll_width: document.documentElement.scrollWidth,
      viewport_meta: q('meta[name="viewport"]')?.getAttribute('content') ?? null,
      username: box(q('input[name="username"]')),
      password: box(q('input[name="password"]')),
      submit: box(q('form button[type="submit"]')),
      focused: document.activeElement?.getAttribute('name') ?? null,
    };
  });
}

async function authorizeStep(step) {
  const pages = [];
  const logins = [...(step.logins ?? [])];
  await page.goto(step.url, { waitUntil: 'domcontentloaded' });
  for (let i = 0; i < 8; i++) {
    const k = await kind();
    await screenshot(`${i}-${k}`);
    if (k === 'redirect') {
      return { final_url: page.url(), pages };
    }
    const seen = { kind: k, url: page.url(), title: await page.title() };
    if (k === 'login') {
      seen.error = (await page.locator('[role="alert"]').allTextContents()).join(' ').trim() || null;
      seen.username_value = await page.inputValue('input[name="username"]');
      seen.client_text = (await page.locator('p.muted').allTextContents()).join(' ').trim();
      if (step.measure) seen.layout = await measure();
      pages.push(seen);
      const login = logins.shift();
      if (!login) throw new StepError('a login page was shown, but the step has no login left for it');
      if (login.passkey) {
        seen.passkey_button = await page.locator('#passkey-button').count();
        seen.webauthn_autofill = await page.getAttribute('input[name="username"]', 'autocomplete');
        await submitWith('#passkey-button');
        continue;
      }
      await fillField('input[name="username"]', login.username);
      await fillField('input[name="password"]', login.password);
      await submitWith('form button[type="submit"]');
    } else if (k === 'consent') {
      seen.heading = (await page.locator('h1').textContent())?.trim() ?? null;
      seen.scopes = (await page.locator('ul.scopes li').allTextContents()).map((s) => s.trim());
      pages.push(seen);
      if (!step.consent) throw new StepError('a consent page was shown, but the step does not expect one');
      await submitWith(`button[name="decision"][value="${step.consent}"]`);
    } else if (k === 'continue') {
      seen.heading = (await page.locator('h1').textContent())?.trim() ?? null;
      seen.button = (await page.locator('button[name="decision"][value="allow"]').textContent())?.trim() ?? null;
      pages.push(seen);
      if (!step.continue) throw new StepError('a "Continue as" page was shown, but the step does not expect one');
      await submitWith(`button[name="decision"][value="${step.continue}"]`);
    } else {
      seen.content = await snippet();
      pages.push(seen);
      // An error page from the server (or anything else): report it, the test decides.
      return { final_url: page.url(), pages, stopped_on_other_page: true };
    }
  }
  throw new StepError('too many pages without reaching the redirect URI');
}

// Conditional mediation: the login page's passkey autofill signs in with no click.
async function conditionalStep(step) {
  await page.goto(step.url, { waitUntil: 'commit' });
  await page.waitForURL((u) => u.toString().startsWith(plan.redirect_prefix), { timeout: 15000 });
  return { final_url: page.url() };
}

// An invitation link: create the passkey with the virtual authenticator.
async function inviteStep(step) {
  await page.goto(step.url, { waitUntil: 'domcontentloaded' });
  await screenshot('invite');
  const before = { heading: (await page.locator('h1').textContent())?.trim() ?? null };
  if (step.passkey_name) await fillField('input[name="name"]', step.passkey_name);
  await submitWith('form.passkey-register button[type="submit"]');
  await screenshot('invite-done');
  return {
    before,
    heading: (await page.locator('h1').textContent())?.trim() ?? null,
    content: await snippet(),
    final_url: page.url(),
  };
}

// RFC 8628 verification at /device: the code page (prefilled or `step.user_code` typed), the
// login page (with `logins`), the confirmation (answered with `decision`), and the final page.
async function deviceStep(step) {
  const pages = [];
  const logins = [...(step.logins ?? [])];
  await page.goto(step.url, { waitUntil: 'domcontentloaded' });
  for (let i = 0; i < 8; i++) {
    await screenshot(`device-${i}`);
    const seen = { url: page.url(), title: await page.title() };
    seen.heading = (await page.locator('h1').textContent())?.trim() ?? null;
    if (await page.locator('input[name="password"]').count()) {
      seen.kind = 'login';
      pages.push(seen);
      const login = logins.shift();
      if (!login) throw new StepError('a login page was shown, but the step has no login left for it');
      await fillField('input[name="username"]', login.username);
      await fillField('input[name="password"]', login.password);
      await submitWith('form button[type="submit"]');
    } else if (await page.locator('input[name="user_code"][type="text"]').count()) {
      seen.kind = 'code';
      seen.user_code_value = await page.inputValue('input[name="user_code"]');
      seen.error = (await page.locator('[role="alert"]').allTextContents()).join(' ').trim() || null;
      pages.push(seen);
      if (step.user_code !== undefined && pages.filter((p) => p.kind === 'code').length === 1) {
        await fillField('input[name="user_code"]', step.user_code);
      } else if (step.user_code !== undefined) {
        return { pages };
      }
      await submitWith('form button[type="submit"]');
    } else if (await page.locator('button[name="decision"]').count()) {
      seen.kind = 'confirm';
      seen.code = (await page.locator('p.code').textContent())?.trim() ?? null;
      seen.scopes = (await page.locator('ul.scopes li').allTextContents()).map((s) => s.trim());
      pages.push(seen);
      if (!step.decision) throw new StepError('a confirmation page was shown, but the step has no decision');
      await submitWith(`button[name="decision"][value="${step.decision}"]`);
    } else {
      seen.kind = 'done';
      seen.text = (await page.locator('main').textContent())?.trim() ?? null;
      pages.push(seen);
      return { pages };
    }
  }
  throw new StepError('too many pages at /device');
}

async function accountStep(step) {
  const pages = [];
  const logins = [...(step.logins ?? [])];
  let signedOut = false;
  await page.goto(step.url, { waitUntil: 'domcontentloaded' });
  for (let i = 0; i < 8; i++) {
    await screenshot(`account-${i}`);
    const seen = { url: page.url(), title: await page.title() };
    if (await page.locator('ul.devices').count()) {
      seen.kind = 'account';
      seen.devices = (await page.locator('li.device strong').allTextContents()).map((s) => s.trim());
      seen.notice = (await page.locator('[role="status"]').allTextContents()).join(' ').trim() || null;
      pages.push(seen);
      if (step.sign_out && !signedOut) {
        signedOut = true;
        // The row whose app name is exactly `sign_out` ("app" must not match "Watch app").
        const row = page
          .locator('li.device')
          .filter({ has: page.locator('strong').getByText(step.sign_out, { exact: true }) });
        if ((await row.count()) !== 1) throw new StepError(`no single device named ${step.sign_out}`);
        const navigated = page.waitForEvent('framenavigated', {
          predicate: (f) => f === page.mainFrame(),
          timeout: 15000,
        });
        await row.locator('button[type="submit"]').click();
        await navigated;
        await page.waitForLoadState('domcontentloaded');
        continue;
      }
      return { pages };
    }
    const k = await kind();
    seen.kind = k;
    pages.push(seen);
    if (k === 'login') {
      const login = logins.shift();
      if (!login) throw new StepError('a login page was shown, but the step has no login left for it');
      await fillField('input[name="username"]', login.username);
      await fillField('input[name="password"]', login.password);
      await submitWith('form button[type="submit"]');
    } else if (k === 'continue') {
      if (!step.continue) throw new StepError('a "Continue as" page was shown, but the step does not expect one');
      await submitWith(`button[name="decision"][value="${step.continue}"]`);
    } else {
      seen.content = await snippet();
      return { pages, stopped_on_other_page: true };
    }
  }
  throw new StepError('too many pages on the way to /account');
}

// The admin console: sign in on the way, then the plan's operations, one page after another.
async function consoleStep(step) {
  const pages = [];
  const read = {};
  const logins = [...(step.logins ?? [])];
  const origin = new URL(step.url).origin;
  const signInIfAsked = async () => {
    for (let i = 0; i < 4 && new URL(page.url()).pathname.startsWith('/authorize'); i++) {
      if (!(await page.locator('input[name="password"]').count())) break;
      await screenshot('sign-in');
      const login = logins.shift();
      if (!login) throw new StepError('a login page was shown, but the step has no login left for it');
      await fillField('input[name="username"]', login.username);
      await fillField('input[name="password"]', login.password);
      await submitWith('form button[type="submit"]');
    }
  };
  const reached = async (shot) => {
    pages.push({
      url: page.url(),
      title: await page.title(),
      heading: (await page.locator('h1').first().textContent())?.trim() ?? null,
    });
    await screenshot(shot);
  };
  await page.goto(step.url, { waitUntil: 'domcontentloaded' });
  await signInIfAsked();
  await reached('start');
  for (const op of step.ops ?? []) {
    if (op.goto !== undefined) {
      await page.goto(origin + op.goto, { waitUntil: 'domcontentloaded' });
      await signInIfAsked();
      await reached(op.shot ?? 'page');
    } else if (op.fill !== undefined) {
      await fillField(op.fill, op.value);
    } else if (op.check !== undefined) {
      await page.check(op.check);
    } else if (op.select !== undefined) {
      await page.selectOption(op.select, op.value);
    } else if (op.submit !== undefined) {
      await submitWith(op.submit);
      await reached(op.shot ?? 'submitted');
    } else if (op.copy !== undefined) {
      await page.click(op.copy);
      read[op.as] = await page.evaluate(() => navigator.clipboard.readText());
      read[`${op.as}_button`] = (await page.locator(op.copy).textContent())?.trim() ?? null;
    } else if (op.text !== undefined) {
      read[op.as] = (await page.locator(op.text).first().textContent())?.trim() ?? null;
    } else if (op.texts !== undefined) {
      read[op.as] = (await page.locator(op.texts).allTextContents()).map((t) => t.trim());
    } else {
      throw new StepError(`unknown console op ${JSON.stringify(op)}`);
    }
  }
  return { pages, read, final_url: page.url() };
}

async function framedStep(step) {
  await page.goto(step.url, { waitUntil: 'load' });
  const deadline = Date.now() + (step.frame_timeout_ms ?? 5000);
  let frame = null;
  while (Date.now() < deadline) {
    frame = page.frames().find((f) => f !== page.mainFrame());
    // A refused frame ends on Chromium's error page; an allowed one on the login page.
    if (frame && frame.url() !== '' && frame.url() !== 'about:blank') break;
    await page.waitForTimeout(100);
  }
  // Give a frame that did load a moment to render its form.
  await page.waitForTimeout(500);
  await screenshot('framed');
  let frameHasPassword = null;
  let frameError = null;
  if (frame) {
    try {
      frameHasPassword = (await frame.locator('input[name="password"]').count()) > 0;
    } catch (e) {
      frameError = String(e);
    }
  }
  return {
    frame_found: frame !== null,
    frame_url: frame ? frame.url() : null,
    frame_has_password_input: frameHasPassword,
    frame_error: frameError,
  };
}

async function main() {
  browser = await chromium.launch({
    executablePath: plan.chromium ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', ...(plan.extra_args ?? [])],
    timeout: 20000,
  });
  const context = await browser.newContext(plan.context ?? {});
  context.setDefaultTimeout(10000);
  if (plan.clipboard) {
    const origins = new Set(plan.steps.map((st) => new URL(st.url).origin));
    for (const origin of origins) {
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
    }
  }
  page = await context.newPage();
  watch(page);
  if (plan.disable_conditional_ui) {
    await page.addInitScript(() => {
      if (window.PublicKeyCredential) {
        Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', { value: undefined });
      }
    });
  }
  let authenticator = null;
  if (plan.virtual_authenticator) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    authenticator = { cdp, authenticatorId };
  }
  const results = [];
  for (const step of plan.steps) {
    current = step.name;
    navigations = [];
    consoleMessages = [];
    let r;
    if (step.action === 'authorize') r = await authorizeStep(step);
    else if (step.action === 'framed') r = await framedStep(step);
    else if (step.action === 'device') r = await deviceStep(step);
    else if (step.action === 'account') r = await accountStep(step);
    else if (step.action === 'invite') r = await inviteStep(step);
    else if (step.action === 'conditional') r = await conditionalStep(step);
    else if (step.action === 'console') r = await consoleStep(step);
    else throw new StepError(`unknown action ${step.action}`);
    results.push({
      name: step.name,
      ...r,
      navigations: await settle(navigations),
      console: consoleMessages,
      cookies: await context.cookies(),
    });
  }
  current = null;
  let credentials = null;
  if (authenticator) {
    const c = await authenticator.cdp.send('WebAuthn.getCredentials', {
      authenticatorId: authenticator.authenticatorId,
    });
    credentials = c.credentials.map((x) => ({
      id: x.credentialId, rp_id: x.rpId, resident: x.isResidentCredential, sign_count: x.signCount,
    }));
  }
  return { ok: true, version: browser.version(), steps: results, credentials };
}

let code = 0;
try {
  const out = await main();
  console.log(JSON.stringify(out));
} catch (e) {
  code = 1;
  const failure = {
    ok: false,
    error: String(e && e.stack ? e.stack : e),
    step: current,
    timed_out: timedOut,
    url: page ? page.url() : null,
    content: page ? await snippet() : null,
    console: consoleMessages,
  };
  await screenshot('failure');
  console.log(JSON.stringify(failure));
  console.error(`login.mjs failed in step ${current} at ${failure.url}: ${e}\npage: ${failure.content}`);
} finally {
  await closeBrowser();
  clearTimeout(hardTimeout);
}
process.exit(timedOut ? 3 : code);
