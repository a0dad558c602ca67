//! `GET|POST /userinfo`, `POST /introspect`, `POST /revoke`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::client_cert::ClientCredentials;
use super::{AppState, error, read_form_body, unix_now};
use crate::protocol::discovery::USERINFO_PATH;
use crate::protocol::dpop;
use crate::protocol::introspect::{self, Presented};
use crate::protocol::params::Params;

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    b
}

pub async fn introspect(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let r = async {
        let params = Params::parse(&read_form_body(&req, body).await?)?;
        let credentials = ClientCredentials::of(&req);
        introspect::introspect(&state.ctx, credentials.get(), params, now).await
    }
    .await;
    match r {
        Ok(v) => no_store(HttpResponse::Ok()).json(v),
        Err(e) => error::respond(e),
    }
}

pub async fn revoke(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let r = async {
        let params = Params::parse(&read_form_body(&req, body).await?)?;
        let credentials = ClientCredentials::of(&req);
        introspect::revoke(&state.ctx, credentials.get(), params, now).await
    }
    .await;
    match r {
        Ok(()) => no_store(HttpResponse::Ok()).finish(),
        Err(e) => error::respond(e),
    }
}

/// The access token from `Authorization: Bearer …` or `Authorization: DPoP …` (RFC 6750 §2.1,
/// RFC 9449 §7.1) and whether the scheme was DPoP; the query form is not accepted.
fn access_token(req: &HttpRequest) -> Option<(bool, String)> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim().to_owned();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((false, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((true, token))
    } else {
        None
    }
}

pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = unix_now();
    let Some((dpop_scheme, token)) = access_token(&req) else {
        // RFC 6750 §3.1, RFC 9449 §7.2: no credentials → 401 with bare challenges, one per
        // scheme accepted.
        let mut r = no_store(HttpResponse::Unauthorized());
        r.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="latchkey""#),
        ));
        if let Ok(v) = HeaderValue::from_str(&format!(
            r#"DPoP realm="latchkey", algs="{}""#,
            dpop::ALGS.join(" ")
        )) {
            r.append_header((header::WWW_AUTHENTICATE, v));
        }
        return r.finish();
    };
    let htu = format!("{}{USERINFO_PATH}", state.ctx.config.issuer);
    let alias = state
        .ctx
        .config
        .mtls_base()
        .map(|b| format!("{b}{USERINFO_PATH}"));
    let presented = if dpop_scheme {
        Presented::Dpop {
            token: &token,
            proof: dpop::Header::from_values(
                req.headers()
                    .get_all(super::token::DPOP)
                    .map(HeaderValue::as_bytes),
            ),
            method: req.method().as_str(),
            htu: &htu,
            htu_alias: alias.as_deref(),
        }
    } else {
        Presented::Bearer(&token)
    };
    let nonce = dpop::current_nonce(&state.ctx, now);
    let certificate = super::client_cert::client_certificate(&req);
    match introspect::userinfo(&state.ctx, presented, certificate.as_deref(), now).await {
        Ok(v) => {
            let mut r = no_store(HttpResponse::Ok());
            if dpop_scheme && let Some(n) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
                r.insert_header((error::DPOP_NONCE, n));
            }
            r.json(v)
        }
        Err(e) => error::respond_with_nonce(e, nonce.filter(|_| dpop_scheme)),
    }
}
