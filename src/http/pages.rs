//! Server-rendered HTML (minijinja templates compiled into the binary, auto-escaped) with the
//! security headers every page carries: no framing, no third-party anything, no caching.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use minijinja::Environment;

pub fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_filter("ago", crate::text::ago);
    env.add_filter("utc", crate::text::utc);
    for (name, src) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("login.html", include_str!("../../templates/login.html")),
        ("otp.html", include_str!("../../templates/otp.html")),
        (
            "console_base.html",
            include_str!("../../templates/console_base.html"),
        ),
        (
            "console_apps.html",
            include_str!("../../templates/console_apps.html"),
        ),
        (
            "console_new.html",
            include_str!("../../templates/console_new.html"),
        ),
        (
            "console_app.html",
            include_str!("../../templates/console_app.html"),
        ),
        (
            "console_overview.html",
            include_str!("../../templates/console_overview.html"),
        ),
        (
            "console_app_edit.html",
            include_str!("../../templates/console_app_edit.html"),
        ),
        (
            "console_users.html",
            include_str!("../../templates/console_users.html"),
        ),
        (
            "console_user_new.html",
            include_str!("../../templates/console_user_new.html"),
        ),
        (
            "console_user.html",
            include_str!("../../templates/console_user.html"),
        ),
        (
            "console_keys.html",
            include_str!("../../templates/console_keys.html"),
        ),
        (
            "console_registration_tokens.html",
            include_str!("../../templates/console_registration_tokens.html"),
        ),
        (
            "console_audit.html",
            include_str!("../../templates/console_audit.html"),
        ),
        ("invite.html", include_str!("../../templates/invite.html")),
        (
            "totp_enrol.html",
            include_str!("../../templates/totp_enrol.html"),
        ),
        ("consent.html", include_str!("../../templates/consent.html")),
        (
            "continue.html",
            include_str!("../../templates/continue.html"),
        ),
        ("device.html", include_str!("../../templates/device.html")),
        (
            "device_confirm.html",
            include_str!("../../templates/device_confirm.html"),
        ),
        (
            "device_done.html",
            include_str!("../../templates/device_done.html"),
        ),
        ("error.html", include_str!("../../templates/error.html")),
        ("account.html", include_str!("../../templates/account.html")),
        (
            "logout_confirm.html",
            include_str!("../../templates/logout_confirm.html"),
        ),
        (
            "logged_out.html",
            include_str!("../../templates/logged_out.html"),
        ),
    ] {
        if let Err(e) = env.add_template(name, src) {
            // Templates are compiled in; a syntax error is caught by the test suite.
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    env
}

/// Scripts only from this origin (the passkey script), never inline. (No `form-action`: the
/// sign-in forms end in a redirect to the app, which it would block.)
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'";

pub fn secure_headers(resp: &mut actix_web::HttpResponseBuilder) {
    resp.insert_header((
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    ))
    .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
    .insert_header((
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .insert_header((
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ))
    .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
}

/// Renders `name` with `ctx` into a response; a rendering failure becomes a plain 500 page
/// (a bug in our templates, never caused by input: values are escaped, not interpreted).
pub fn page(
    env: &Environment<'static>,
    status: StatusCode,
    name: &str,
    ctx: minijinja::Value,
    cookies: Vec<actix_web::cookie::Cookie<'static>>,
) -> HttpResponse {
    let body = env.get_template(name).and_then(|t| t.render(&ctx));
    let mut b = HttpResponse::build(status);
    secure_headers(&mut b);
    b.insert_header((
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    ));
    for c in cookies {
        b.cookie(c);
    }
    match body {
        Ok(html) => b.body(html),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template rendering failed");
            let mut b = HttpResponse::InternalServerError();
            secure_headers(&mut b);
            b.body("internal error")
        }
    }
}

pub fn error_page(
    env: &Environment<'static>,
    status: StatusCode,
    error: &str,
    description: &str,
) -> HttpResponse {
    page(
        env,
        status,
        "error.html",
        minijinja::context! { error, description },
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use minijinja::context;
    use serde_json::json;

    /// The user page with every optional part present renders (a template error would be a
    /// 500 at run time).
    #[test]
    fn the_console_user_page_renders() {
        let env = super::templates();
        let v = |j: serde_json::Value| minijinja::Value::from(minijinja::value::Serde(j));
        let out = env.get_template("console_user.html").and_then(|t| {
            t.render(context! {
                admin => "root", csrf => "t", section => "users", now => 100,
                user => v(json!({"sub": "u1", "username": "bob", "email": null, "name": null, "admin": false, "disabled": false, "created_at": 1})),
                factors => v(json!({"passkeys": [{"credential_id": "c", "name": "phone", "created_at": 1, "last_used_at": null}], "totp": {"enrolled_at": 5}, "recovery_codes_left": 3})),
                signins => v(json!({"apps": [{"family_id": "f", "client_id": "c", "client_name": "App", "signed_in_at": 1, "last_used_at": 2, "expires_at": 3, "sid": "s", "dpop_bound": true, "last_ip": null, "user_agent": null}], "sessions": [{"sid": "s", "signed_in_at": 1, "created_at": 1, "expires_at": 9, "ip": null, "user_agent": "UA"}]})),
                notice => "n", invitation => v(json!({"url": "http://x/invite/t", "expires_at": 7})), is_self => false,
            })
        });
        let html = out.unwrap_or_else(|e| panic!("{e:#}"));
        assert!(html.contains("phone") && html.contains("invite"), "{html}");
    }
}
