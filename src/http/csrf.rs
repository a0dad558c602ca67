//! Browser state: the session cookie and the CSRF token of the login, consent and sign-out
//! forms (issue 18 finding 8).
//!
//! A form's CSRF token is an HMAC, under a key derived from the KEK (the same on every
//! replica), of what this browser holds: its session cookie once signed in, else a random
//! pre-session cookie. A value an attacker plants in a cookie is worth nothing without the
//! matching HMAC, a token from one browser is worthless in another, and signing in changes
//! the token (the pre-session cookie is replaced as well). On an https issuer the cookies are
//! `__Host-` prefixed: Secure, `Path=/`, no `Domain`, so a sibling subdomain cannot set them.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::Kek;
use crate::secret;

const MAC_PURPOSE: &[u8] = b"latchkey csrf v1";

pub struct BrowserState {
    secure: bool,
    pub session_name: &'static str,
    csrf_name: &'static str,
    key: hmac::Key,
}

impl BrowserState {
    pub fn new(kek: &Kek, secure: bool) -> anyhow::Result<BrowserState> {
        let key = kek
            .mac_key(MAC_PURPOSE)
            .ok_or_else(|| anyhow::anyhow!("cannot derive the CSRF key"))?;
        let (session_name, csrf_name) = if secure {
            ("__Host-lk_session", "__Host-lk_csrf")
        } else {
            ("lk_session", "lk_csrf")
        };
        Ok(BrowserState {
            secure,
            session_name,
            csrf_name,
            key,
        })
    }

    /// An HttpOnly, SameSite=Lax cookie for the whole host; Secure on https.
    pub fn cookie(
        &self,
        name: &'static str,
        value: String,
        max_age: Option<i64>,
    ) -> Cookie<'static> {
        let mut c = Cookie::build(name, value)
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .path("/")
            .finish();
        if let Some(a) = max_age {
            c.set_max_age(actix_web::cookie::time::Duration::seconds(a));
        }
        c
    }

    /// Whether cookies are Secure with `__Host-` names (an https issuer).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The session cookie's value.
    pub fn session(&self, req: &HttpRequest) -> Option<String> {
        req.cookie(self.session_name).map(|c| c.value().to_owned())
    }

    /// The session cookie set to `value`.
    pub fn session_cookie(&self, value: String, max_age: i64) -> Cookie<'static> {
        self.cookie(self.session_name, value, Some(max_age))
    }

    /// The session cookie's removal.
    pub fn session_removal(&self) -> Cookie<'static> {
        let mut gone = self.cookie(self.session_name, String::new(), Some(0));
        gone.make_removal();
        gone
    }

    /// A new pre-session cookie (set at sign-in, so the token before it is not the one after).
    pub fn fresh_pre_session(&self) -> Cookie<'static> {
        self.cookie(self.csrf_name, secret::new_secret(), None)
    }

    fn mac(&self, bound_to: &Bound) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &bound_to.message()).as_ref())
    }

    fn bound(&self, req: &HttpRequest) -> Option<Bound> {
        if let Some(s) = self.session(req) {
            return Some(Bound::Session(s));
        }
        req.cookie(self.csrf_name)
            .map(|c| c.value().to_owned())
            .filter(|v| v.len() == 43)
            .map(Bound::PreSession)
    }

    /// The CSRF token for a form shown to this browser (bound to `fresh_session` when this
    /// response sets that session cookie), and the pre-session cookie to set when it has
    /// neither a session nor a pre-session.
    pub fn csrf_token(
        &self,
        req: &HttpRequest,
        fresh_session: Option<&str>,
    ) -> (String, Option<Cookie<'static>>) {
        let bound = match fresh_session {
            Some(s) => Some(Bound::Session(s.to_owned())),
            None => self.bound(req),
        };
        match bound {
            Some(b) => (self.mac(&b), None),
            None => {
                let c = self.fresh_pre_session();
                let token = self.mac(&Bound::PreSession(c.value().to_owned()));
                (token, Some(c))
            }
        }
    }

    /// Whether `presented` is this browser's token (constant time).
    pub fn csrf_ok(&self, req: &HttpRequest, presented: Option<&str>) -> bool {
        let (Some(b), Some(p)) = (self.bound(req), presented) else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(p) else {
            return false;
        };
        hmac::verify(&self.key, &b.message(), &tag).is_ok()
    }
}

impl BrowserState {
    /// A MAC of `value` for `label` under this server's browser key (the same on every
    /// replica): a value this server wrote into a cookie, which a browser cannot forge.
    pub fn stamp(&self, label: &str, value: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &stamp_message(label, value)).as_ref())
    }

    /// Whether `tag` is [`BrowserState::stamp`] of `value` for `label` (constant time).
    pub fn stamp_ok(&self, label: &str, value: &str, tag: &str) -> bool {
        let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        hmac::verify(&self.key, &stamp_message(label, value), &tag).is_ok()
    }
}

fn stamp_message(label: &str, value: &str) -> Vec<u8> {
    [
        b"stamp\0".as_slice(),
        label.as_bytes(),
        b"\0".as_slice(),
        value.as_bytes(),
    ]
    .concat()
}

/// What a token is bound to.
enum Bound {
    Session(String),
    PreSession(String),
}

impl Bound {
    fn message(&self) -> Vec<u8> {
        match self {
            Bound::Session(v) => [b"session\0".as_slice(), v.as_bytes()].concat(),
            Bound::PreSession(v) => [b"pre\0".as_slice(), v.as_bytes()].concat(),
        }
    }
}
