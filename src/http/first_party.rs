//! The server's own pages that sign in like any app — `/account` (issue 20) and `/console`
//! (issue 21): an authorization request of a built-in client (code + PKCE S256, `state`) to
//! `/authorize`, the callback that checks `state` against the flow cookie and redeems the code
//! at the same token exchange apps use, and the access token kept in an HttpOnly cookie scoped
//! to the pages' path, checked like at userinfo on every request.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use super::pages::error_page;
use super::{AppState, unix_now};
use crate::model::User;
use crate::protocol::params::Params;
use crate::protocol::{dpop, introspect};
use crate::secret;

/// How long a sign-in may take (the flow cookie's life).
const FLOW_TTL: i64 = 600;

/// One of the server's own first-party page sets.
pub(super) struct FirstParty {
    pub client_id: &'static str,
    pub callback: &'static str,
    /// The pages' path: their cookies are scoped to it, and the callback lands there.
    pub path: &'static str,
    /// The token cookie and the flow cookie, plain and `__Host-` (https).
    pub names: [&'static str; 4],
}

pub(super) const ACCOUNT: FirstParty = FirstParty {
    client_id: crate::protocol::account::CLIENT_ID,
    callback: crate::protocol::account::CALLBACK_PATH,
    path: "/account",
    names: [
        "lk_account",
        "lk_account_flow",
        "__Host-lk_account",
        "__Host-lk_account_flow",
    ],
};

pub(super) const CONSOLE: FirstParty = FirstParty {
    client_id: crate::protocol::console::CLIENT_ID,
    callback: crate::protocol::console::CALLBACK_PATH,
    path: "/console",
    names: [
        "lk_console",
        "lk_console_flow",
        "__Host-lk_console",
        "__Host-lk_console_flow",
    ],
};

/// The pages' own access token: revoked when the user signs out there (it belongs to no
/// refresh family).
pub(super) struct PageToken {
    pub jti: String,
    pub exp: i64,
}

pub(super) fn redirect(to: &str, cookies: Vec<Cookie<'static>>) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    super::pages::secure_headers(&mut b);
    b.insert_header((header::LOCATION, to.to_owned()));
    for c in cookies {
        b.cookie(c);
    }
    b.finish()
}

impl FirstParty {
    fn names(&self, state: &AppState) -> (&'static str, &'static str) {
        if state.browser.secure() {
            (self.names[2], self.names[3])
        } else {
            (self.names[0], self.names[1])
        }
    }

    /// A cookie of these pages. `Path=/`: a `__Host-` cookie (https) must have it, and the
    /// names already keep the page sets apart (a path is no boundary within one origin).
    fn scoped(
        &self,
        state: &AppState,
        name: &'static str,
        value: String,
        age: i64,
    ) -> Cookie<'static> {
        state.browser.cookie(name, value, Some(age))
    }

    /// The signed-in user and the page token, from the token cookie (checked like at
    /// userinfo: signature, expiry, revocation, the user enabled).
    pub async fn signed_in(
        &self,
        req: &HttpRequest,
        state: &AppState,
    ) -> Option<(User, PageToken)> {
        let (name, _) = self.names(state);
        let token = req.cookie(name)?.value().to_owned();
        let (claims, user) = introspect::authenticate_resource(
            &state.ctx,
            introspect::Presented::Bearer(&token),
            None,
            unix_now(),
            |_| true,
        )
        .await
        .ok()?;
        if claims.client_id != self.client_id {
            return None;
        }
        let user = user.filter(|u| !u.disabled && u.user_id == claims.sub)?;
        Some((
            user,
            PageToken {
                jti: claims.jti,
                exp: claims.exp,
            },
        ))
    }

    /// Ends the pages' own access: the token revoked, its cookie and the browser session
    /// cookie removed.
    pub async fn end_page(&self, state: &AppState, token: PageToken) -> Vec<Cookie<'static>> {
        vec![
            self.forget(state, token).await,
            state.browser.session_removal(),
        ]
    }

    /// Revokes the pages' token; the removal of its cookie. The browser session stays.
    pub async fn forget(&self, state: &AppState, token: PageToken) -> Cookie<'static> {
        let revoked = state
            .ctx
            .store
            .blocking(move |s| s.revoke_access_token(&token.jti, token.exp))
            .await;
        if let Err(e) = revoked {
            tracing::error!(error = %e, client_id = self.client_id, "cannot revoke the page's access token");
        }
        let (name, _) = self.names(state);
        let mut gone = self.scoped(state, name, String::new(), 0);
        gone.make_removal();
        gone
    }

    /// Starts the sign-in: an authorization request of the built-in client.
    pub fn start_sign_in(&self, state: &AppState) -> HttpResponse {
        self.start_sign_in_to(state, None, false)
    }

    /// Starts the sign-in, coming back to `return_to` (a page of this set, else the home
    /// page); with `fresh`, the user must prove themselves again (`prompt=login`) even with a
    /// live browser session.
    pub fn start_sign_in_to(
        &self,
        state: &AppState,
        return_to: Option<&str>,
        fresh: bool,
    ) -> HttpResponse {
        let issuer = &state.ctx.config.issuer;
        let flow_state = secret::random_token(16);
        let verifier = secret::new_secret();
        let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", self.client_id)
            .append_pair("redirect_uri", &format!("{issuer}{}", self.callback))
            .append_pair("scope", "openid")
            .append_pair("state", &flow_state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if fresh {
            q.append_pair("prompt", "login");
        }
        let back = return_to
            .filter(|p| self.is_own_page(p))
            .map(|p| URL_SAFE_NO_PAD.encode(p))
            .unwrap_or_default();
        let (_, flow) = self.names(state);
        let cookie = self.scoped(
            state,
            flow,
            format!("{flow_state}.{verifier}.{back}"),
            FLOW_TTL,
        );
        redirect(&format!("/authorize?{}", q.finish()), vec![cookie])
    }

    /// A path and query of these pages (never another site: no scheme, no `//`, no `\\`).
    fn is_own_page(&self, p: &str) -> bool {
        p.len() <= 512
            && (p == self.path
                || p.starts_with(&format!("{}/", self.path))
                || p.starts_with(&format!("{}?", self.path)))
            && !p.contains("//")
            && !p.contains('\\')
            && p.bytes().all(|b| b.is_ascii_graphic())
    }

    /// The callback: `state` checked against the flow cookie, the code redeemed, the token
    /// kept in the token cookie; then to the pages' home.
    pub async fn callback(&self, req: &HttpRequest, state: &AppState) -> HttpResponse {
        let query = Params::parse(req.query_string().as_bytes()).unwrap_or_default();
        let (token_name, flow_name) = self.names(state);
        let flow = req.cookie(flow_name).map(|c| c.value().to_owned());
        let refused = |d: &str| {
            error_page(
                &state.templates,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                d,
            )
        };
        let mut parts = flow.as_deref().unwrap_or("").splitn(3, '.');
        let (Some(flow_state), Some(verifier)) = (parts.next(), parts.next()) else {
            return refused(
                "This sign-in was not started here, or took too long. Open the page again.",
            );
        };
        let state_ok = query
            .get("state")
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(flow_state.as_bytes())));
        if !state_ok {
            return refused("This sign-in was not started here. Open the page again.");
        }
        if query.get("error").is_some() {
            return refused("Sign-in was cancelled.");
        }
        let Some(code) = query.get("code") else {
            return refused("The sign-in did not finish. Open the page again.");
        };
        let issuer = &state.ctx.config.issuer;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &format!("{issuer}{}", self.callback))
            .append_pair("client_id", self.client_id)
            .append_pair("code_verifier", verifier);
        let params = match Params::parse(form.finish().as_bytes()) {
            Ok(p) => p,
            Err(_) => return refused("The sign-in did not finish. Open the page again."),
        };
        let seen = super::client_ip::seen(req);
        let tokens = match crate::protocol::token::exchange(
            &state.ctx,
            Default::default(),
            dpop::Header::Absent,
            params,
            &seen,
            unix_now(),
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(error = %e.code.as_str(), client_id = self.client_id, "page sign-in: code refused");
                return refused("The sign-in did not finish. Open the page again.");
            }
        };
        let keep = self.scoped(
            state,
            token_name,
            tokens.access_token,
            tokens.expires_in as i64,
        );
        let mut gone = self.scoped(state, flow_name, String::new(), 0);
        gone.make_removal();
        let back = parts
            .next()
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|p| self.is_own_page(p));
        redirect(back.as_deref().unwrap_or(self.path), vec![keep, gone])
    }
}

#[cfg(test)]
mod tests {
    use super::CONSOLE;

    /// The page a sign-in comes back to is one of these pages, never another site.
    #[test]
    fn only_own_pages_are_returned_to() {
        for ok in [
            "/console",
            "/console/users?q=a",
            "/console?x=1",
            "/console/apps/c1/edit",
        ] {
            assert!(CONSOLE.is_own_page(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "//evil.example/console",
            "https://evil.example/console",
            "/console//evil.example",
            "/console/\\evil.example",
            "/consoleevil",
            "/account",
            "/console/a b",
            "/console/\u{7f}",
        ] {
            assert!(!CONSOLE.is_own_page(bad), "{bad:?}");
        }
        assert!(
            !CONSOLE.is_own_page(&format!("/console/{}", "a".repeat(600))),
            "too long"
        );
    }
}
