//! `POST /attest/challenge` and `POST /attest` (issue 23). The rules are in
//! `protocol::attestation`; answers are JSON with `no-store`, like the token endpoint's.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::token::answer;
use super::{AppState, unix_now};
use crate::protocol::Ctx;
use crate::protocol::attestation::{attest, challenge};
use crate::protocol::error::OAuthError;

const CHALLENGE_HEADER: HeaderName = HeaderName::from_static(challenge::HEADER);

/// Adds `OAuth-Client-Attestation-Challenge` with a fresh challenge.
pub(super) fn attach_challenge(ctx: &Ctx, resp: &mut HttpResponse, now: i64) {
    if let Some(v) = challenge::new(ctx, now)
        .ok()
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        resp.headers_mut().insert(CHALLENGE_HEADER, v);
    }
}

/// The draft's challenge endpoint: `{"attestation_challenge": ...}` and the same value in
/// `OAuth-Client-Attestation-Challenge`.
pub async fn challenge_endpoint(state: web::Data<AppState>) -> HttpResponse {
    let now = unix_now();
    let result = challenge::new(&state.ctx, now).map(|c| json!({ "attestation_challenge": c }));
    let mut resp = answer(&state, StatusCode::OK, result, now);
    if resp.status().is_success() {
        attach_challenge(&state.ctx, &mut resp, now);
    }
    resp
}

pub async fn attest_endpoint(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let result = async {
        let value = super::admin::read_json(&req, body).await?;
        let request: attest::AttestRequest = serde_json::from_value(value).map_err(|e| {
            OAuthError::invalid_request(format!(
                "the attestation request is malformed: {}",
                crate::protocol::registration::serde_message(&e)
            ))
        })?;
        attest::attest(&state.ctx, request, now).await
    }
    .await;
    if let Err(e) = &result {
        tracing::info!(
            error = e.code.as_str(),
            description = %e.description,
            "attestation refused"
        );
    }
    let mut resp = answer(&state, StatusCode::OK, result, now);
    if resp.status().is_success() {
        attach_challenge(&state.ctx, &mut resp, now);
    }
    resp
}
