//! Scale-out: two `latchkey serve` processes on one PostgreSQL database behave as one server,
//! survive `kill -9` of a replica without losing an acknowledged rotation, and ride out the
//! database going away. Needs `LATCHKEY_TEST_POSTGRES_URL` (skips with a message otherwise).

use std::time::Duration;

use latchkey::config::Config;
use reqwest::StatusCode;
use serde_json::Value;

use crate::browser::{
    Browser, authorize_path, exchange, location_params, obtain_code, pkce, refresh, setup,
};
use crate::helpers::{API, TestApp, verify_offline};
use crate::pg::{PgDb, Proxy};

/// Two replicas on a fresh database, sharing the issuer and the key-encryption key (and
/// nothing else: separate processes, directories and ports). Servers first, so they are
/// killed before the database is dropped.
async fn replicas(test: &str, configure: impl Fn(&mut Config)) -> Option<(TestApp, TestApp, PgDb)> {
    let pg = PgDb::create(test)?;
    let kek = latchkey::secret::random_token(32);
    let env = [("LATCHKEY_KEY_ENCRYPTION_KEY", kek.as_str())];
    let a = TestApp::spawn_process(
        |c| {
            c.database_url = pg.url.clone();
            configure(c);
        },
        &env,
    )
    .await;
    let issuer = a.issuer.clone();
    let b = TestApp::spawn_process(
        |c| {
            c.database_url = pg.url.clone();
            c.issuer = issuer;
            configure(c);
        },
        &env,
    )
    .await;
    Some((a, b, pg))
}

async fn jwks(app: &TestApp) -> Value {
    let r = app.get("/jwks").await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()
}

#[actix_web::test]
async fn any_replica_answers_any_request() {
    let Some((a, b, _pg)) = replicas("any_replica_answers_any_request", |_| {}).await else {
        return;
    };
    // One key set, published identically.
    assert_eq!(jwks(&a).await, jwks(&b).await);

    // A client created by the CLI is usable at once on both.
    let svc = a.add_service_client().await;
    for app in [&a, &b] {
        let r = app
            .post_token(&[("grant_type", "client_credentials")], svc.basic())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        // ...and what one replica signs, the other's JWKS verifies.
        let other = if std::ptr::eq(app, &a) { &b } else { &a };
        verify_offline(
            r.json()["access_token"].as_str().expect("token"),
            &jwks(other).await,
            &a.issuer,
            API,
        )
        .expect("verifies against the other replica's JWKS");
    }

    // A code issued by A is redeemed at B.
    let m = setup(&a, true).await;
    let mut browser = Browser::new(&a);
    let (verifier, challenge) = pkce();
    let code = obtain_code(&a, &mut browser, &m, &challenge).await;
    let r = exchange(&b, &m.client.client_id, &code, &verifier).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let tokens = r.json();
    let r = a
        .http
        .get(a.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("access token"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(r.status(), StatusCode::OK);

    // The login session made at A works at B: no password asked again, only the one-press
    // "Continue as alice" this public app always gets (RFC 8252 §8.6), answered at B too.
    browser.switch_to(&b);
    let (verifier2, challenge2) = pkce();
    let r = browser
        .get(&authorize_path(&m.client.client_id, &challenge2, &[]))
        .await;
    assert!(
        crate::browser::is_confirmation(&r, &m.username),
        "SSO across replicas: {} {}",
        r.status,
        r.text()
    );
    let r = browser.consent(&r, "allow").await;
    let (_, params) = location_params(&r);
    let code2 = params.get("code").expect("code").clone();
    let r = exchange(&a, &m.client.client_id, &code2, &verifier2).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Rotated at B twice, then the first token replayed at A: reuse, the family dies on both.
    let rt0 = tokens["refresh_token"].as_str().expect("refresh token");
    let r1 = refresh(&b, &m.client.client_id, rt0).await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text());
    let rt1 = r1.json()["refresh_token"].as_str().expect("rt1").to_owned();
    let r2 = refresh(&b, &m.client.client_id, &rt1).await;
    assert_eq!(r2.status, StatusCode::OK, "{}", r2.text());
    let rt2 = r2.json()["refresh_token"].as_str().expect("rt2").to_owned();
    refresh(&a, &m.client.client_id, rt0)
        .await
        .assert_oauth_error(400, "invalid_grant");
    refresh(&b, &m.client.client_id, &rt2)
        .await
        .assert_oauth_error(400, "invalid_grant");
    // B's three refreshes went through its rotation batches (one at a time here: a batch each).
    let metrics = b.get("/metrics").await.text();
    let total = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    assert_eq!(total("latchkey_pg_rotations_total"), 3.0);
    assert_eq!(total("latchkey_pg_rotation_batches_total"), 3.0);

    // A key rotated from the CLI shows up identically in both replicas' JWKS.
    let out = a.cli(&["keys", "rotate", "--json"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let rotated: Value = serde_json::from_str(&out.stdout).expect("rotate JSON");
    let new_kids: Vec<String> = rotated
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert_eq!(new_kids.len(), 2, "ES256 and RS256 rotated");
    let published = |j: &Value, kid: &str| {
        j["keys"]
            .as_array()
            .is_some_and(|ks| ks.iter().any(|k| k["kid"] == kid))
    };
    let (ja, jb) = a
        .eventually(
            "the new keys on both replicas",
            Duration::from_secs(10),
            || async {
                let (ja, jb) = (jwks(&a).await, jwks(&b).await);
                new_kids
                    .iter()
                    .all(|k| published(&ja, k) && published(&jb, k))
                    .then_some((ja, jb))
            },
        )
        .await;
    assert_eq!(ja, jb, "both replicas publish the same JWKS");
    assert_eq!(ja["keys"].as_array().map(Vec::len), Some(4));
}

#[actix_web::test]
async fn one_code_redeemed_at_two_replicas_at_once_has_one_winner() {
    let Some((a, b, _pg)) = replicas("one_code_at_two_replicas", |_| {}).await else {
        return;
    };
    let m = setup(&a, true).await;
    for _ in 0..3 {
        let mut browser = Browser::new(&a);
        let (verifier, challenge) = pkce();
        let code = obtain_code(&a, &mut browser, &m, &challenge).await;
        let (ra, rb) = futures_util::future::join(
            exchange(&a, &m.client.client_id, &code, &verifier),
            exchange(&b, &m.client.client_id, &code, &verifier),
        )
        .await;
        let ok = [&ra, &rb]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(
            ok,
            1,
            "A: {} {}, B: {} {}",
            ra.status,
            ra.text(),
            rb.status,
            rb.text()
        );
        let loser = if ra.status == StatusCode::OK {
            &rb
        } else {
            &ra
        };
        loser.assert_oauth_error(400, "invalid_grant");
    }
}

#[actix_web::test]
async fn kill_9_of_a_replica_under_refresh_load_loses_no_acknowledged_rotation() {
    let Some((mut a, b, _pg)) = replicas("kill_9_under_refresh_load", |_| {}).await else {
        return;
    };
    let m = setup(&a, true).await;
    // Four apps, each with its own refresh family, refreshing at A as fast as they can.
    let mut families = Vec::new();
    for _ in 0..4 {
        let t = crate::browser::login_tokens(&a, &m).await;
        families.push(t["refresh_token"].as_str().expect("rt").to_owned());
    }
    let mut tasks = Vec::new();
    for start in families {
        let http = a.http.clone();
        let url = a.url("/token");
        let client_id = m.client.client_id.clone();
        tasks.push(actix_web::rt::spawn(async move {
            let mut acknowledged = start;
            let mut rotations = 0u32;
            loop {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", acknowledged.as_str()),
                    ("client_id", client_id.as_str()),
                ];
                let resp = match http.post(&url).form(&form).send().await {
                    Ok(r) => r,
                    Err(_) => return (acknowledged, rotations), // A is gone
                };
                let status = resp.status();
                let Ok(body) = resp.bytes().await else {
                    return (acknowledged, rotations); // died mid-response: not acknowledged
                };
                assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
                let v: Value = serde_json::from_slice(&body).expect("token JSON");
                acknowledged = v["refresh_token"].as_str().expect("rt").to_owned();
                rotations += 1;
            }
        }));
    }
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    a.kill();
    let mut total = 0;
    for task in tasks {
        let (acknowledged, rotations) = task.await.expect("refresh loop");
        total += rotations;
        // The last rotation A acknowledged is durable: B accepts that token. (A rotation A
        // committed but never acknowledged is covered by the retry grace window.)
        let r = refresh(&b, &m.client.client_id, &acknowledged).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "acknowledged token refused after kill -9: {}",
            r.text()
        );
    }
    assert!(
        total >= 8,
        "the load ran before the kill ({total} rotations)"
    );
}

#[actix_web::test]
async fn database_down_means_503_and_service_resumes_by_itself() {
    let Some(pg) = PgDb::create("database_down") else {
        return;
    };
    let proxy = Proxy::start(&Proxy::target_of(&pg.url));
    let url = proxy.url_for(&pg.url);
    let app = TestApp::spawn_with(|c| c.database_url = url).await;
    let svc = app.add_service_client().await;
    let token = || app.post_token(&[("grant_type", "client_credentials")], svc.basic());
    assert_eq!(token().await.status, StatusCode::OK);

    proxy.cut();
    let r = app.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.json()["status"], "unavailable");
    let r = token().await;
    r.assert_oauth_error(503, "temporarily_unavailable");
    assert_eq!(r.header("retry-after"), Some("5"));
    // What needs no database keeps working: discovery and the JWKS come from memory.
    assert_eq!(app.get("/jwks").await.status, StatusCode::OK);
    assert_eq!(
        app.get("/.well-known/openid-configuration").await.status,
        StatusCode::OK
    );
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);

    proxy.restore();
    app.eventually("service to resume", Duration::from_secs(15), || async {
        (app.get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    let r = token().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[actix_web::test]
async fn one_refresh_token_at_two_replicas_at_once_has_one_winner() {
    // Without a retry window every second presentation is reuse: exactly one rotation wins.
    let Some((a, b, _pg)) = replicas("one_refresh_at_two_replicas", |c| {
        c.refresh_reuse_grace = 0;
    })
    .await
    else {
        return;
    };
    let m = setup(&a, true).await;
    let tokens = crate::browser::login_tokens(&a, &m).await;
    let rt = tokens["refresh_token"].as_str().expect("rt");
    let (ra, rb) = futures_util::future::join(
        refresh(&a, &m.client.client_id, rt),
        refresh(&b, &m.client.client_id, rt),
    )
    .await;
    let winners: Vec<_> = [&ra, &rb]
        .into_iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "A: {} B: {}", ra.text(), rb.text());
    let loser = if ra.status == StatusCode::OK {
        &rb
    } else {
        &ra
    };
    loser.assert_oauth_error(400, "invalid_grant");
    // The loser's presentation was reuse, so the family is revoked: the winner's successor dies.
    let next = winners[0].json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    refresh(&a, &m.client.client_id, &next)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn scheduled_rotation_happens_once_per_interval_across_replicas() {
    let Some((a, b, _pg)) = replicas("scheduled_rotation_across_replicas", |c| {
        c.key_publish_ahead = 1;
        c.key_rotation_interval = 3;
    })
    .await
    else {
        return;
    };
    actix_web::rt::time::sleep(Duration::from_secs(8)).await;
    let out = a.cli(&["keys", "list", "--json"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let list: Value = serde_json::from_str(&out.stdout).expect("keys JSON");
    let mut created: Vec<i64> = list
        .as_array()
        .expect("array")
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["published_at"].as_i64().expect("published_at"))
        .collect();
    created.sort_unstable();
    assert!(
        created.len() >= 2,
        "at least one scheduled rotation in 8 s: {list}"
    );
    for pair in created.windows(2) {
        assert!(
            pair[1] - pair[0] >= 3,
            "two replicas rotated within one interval: {created:?}"
        );
    }
    // Both replicas publish the result identically.
    a.eventually("identical JWKS", Duration::from_secs(5), || async {
        (jwks(&a).await == jwks(&b).await).then_some(())
    })
    .await;
}

/// A client_credentials request with `basic`: its status.
async fn cc_status(app: &TestApp, basic: Option<(&str, &str)>) -> StatusCode {
    app.post_token(&[("grant_type", "client_credentials")], basic)
        .await
        .status
}

#[actix_web::test]
async fn a_client_change_is_in_force_on_every_replica_at_once() {
    // On PostgreSQL each replica keeps the clients it authenticates in memory, dropped when
    // the database reports a change (LISTEN/NOTIFY, fed by a trigger): however the change is
    // made, no replica goes on accepting what it no longer should.
    let Some((a, b, pg)) = replicas("client_change_every_replica", |_| {}).await else {
        return;
    };
    let svc = a.add_service_client().await;
    for app in [&a, &b] {
        // Twice: the second is answered from memory.
        assert_eq!(cc_status(app, svc.basic()).await, StatusCode::OK);
        assert_eq!(cc_status(app, svc.basic()).await, StatusCode::OK);
    }

    // The CLI rotates the secret: the old one is refused by the very next request anywhere.
    let out = a
        .cli(&["client", "rotate-secret", &svc.client_id, "--json"], None)
        .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let new_secret = v["client_secret"].as_str().expect("new secret").to_owned();
    for app in [&a, &b] {
        assert_eq!(
            cc_status(app, svc.basic()).await,
            StatusCode::UNAUTHORIZED,
            "old secret at {}",
            app.address
        );
        assert_eq!(
            cc_status(app, Some((&svc.client_id, &new_secret))).await,
            StatusCode::OK
        );
    }
    let basic = Some((svc.client_id.as_str(), new_secret.as_str()));

    // A's admin API disables it: refused at once by A (its own change) and by B.
    let (_, admin) = crate::admin_api::admin_token(&a).await;
    let r = crate::admin_api::call(
        &a,
        reqwest::Method::POST,
        &format!("/admin/v1/clients/{}/disable", svc.client_id),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for app in [&a, &b] {
        assert_eq!(cc_status(app, basic).await, StatusCode::UNAUTHORIZED);
    }

    // An operator's plain SQL, which no Latchkey code sees: enabled again, then disabled.
    // PostgreSQL sends the notification when the change commits; the next request is
    // expected to see it, and must within a second at the very most.
    for (sql, expect) in [
        ("UPDATE clients SET disabled = false", StatusCode::OK),
        (
            "UPDATE clients SET disabled = true",
            StatusCode::UNAUTHORIZED,
        ),
    ] {
        pg.sql(&format!("{sql} WHERE client_id = '{}'", svc.client_id));
        for app in [&a, &b] {
            app.eventually(sql, Duration::from_secs(1), || async {
                (cc_status(app, basic).await == expect).then_some(())
            })
            .await;
            // And it stays so (the entry read afterwards is the new state).
            assert_eq!(cc_status(app, basic).await, expect);
        }
    }

    // The listening connections are killed, and the client enabled while no replica can
    // hear of it: each one reads the database instead of its memory until it listens again,
    // and what it held before is gone (it could have missed any change).
    pg.sql("UPDATE clients SET disabled = false");
    for app in [&a, &b] {
        app.eventually("enabled", Duration::from_secs(1), || async {
            (cc_status(app, basic).await == StatusCode::OK).then_some(())
        })
        .await;
    }
    pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'latchkey-listen'",
    );
    // Give the servers time to notice the lost connection (the FIN, or the once-a-second
    // check) before the change they will not hear about.
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    pg.sql(&format!(
        "UPDATE clients SET disabled = true WHERE client_id = '{}'",
        svc.client_id
    ));
    for app in [&a, &b] {
        assert_eq!(cc_status(app, basic).await, StatusCode::UNAUTHORIZED);
    }
    // Both listen again within the check interval (1 s)...
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    let listening = {
        let mut conn =
            <diesel::pg::PgConnection as diesel::Connection>::establish(&pg.url).expect("connect");
        use diesel::prelude::*;
        diesel::sql_query(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'latchkey-listen'",
        )
        .execute(&mut conn)
        .expect("pg_stat_activity")
    };
    assert_eq!(listening, 2, "each replica listens again");
    // ...and still refuse: nothing from before the loss was kept.
    for app in [&a, &b] {
        assert_eq!(cc_status(app, basic).await, StatusCode::UNAUTHORIZED);
        assert_eq!(cc_status(app, basic).await, StatusCode::UNAUTHORIZED);
    }
}

/// Whether `rs` sees `token` as active at `app`'s introspection endpoint.
async fn active_at(app: &TestApp, rs: &crate::helpers::TestClient, token: &str) -> bool {
    let r = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&rs.client_id, rs.client_secret.as_deref())
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    v["active"] == true
}

#[actix_web::test]
async fn a_revocation_is_in_force_on_every_replica_at_once() {
    // On PostgreSQL each replica keeps "this access token is not revoked" answers in memory,
    // dropped when the database reports a revocation: a revoked token is inactive at every
    // replica on the very next introspection, whichever replica revoked it, and however.
    let Some((a, b, pg)) = replicas("revocation_every_replica", |_| {}).await else {
        return;
    };
    let rs = a.add_service_client().await;
    let both = [&a, &b];

    // By jti (RFC 7009 at A).
    let svc = a.add_service_client().await;
    let at = a.access_token_for(&svc).await;
    for app in both {
        // Twice: the second is answered from memory.
        assert!(active_at(app, &rs, &at).await);
        assert!(active_at(app, &rs, &at).await);
    }
    assert_eq!(
        a.revoke(&[("token", at.as_str())], svc.basic()).await,
        StatusCode::OK
    );
    for app in both {
        assert!(
            !active_at(app, &rs, &at).await,
            "revoked at {}",
            app.address
        );
    }

    // Through its refresh family (the refresh token revoked at B).
    let m = setup(&a, true).await;
    let tokens = crate::browser::login_tokens(&a, &m).await;
    let user_at = tokens["access_token"].as_str().expect("at");
    for app in both {
        assert!(active_at(app, &rs, user_at).await);
        assert!(active_at(app, &rs, user_at).await);
    }
    let form = [
        ("token", tokens["refresh_token"].as_str().expect("rt")),
        ("client_id", m.client.client_id.as_str()),
    ];
    assert_eq!(b.revoke(&form, None).await, StatusCode::OK);
    for app in both {
        assert!(
            !active_at(app, &rs, user_at).await,
            "family revoked, at {}",
            app.address
        );
    }

    // By an operator's SQL, which no Latchkey code sees (in force once PostgreSQL has sent
    // the notification, as it does at commit: within a second at the very most).
    let other = a.access_token_for(&svc).await;
    for app in both {
        assert!(active_at(app, &rs, &other).await);
        assert!(active_at(app, &rs, &other).await);
    }
    let jti = {
        let payload = other.split('.').nth(1).expect("JWT");
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .expect("base64url");
        let claims: Value = serde_json::from_slice(&bytes).expect("claims");
        claims["jti"].as_str().expect("jti").to_owned()
    };
    pg.sql(&format!(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ('{jti}', 4102444800)"
    ));
    for app in both {
        app.eventually("revoked by SQL", Duration::from_secs(1), || async {
            (!active_at(app, &rs, &other).await).then_some(())
        })
        .await;
        assert!(!active_at(app, &rs, &other).await);
    }
}

#[actix_web::test]
async fn a_disabled_user_or_client_is_inactive_on_every_replica() {
    // Issue 18 finding 3: "live" answers kept in memory include the user's and the client's
    // state, and are dropped on every replica when either changes, however it was changed.
    let Some((a, b, _pg)) = replicas("disabled_every_replica", |_| {}).await else {
        return;
    };
    let rs = a.add_service_client().await;
    let both = [&a, &b];
    let m = setup(&a, true).await;
    let tokens = crate::browser::login_tokens(&a, &m).await;
    let user_at = tokens["access_token"].as_str().expect("at");
    for app in both {
        // Twice: the second is answered from memory.
        assert!(active_at(app, &rs, user_at).await);
        assert!(active_at(app, &rs, user_at).await);
    }
    // The user disabled by the CLI (another process): every replica hears of it at commit.
    let out = a.cli(&["user", "disable", "alice"], None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    for app in both {
        app.eventually("user disabled", Duration::from_secs(1), || async {
            (!active_at(app, &rs, user_at).await).then_some(())
        })
        .await;
    }
    // A client's token, the client disabled at replica B.
    let svc = a.add_service_client().await;
    let at = a.access_token_for(&svc).await;
    for app in both {
        assert!(active_at(app, &rs, &at).await);
        assert!(active_at(app, &rs, &at).await);
    }
    let (_, admin) = crate::admin_api::admin_token(&b).await;
    let path = format!("/admin/v1/clients/{}/disable", svc.client_id);
    let r = crate::admin_api::call(&b, reqwest::Method::POST, &path, Some(&admin), None).await;
    assert!(r.status.is_success(), "{}", r.text());
    for app in both {
        app.eventually("client disabled", Duration::from_secs(1), || async {
            (!active_at(app, &rs, &at).await).then_some(())
        })
        .await;
    }
}
