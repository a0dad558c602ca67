//! Per-core costs of the server's hot paths, without HTTP: token minting (signing), JWT
//! verification, the refresh rotation transaction on SQLite (store level), and the whole
//! client_credentials exchange in process (client authentication + grant + signing).
//!
//! `cargo bench --bench server` measures; without `--bench` (e.g. `cargo test --benches`) it
//! only checks that every case works.
//!
//! Method (as `verify/benches/verify.rs`): per case, samples of a fixed batch of calls (each
//! sample ~100 ms after a calibration), cases interleaved in rotating order so that drift in
//! CPU frequency hits all alike; the median time per call is reported. One thread, so these are
//! per-core numbers — except the store and exchange cases, which also include the hop to the
//! blocking pool and SQLite's own work (WAL, `synchronous = NORMAL`, as the server runs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use latchkey::config::{Config, SigningAlg};
use latchkey::keys::{KeyRing, TYP_ACCESS_TOKEN, TYP_JWT};
use latchkey::model::{AuthCode, ClientType, Issuance, RefreshToken, TokenFamily};
use latchkey::protocol::Ctx;
use latchkey::protocol::clients::{ClientSpec, create};
use latchkey::protocol::dpop;
use latchkey::protocol::params::Params;
use latchkey::protocol::tokens::{AccessTokenClaims, Audience, new_jti};
use latchkey::secret;
use latchkey::store::{Redeemed, Rotated, Store};

const SAMPLES: usize = 21;
const SAMPLE_TIME: Duration = Duration::from_millis(100);

/// Nanoseconds per call of each variant: median over `SAMPLES` samples, interleaved.
fn measure(variants: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    let n = variants.len();
    let mut batches = Vec::with_capacity(n);
    for (_, f) in variants.iter_mut() {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed() < SAMPLE_TIME / 4 {
            f();
            calls += 1;
        }
        batches.push((calls * 4).max(1));
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(SAMPLES); n];
    for round in 0..SAMPLES {
        for i in (0..n).map(|k| (k + round) % n) {
            let f = &mut variants[i].1;
            let t = Instant::now();
            for _ in 0..batches[i] {
                f();
            }
            samples[i].push(t.elapsed().as_nanos() as f64 / f64::from(batches[i]));
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect()
}

fn now() -> i64 {
    latchkey::http::unix_now()
}

/// A store with one live refresh family, created the way the code grant creates it.
fn new_family(store: &Store, n: usize) -> String {
    let t = now();
    let code = format!("bench-code-{n}");
    store
        .insert_code(&AuthCode {
            code_hash: secret::hash_token(&code),
            client_id: "bench-client".into(),
            user_id: "bench-user".into(),
            redirect_uri: "http://127.0.0.1:9/cb".into(),
            redirect_uri_explicit: true,
            code_challenge: "x".into(),
            scope: "openid offline_access".into(),
            audiences: vec!["https://api.example.test".into()],
            nonce: None,
            auth_time: t,
            sid: "sid".into(),
            created_at: t,
            expires_at: t + 60,
            dpop_jkt: None,
            amr: "pwd".into(),
        })
        .unwrap();
    let family_id = secret::random_token(16);
    let first = secret::new_secret();
    let redeemed = store
        .redeem_code(&secret::hash_token(&code), t, |c| {
            Ok::<_, ()>(Issuance {
                access_jti: format!("{family_id}.x"),
                access_expires_at: t + 600,
                family: Some((
                    TokenFamily {
                        family_id: family_id.clone(),
                        client_id: c.client_id.clone(),
                        user_id: c.user_id.clone(),
                        created_at: t,
                        expires_at: t + 86400,
                        revoked_at: None,
                        dpop_jkt: None,
                        amr: "pwd".into(),
                    },
                    RefreshToken {
                        token_hash: secret::hash_token(&first),
                        family_id: family_id.clone(),
                        scope: c.scope.clone(),
                        audiences: c.audiences.clone(),
                        auth_time: c.auth_time,
                        sid: c.sid.clone(),
                        created_at: t,
                        expires_at: t + 86400,
                        rotated_at: None,
                        successor_hash: None,
                        seen: Default::default(),
                    },
                )),
            })
        })
        .unwrap();
    assert!(matches!(redeemed, Redeemed::Issued(_)));
    first
}

/// One rotation as the refresh grant does it (store level): returns the new token.
fn rotate(store: &Store, current: &str) -> String {
    let next = secret::new_secret();
    let next_hash = secret::hash_token(&next);
    let t = now();
    let out = store
        .rotate_refresh(&secret::hash_token(current), t, 30, |old, fam| {
            Ok::<_, ()>(old.successor(
                next_hash.clone(),
                t,
                (t + 86400).min(fam.expires_at),
                Default::default(),
            ))
        })
        .unwrap();
    assert!(matches!(out, Rotated::Rotated { retry: false, .. }));
    next
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: format!("sqlite://{}/bench.db", dir.path().display()),
        keys_dir: dir.path().join("keys"),
        ..Config::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = Store::open(&config.database_url, config.db_pool_size).unwrap();
    let keys = KeyRing::open(&store, &config, now()).unwrap();
    let ctx = Ctx {
        config: std::sync::Arc::new(config.clone()),
        store: store.clone(),
        keys: std::sync::Arc::new(keys),
        metrics: std::sync::Arc::new(latchkey::metrics::Metrics::new()),
        audit_limits: std::sync::Arc::new(latchkey::protocol::audit::Limits::new()),
        client_keys: std::sync::Arc::new(latchkey::protocol::client_keys::ClientKeys::new(
            latchkey::outbound::Fetcher::new(false).unwrap(),
        )),
        outbound: latchkey::outbound::Fetcher::new(false).unwrap(),
        mtls: Default::default(),
        passkeys: std::sync::Arc::new(
            latchkey::protocol::login::passkey::Passkeys::new(&config).unwrap(),
        ),
        attestation: Default::default(),
    };

    // ---- signing and verification ----------------------------------------------------------
    let aud = Audience(vec!["https://api.example.test".into()]);
    let t = now();
    let claims = AccessTokenClaims {
        iss: &config.issuer,
        sub: "0123456789abcdef0123456789abcdef",
        aud: &aud,
        exp: t + 600,
        iat: t,
        jti: new_jti(),
        client_id: "0123456789abcdef0123456789abcdef",
        scope: "openid offline_access".into(),
        auth_time: Some(t),
        acr: None,
        amr: None,
        cnf: None,
        gty: None,
        att: None,
    };
    let es256 = ctx
        .keys
        .sign(SigningAlg::ES256, TYP_ACCESS_TOKEN, &claims, t)
        .unwrap();
    let rs256 = ctx
        .keys
        .sign(SigningAlg::RS256, TYP_ACCESS_TOKEN, &claims, t)
        .unwrap();
    ctx.keys
        .verify_access_token(&es256, &config.issuer, t)
        .unwrap();
    ctx.keys
        .verify_access_token(&rs256, &config.issuer, t)
        .unwrap();

    // ---- refresh rotation (store level) -----------------------------------------------------
    let mut chain = new_family(&store, 0);
    for _ in 0..3 {
        chain = rotate(&store, &chain);
    }

    // ---- client_credentials exchange in process --------------------------------------------
    let cc = create(
        ClientSpec {
            client_name: "bench-cc".into(),
            client_type: Some(ClientType::Confidential),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scope: Some("api:read".into()),
            audiences: vec!["https://api.example.test".into()],
            first_party: false,
            is_admin: false,
            dpop_bound_access_tokens: false,
            allowed_origins: vec![],
            ..Default::default()
        },
        t,
    )
    .unwrap();
    store.insert_client(&cc.client).unwrap();
    let basic = {
        use base64::Engine;
        let raw = format!("{}:{}", cc.client.client_id, cc.secret.clone().unwrap());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let body = b"grant_type=client_credentials&scope=api%3Aread".to_vec();
    let exchange = || {
        let params = Params::parse(&body).unwrap();
        runtime
            .block_on(latchkey::protocol::token::exchange(
                &ctx,
                latchkey::protocol::client_auth::Credentials {
                    authorization: Some(basic.as_bytes()),
                    ..Default::default()
                },
                dpop::Header::Absent,
                params,
                &Default::default(),
                now(),
            ))
            .unwrap()
    };
    let r = exchange();
    assert!(r.access_token.contains('.'));

    // `BENCH_PROFILE=CASE[:N]` runs one case N times (default 2000) and exits: a fixed amount
    // of work to run under `valgrind --tool=callgrind` or `perf record`.
    if let Ok(p) = std::env::var("BENCH_PROFILE") {
        let (case, n) = p.split_once(':').unwrap_or((p.as_str(), "2000"));
        let n: usize = n.parse().unwrap();
        let id = cc.client.client_id.clone();
        for _ in 0..n {
            match case {
                "sign" => drop(black_box(
                    ctx.keys
                        .sign(SigningAlg::ES256, TYP_ACCESS_TOKEN, &claims, t)
                        .unwrap(),
                )),
                "verify" => drop(black_box(
                    ctx.keys
                        .verify_access_token_uncached(&es256, &config.issuer)
                        .unwrap(),
                )),
                "client" => drop(black_box(store.client(&id).unwrap())),
                "rotate" => chain = rotate(&store, &chain),
                "exchange" => drop(black_box(exchange())),
                other => panic!("unknown case {other}"),
            }
        }
        return;
    }
    if !bench_mode {
        println!("benchmark sanity check passed (run `cargo bench --bench server` to measure)");
        return;
    }

    let per = |ns: f64| format!("{:>9.1} µs  {:>8.0}/s", ns / 1e3, 1e9 / ns);
    let mut sign_es = || {
        black_box(
            ctx.keys
                .sign(SigningAlg::ES256, TYP_ACCESS_TOKEN, black_box(&claims), t)
                .unwrap(),
        );
    };
    let mut sign_rs = || {
        black_box(
            ctx.keys
                .sign(SigningAlg::RS256, TYP_JWT, black_box(&claims), t)
                .unwrap(),
        );
    };
    let mut verify_es = || {
        black_box(
            ctx.keys
                .verify_access_token_uncached(black_box(&es256), &config.issuer)
                .unwrap(),
        );
    };
    let mut verify_rs = || {
        black_box(
            ctx.keys
                .verify_access_token_uncached(black_box(&rs256), &config.issuer)
                .unwrap(),
        );
    };
    let mut verify_seen = || {
        black_box(
            ctx.keys
                .verify_access_token(black_box(&es256), &config.issuer, now())
                .unwrap(),
        );
    };
    let names = [
        "sign ES256 access token",
        "sign RS256 (ID token)",
        "verify ES256 access token",
        "verify RS256 access token",
        "verify ES256, token seen before (cache)",
    ];
    let ns = measure(&mut [
        (names[0], &mut sign_es),
        (names[1], &mut sign_rs),
        (names[2], &mut verify_es),
        (names[3], &mut verify_rs),
        (names[4], &mut verify_seen),
    ]);
    for (name, ns) in names.iter().zip(ns) {
        println!("{name:<48} {}", per(ns));
    }

    // Store-level and in-process cases use SQLite; interleaved between themselves.
    // The server checkpoints the WAL in the background (every 500 ms, ~1000 rotations at full
    // load), not in the request: its share is counted here, one checkpoint per 512 rotations.
    let mut rotations = 0u32;
    let mut rotate_one = || {
        chain = rotate(&store, &chain);
        rotations += 1;
        if rotations.is_multiple_of(512) {
            black_box(store.checkpoint().unwrap());
        }
    };
    let mut families = 1;
    let mut new_chain = || {
        families += 1;
        black_box(new_family(&store, families));
    };
    let mut lookup = || {
        black_box(store.client(&cc.client.client_id).unwrap());
    };
    let id = cc.client.client_id.clone();
    let mut lookup_hop = || {
        let id = id.clone();
        black_box(
            runtime
                .block_on(store.blocking(move |s| s.client(&id)))
                .unwrap(),
        );
    };
    let mut cc_exchange = || {
        black_box(exchange());
    };
    let names = [
        "refresh rotation transaction (SQLite, with its checkpoint share)",
        "code insert + redeem with new family (SQLite)",
        "client lookup (SQLite, no pool hop)",
        "client lookup via Store::blocking",
        "client_credentials exchange (no HTTP)",
    ];
    let ns = measure(&mut [
        (names[0], &mut rotate_one),
        (names[1], &mut new_chain),
        (names[2], &mut lookup),
        (names[3], &mut lookup_hop),
        (names[4], &mut cc_exchange),
    ]);
    for (name, ns) in names.iter().zip(ns) {
        println!("{name:<48} {}", per(ns));
    }
}
