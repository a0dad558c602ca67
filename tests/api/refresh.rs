//! Refresh token rotation, reuse detection and the retry grace window.

use reqwest::StatusCode;

use crate::browser::{login_tokens, refresh, setup};
use crate::helpers::TestApp;

fn rt(v: &serde_json::Value) -> String {
    v["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

#[actix_web::test]
async fn every_refresh_rotates_and_reuse_outside_the_grace_window_revokes_the_family() {
    let app = TestApp::spawn_with(|c| c.refresh_reuse_grace = 0).await;
    let m = setup(&app, true).await;
    let cid = &m.client.client_id;
    let t0 = rt(&login_tokens(&app, &m).await);
    let r1 = refresh(&app, cid, &t0).await;
    assert_eq!(r1.status, StatusCode::OK, "{}", r1.text());
    let t1 = rt(&r1.json());
    assert_ne!(t0, t1, "rotated");
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The old token again: theft. The whole family dies, including the current token.
    refresh(&app, cid, &t0)
        .await
        .assert_oauth_error(400, "invalid_grant");
    refresh(&app, cid, &t1)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn a_retry_within_the_grace_window_keeps_the_family_with_one_live_successor() {
    let app = TestApp::spawn_with(|c| c.refresh_reuse_grace = 60).await;
    let m = setup(&app, true).await;
    let cid = &m.client.client_id;
    let t0 = rt(&login_tokens(&app, &m).await);
    let lost = rt(&refresh(&app, cid, &t0).await.json()); // response "lost" on the network
    let retry = refresh(&app, cid, &t0).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    let t1 = rt(&retry.json());
    assert_ne!(t1, lost);
    // The family survives the retry: the newest successor works.
    let t2 = refresh(&app, cid, &t1).await;
    assert_eq!(t2.status, StatusCode::OK, "{}", t2.text());
    // Once the successor has been used, presenting t0 again is theft even inside the window.
    refresh(&app, cid, &t0)
        .await
        .assert_oauth_error(400, "invalid_grant");
    refresh(&app, cid, &rt(&t2.json()))
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn a_superseded_successor_showing_up_later_revokes_the_family() {
    // A thief replays t0 inside the window before the app uses its successor: the thief gets
    // a token, the app's successor is superseded. When the app refreshes with it, that is
    // reuse, and the thief's token dies with the family.
    let app = TestApp::spawn_with(|c| c.refresh_reuse_grace = 60).await;
    let m = setup(&app, true).await;
    let cid = &m.client.client_id;
    let t0 = rt(&login_tokens(&app, &m).await);
    let apps = rt(&refresh(&app, cid, &t0).await.json());
    let thief = refresh(&app, cid, &t0).await;
    assert_eq!(thief.status, StatusCode::OK, "{}", thief.text());
    let thiefs = rt(&thief.json());
    refresh(&app, cid, &apps)
        .await
        .assert_oauth_error(400, "invalid_grant");
    refresh(&app, cid, &thiefs)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn scope_may_narrow_but_never_widen() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let cid = &m.client.client_id;
    let t0 = rt(&login_tokens(&app, &m).await);
    let wide = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t0),
                ("client_id", cid),
                ("scope", "openid api:write"),
            ],
            None,
        )
        .await;
    wide.assert_oauth_error(400, "invalid_scope");
    // The refused request did not consume the token.
    let narrow = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &t0),
                ("client_id", cid),
                ("scope", "api:read"),
            ],
            None,
        )
        .await;
    assert_eq!(narrow.status, StatusCode::OK, "{}", narrow.text());
    assert_eq!(narrow.json()["scope"], "api:read");
}

#[actix_web::test]
async fn another_client_a_forged_token_or_a_disabled_user_cannot_refresh() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let other = app
        .add_client(&[
            "--name",
            "other",
            "--type",
            "public",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--scope",
            "openid offline_access",
        ])
        .await;
    let t0 = rt(&login_tokens(&app, &m).await);
    refresh(&app, &other.client_id, &t0)
        .await
        .assert_oauth_error(400, "invalid_grant");
    refresh(&app, &m.client.client_id, "forged-refresh-token")
        .await
        .assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        app.cli(&["user", "disable", "alice"], None).await.code,
        Some(0)
    );
    refresh(&app, &m.client.client_id, &t0)
        .await
        .assert_oauth_error(400, "invalid_grant");
}

#[actix_web::test]
async fn concurrent_refreshes_of_one_token_do_not_both_succeed_outside_the_window() {
    let app = TestApp::spawn_with(|c| {
        c.refresh_reuse_grace = 0;
        c.workers = 2;
    })
    .await;
    let m = setup(&app, true).await;
    let cid = &m.client.client_id;
    let t0 = rt(&login_tokens(&app, &m).await);
    let (a, b) = futures_util::future::join(refresh(&app, cid, &t0), refresh(&app, cid, &t0)).await;
    let ok = [a.status, b.status]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert!(ok <= 1, "{} / {}", a.text(), b.text());
}

/// Requests never checkpoint SQLite's WAL themselves (the automatic checkpoint is only a
/// backstop at thousands of pages); the server does it in the background. Observable from
/// outside: after a burst of rotations and a pause, the next write finds the WAL copied back
/// and starts it over, so the WAL holds only that write's frames.
#[actix_web::test]
async fn the_server_checkpoints_the_sqlite_wal_in_the_background() {
    let app = TestApp::spawn().await;
    let m = setup(&app, true).await;
    let cid = &m.client.client_id;
    let mut t = rt(&login_tokens(&app, &m).await);
    for _ in 0..30 {
        let r = refresh(&app, cid, &t).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        t = rt(&r.json());
    }
    let db = latchkey::store::Store::open(&app.config.database_url, 1).expect("open the database");
    // Wait past two background checkpoint intervals, then write once more.
    actix_web::rt::time::sleep(latchkey::store::CHECKPOINT_INTERVAL * 3).await;
    let r = refresh(&app, cid, &t).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let wal = db.checkpoint().expect("checkpoint").expect("sqlite");
    // 31 rotations, a login and the setup wrote well over 60 frames; one rotation a handful.
    assert!(
        wal.frames <= 20,
        "the WAL was not checkpointed in the background: {} frames",
        wal.frames
    );
}
