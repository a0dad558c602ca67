//! `POST /par`: pushed authorization requests (RFC 9126). The rules are in `protocol::par`; the
//! request and answer are the token endpoint's (`token.rs`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::token::{answer, client_post};
use super::{AppState, unix_now};
use crate::protocol::par;

pub async fn push(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let now = unix_now();
    let result = async {
        let p = client_post(&req, body).await?;
        par::push(&state.ctx, p.credentials.get(), p.proof, p.params, now).await
    }
    .await;
    // RFC 9126 §2.2: 201 Created.
    answer(&state, StatusCode::CREATED, result, now)
}
