//! The console's audit log: filter by event (or event prefix), actor, client and time, newest
//! first, paged by entry id (keyset: no OFFSET, so a page costs the same at any depth).
//! Through `protocol::admin::read_audit`, like `GET /admin/v1/audit`.

use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;

use super::{State, admin_user, failed, query, render, value};
use crate::protocol::admin::{self, AuditParams};
use crate::protocol::error::OAuthError;
use crate::text::parse_utc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console/audit", web::get().to(audit));
}

const PAGE: i64 = 50;

async fn audit(req: HttpRequest, state: State) -> HttpResponse {
    let signed = match admin_user(&req, &state).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = query(&req);
    let text = |k: &str| {
        q.get(k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let time = |k: &str| -> Result<Option<i64>, OAuthError> {
        match text(k) {
            None => Ok(None),
            Some(v) => parse_utc(&v).map(Some).ok_or_else(|| {
                OAuthError::invalid_request(format!("{k}: a UTC time like 2026-12-07T20:30"))
            }),
        }
    };
    let before = match text("before").map(|b| b.parse::<i64>()) {
        None => None,
        Some(Ok(b)) => Some(b),
        Some(Err(_)) => {
            return failed(
                &state,
                &OAuthError::invalid_request("before must be an entry id"),
            );
        }
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return failed(&state, &e),
    };
    let p = AuditParams {
        event: text("event"),
        actor: text("actor"),
        client: text("client"),
        since,
        until,
        before,
        limit: Some(PAGE),
        after: None,
    };
    let page = match admin::read_audit(&state.ctx, p).await {
        Ok(p) => p,
        Err(e) => return failed(&state, &e),
    };
    let mut events = page["events"].as_array().cloned().unwrap_or_default();
    events.reverse();
    // A full page may have older entries behind it: link to them by the oldest id shown.
    let older = (events.len() as i64 == PAGE)
        .then(|| events.last().and_then(|e| e["id"].as_i64()))
        .flatten();
    let mut keep = form_urlencoded::Serializer::new(String::new());
    for k in ["event", "actor", "client", "since", "until"] {
        if let Some(v) = text(k) {
            keep.append_pair(k, &v);
        }
    }
    render(
        &req,
        &state,
        &signed,
        "console_audit.html",
        "audit",
        context! {
            events => value(&events),
            older,
            filters => keep.finish(),
            event => text("event"),
            actor => text("actor"),
            client => text("client"),
            since => text("since"),
            until => text("until"),
            paged => before.is_some(),
        },
    )
}
