// Latchkey passkeys (WebAuthn). Served from /assets/passkey.js; the pages carry no inline
// script (Content-Security-Policy: script-src 'self').
//
// Sign-in (login page): <form id="passkey-sign-in" data-options="{publicKey: ...}"> with hidden
// `credential`. On load, conditional mediation offers passkeys in the username field's autofill;
// the button asks with the browser's own prompt. The answer goes into `credential` (WebAuthn
// JSON) and the form is posted: the server checks everything.
//
// Registration (account and invitation pages): <form class="passkey-register"
// data-options="{publicKey: ...}"> with hidden `credential`; its submit button creates the
// passkey first.
(function () {
  'use strict';

  function b64urlToBytes(s) {
    const pad = '='.repeat((4 - (s.length % 4)) % 4);
    const bin = atob((s + pad).replace(/-/g, '+').replace(/_/g, '/'));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function bytesToB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  // WebAuthn L3 JSON helpers where the browser has them, a small fallback where not.
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const o = Object.assign({}, json);
    o.challenge = b64urlToBytes(json.challenge);
    o.user = Object.assign({}, json.user, { id: b64urlToBytes(json.user.id) });
    o.excludeCredentials = (json.excludeCredentials || []).map((c) =>
      Object.assign({}, c, { id: b64urlToBytes(c.id) }));
    return o;
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const o = Object.assign({}, json);
    o.challenge = b64urlToBytes(json.challenge);
    o.allowCredentials = (json.allowCredentials || []).map((c) =>
      Object.assign({}, c, { id: b64urlToBytes(c.id) }));
    return o;
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === 'function') return cred.toJSON();
    const r = cred.response;
    const response = { clientDataJSON: bytesToB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = bytesToB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = bytesToB64url(r.authenticatorData);
      response.signature = bytesToB64url(r.signature);
      if (r.userHandle) response.userHandle = bytesToB64url(r.userHandle);
    }
    return {
      id: cred.id,
      rawId: bytesToB64url(cred.rawId),
      type: cred.type,
      response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }

  function showError(form, message) {
    const p = form.querySelector('.passkey-error, #passkey-error');
    if (p) {
      p.textContent = message;
      p.hidden = false;
    }
  }

  function supported() {
    return typeof window.PublicKeyCredential === 'function' && navigator.credentials;
  }

  // ---- sign-in -------------------------------------------------------------------------
  const signIn = document.getElementById('passkey-sign-in');
  if (signIn) {
    const options = JSON.parse(signIn.dataset.options);
    let pending = null; // the conditional request, aborted before a modal one

    const answer = (cred) => {
      signIn.elements.credential.value = JSON.stringify(credentialJSON(cred));
      signIn.submit();
    };

    const ask = async (mediation) => {
      const controller = new AbortController();
      if (mediation === 'conditional') pending = controller;
      const cred = await navigator.credentials.get({
        publicKey: requestOptions(options.publicKey),
        mediation,
        signal: controller.signal,
      });
      if (cred) answer(cred);
    };

    if (!supported()) {
      signIn.hidden = true;
    } else {
      const button = document.getElementById('passkey-button');
      button.addEventListener('click', async () => {
        if (pending) {
          pending.abort();
          pending = null;
        }
        try {
          await ask('optional');
        } catch (e) {
          if (e.name !== 'AbortError') {
            showError(signIn, 'No passkey was used. Try again, or sign in with your password.');
          }
        }
      });
      if (PublicKeyCredential.isConditionalMediationAvailable) {
        PublicKeyCredential.isConditionalMediationAvailable().then((yes) => {
          if (yes) ask('conditional').catch(() => {});
        });
      }
    }
  }

  // ---- registration ----------------------------------------------------------------------
  for (const form of document.querySelectorAll('form.passkey-register')) {
    if (!supported()) {
      showError(form, 'This browser cannot create passkeys.');
      continue;
    }
    form.addEventListener('submit', async (ev) => {
      if (form.elements.credential.value) return; // created: post it
      ev.preventDefault();
      const options = JSON.parse(form.dataset.options);
      try {
        const cred = await navigator.credentials.create({
          publicKey: creationOptions(options.publicKey),
        });
        form.elements.credential.value = JSON.stringify(credentialJSON(cred));
        form.submit();
      } catch (e) {
        showError(form, 'No passkey was created (' + e.name + '). Try again.');
      }
    });
  }
})();
