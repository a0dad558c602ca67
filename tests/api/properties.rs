//! Property tests of the protocol invariants (issue 9): redirect URI matching is exact except
//! the RFC 8252 loopback port; scope never widens; PKCE accepts exactly the right verifier; a
//! refresh family has exactly one live token (or is revoked) under any interleaving of an app
//! and a thief; `/authorize` never redirects to an unregistered URI and never answers 5xx.

use std::collections::HashMap;

use latchkey::model::{AuthCode, Issuance, RefreshToken, TokenFamily};
use latchkey::protocol::{pkce, redirect_uri, scope::Scope};
use latchkey::store::{Redeemed, Rotated, Store};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use crate::browser::{pkce as pkce_pair, setup};
use crate::helpers::TestApp;

// ---- redirect URIs -------------------------------------------------------------------------

/// Ways to change a registered loopback redirect URI; only `Port` keeps it acceptable.
#[derive(Debug, Clone)]
enum Mutation {
    Port(u16),
    Host(&'static str),
    PathSuffix(String),
    Query(String),
    Fragment(String),
    UserInfo,
    Scheme,
    UpperCasePath,
    TrailingSlash,
    PercentEncode,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (1u16..=65535).prop_map(Mutation::Port),
        prop::sample::select(vec![
            "localhost",
            "127.0.0.2",
            "[::1]",
            "evil.example",
            "0.0.0.0"
        ])
        .prop_map(Mutation::Host),
        "[a-z/]{1,6}".prop_map(Mutation::PathSuffix),
        "[a-z]{1,4}=[a-z0-9]{0,4}".prop_map(Mutation::Query),
        "[a-z]{0,4}".prop_map(Mutation::Fragment),
        Just(Mutation::UserInfo),
        Just(Mutation::Scheme),
        Just(Mutation::UpperCasePath),
        Just(Mutation::TrailingSlash),
        Just(Mutation::PercentEncode),
    ]
}

fn apply(port: Option<u16>, path: &str, m: &Mutation) -> String {
    let host_port = |host: &str, port: Option<u16>| match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    match m {
        Mutation::Port(p) => format!("http://{}{path}", host_port("127.0.0.1", Some(*p))),
        Mutation::Host(h) => format!("http://{}{path}", host_port(h, port)),
        Mutation::PathSuffix(s) => format!("http://{}{path}{s}", host_port("127.0.0.1", port)),
        Mutation::Query(q) => format!("http://{}{path}?{q}", host_port("127.0.0.1", port)),
        Mutation::Fragment(f) => format!("http://{}{path}#{f}", host_port("127.0.0.1", port)),
        Mutation::UserInfo => format!("http://user@{}{path}", host_port("127.0.0.1", port)),
        Mutation::Scheme => format!("https://{}{path}", host_port("127.0.0.1", port)),
        Mutation::UpperCasePath => {
            format!(
                "http://{}{}",
                host_port("127.0.0.1", port),
                path.to_uppercase()
            )
        }
        Mutation::TrailingSlash => format!("http://{}{path}/", host_port("127.0.0.1", port)),
        Mutation::PercentEncode => format!(
            "http://{}{}",
            host_port("127.0.0.1", port),
            path.replacen('c', "%63", 1)
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn loopback_redirects_match_only_with_another_port(
        port in prop::option::of(1u16..=65535),
        path in "/[a-c]{1,5}",
        m in mutation(),
    ) {
        let registered = match port {
            Some(p) => format!("http://127.0.0.1:{p}{path}"),
            None => format!("http://127.0.0.1{path}"),
        };
        let requested = apply(port, &path, &m);
        let same = requested == registered;
        let expected = same || matches!(m, Mutation::Port(_))
            // percent-encoding a path without 'c' changes nothing
            || (matches!(m, Mutation::PercentEncode) && !path.contains('c'));
        prop_assert_eq!(
            redirect_uri::matches(std::slice::from_ref(&registered), &requested),
            expected,
            "registered {} requested {}", registered, requested
        );
    }

    #[test]
    fn non_loopback_redirects_match_only_byte_for_byte(
        base in prop::sample::select(vec![
            "https://app.example.com/cb", "com.example.app:/cb", "http://localhost/cb",
        ]),
        suffix in prop::option::of("[a-z0-9:/?#.%]{1,4}"),
        port in prop::option::of(1u16..=65535),
    ) {
        let registered = base.to_owned();
        let mut requested = base.to_owned();
        if let Some(p) = port {
            requested = requested.replacen("/cb", &format!(":{p}/cb"), 1);
        }
        if let Some(s) = &suffix {
            requested.push_str(s);
        }
        prop_assert_eq!(
            redirect_uri::matches(std::slice::from_ref(&registered), &requested),
            requested == registered
        );
    }

    #[test]
    fn scope_never_widens(
        allowed in prop::collection::vec("[a-d]{1,2}", 0..5),
        requested in prop::option::of("[a-d ]{0,12}"),
    ) {
        match Scope::narrow(requested.as_deref(), allowed.iter().map(String::as_str)) {
            Ok(granted) => {
                for s in granted.iter() {
                    prop_assert!(allowed.iter().any(|a| a == s), "{} widened", s);
                }
            }
            Err(e) => prop_assert!(
                matches!(e.code.as_str(), "invalid_scope" | "invalid_request"),
                "{:?}", e.code
            ),
        }
    }

    #[test]
    fn pkce_accepts_exactly_the_right_verifier(
        verifier in "[A-Za-z0-9._~-]{43,128}",
        other in "[A-Za-z0-9._~-]{0,130}",
    ) {
        let challenge = crate::helpers::sha256_b64url(&verifier);
        prop_assert!(pkce::validate_challenge(Some(&challenge), Some("S256")).is_ok());
        prop_assert!(pkce::verify(&verifier, &challenge));
        prop_assert_eq!(pkce::verify(&other, &challenge), other == verifier);
        // The challenge itself, or plain, never passes as a verifier.
        prop_assert!(!pkce::verify(&challenge, &challenge));
    }
}

// ---- refresh families under any interleaving ------------------------------------------------

/// Who presents a token: the app (holds what it was last given) or a thief (holds a copy of
/// an older token it stole), and how many seconds passed since the last request.
#[derive(Debug, Clone)]
struct Step {
    thief: bool,
    dt: i64,
    steal: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (any::<bool>(), 0i64..40, prop::bool::weighted(0.2)).prop_map(|(thief, dt, steal)| Step {
        thief,
        dt,
        steal,
    })
}

const T0: i64 = 1_900_000_000;

fn family_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("p.db").display());
    let store = Store::open(&url, 2).expect("open");
    store
        .insert_code(&AuthCode {
            code_hash: "code".into(),
            client_id: "c".into(),
            user_id: "u".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            redirect_uri_explicit: true,
            code_challenge: "x".into(),
            scope: "openid offline_access".into(),
            audiences: vec![],
            nonce: None,
            auth_time: T0,
            sid: "s".into(),
            created_at: T0,
            expires_at: T0 + 60,
            dpop_jkt: None,
            amr: "pwd".into(),
        })
        .expect("code");
    let issued = store
        .redeem_code("code", T0, |_| {
            Ok::<_, ()>(Issuance {
                access_jti: "fam.0".into(),
                access_expires_at: T0 + 600,
                family: Some((
                    TokenFamily {
                        family_id: "fam".into(),
                        client_id: "c".into(),
                        user_id: "u".into(),
                        created_at: T0,
                        expires_at: T0 + 86400,
                        revoked_at: None,
                        dpop_jkt: None,
                        amr: "pwd".into(),
                    },
                    token("t0", T0),
                )),
            })
        })
        .expect("redeem");
    assert!(matches!(issued, Redeemed::Issued(_)));
    (dir, store)
}

fn token(hash: &str, now: i64) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        family_id: "fam".into(),
        scope: "openid offline_access".into(),
        audiences: vec![],
        auth_time: T0,
        sid: "s".into(),
        created_at: now,
        expires_at: now + 86400,
        rotated_at: None,
        successor_hash: None,
        seen: Default::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_refresh_family_has_one_live_token_or_is_revoked(
        grace in prop::sample::select(vec![0i64, 5, 30]),
        steps in prop::collection::vec(step(), 1..14),
    ) {
        let (_dir, s) = family_store();
        let mut created = vec!["t0".to_string()];
        let mut app = "t0".to_string();
        let mut thief: Option<String> = None;
        let mut now = T0;
        let mut revoked = false;
        // Tokens that have been rotated and whose successor was then used: spent for good.
        let mut spent_for_good: HashMap<String, ()> = HashMap::new();
        for (i, st) in steps.iter().enumerate() {
            now += st.dt;
            if st.steal {
                thief = Some(app.clone());
            }
            let presented = match (&thief, st.thief) {
                (Some(t), true) => t.clone(),
                _ => app.clone(),
            };
            let next = format!("t{}", i + 1);
            let outcome = s
                .rotate_refresh(&presented, now, grace, |_, _| Ok::<_, ()>(token(&next, now)))
                .expect("rotate");
            match outcome {
                Rotated::Rotated { old, .. } => {
                    prop_assert!(!revoked, "a revoked family issued a token");
                    prop_assert!(
                        !spent_for_good.contains_key(&presented),
                        "{} was spent (its successor used) but succeeded again", presented
                    );
                    prop_assert_eq!(&old.token_hash, &presented);
                    created.push(next.clone());
                    if st.thief && thief.is_some() {
                        thief = Some(next.clone());
                    } else {
                        app = next.clone();
                    }
                    // The presented token's predecessor chain is now spent for good.
                    for h in &created {
                        if *h != next && *h != presented {
                            spent_for_good.insert(h.clone(), ());
                        }
                    }
                }
                Rotated::Reused { .. } | Rotated::Revoked => revoked = true,
                Rotated::NotFound | Rotated::Rejected(()) => {}
            }
            // The invariant: exactly one live (never rotated) token, unless revoked.
            let mut live = 0;
            let mut family_revoked = false;
            for h in &created {
                if let Some((t, fam)) = s.refresh_token(h).expect("read") {
                    family_revoked |= fam.revoked_at.is_some();
                    if t.rotated_at.is_none() {
                        live += 1;
                    }
                }
            }
            prop_assert_eq!(family_revoked, revoked);
            if !revoked {
                prop_assert_eq!(live, 1, "after step {}: {:?}", i, st);
            }
        }
    }
}

// ---- /authorize never redirects before validation ------------------------------------------

/// Random authorization requests: real and fake client ids, registered and mutated redirect
/// URIs, and random values for everything else.
fn authorize_query(client_id: String) -> impl Strategy<Value = Vec<(String, String)>> {
    let client = prop_oneof![
        4 => Just(client_id),
        1 => "[a-f0-9]{0,32}",
        1 => Just(String::new()),
    ];
    let redirect = prop_oneof![
        3 => Just("http://127.0.0.1/cb".to_string()),
        3 => (1u16..=65535).prop_map(|p| format!("http://127.0.0.1:{p}/cb")),
        3 => Just("com.example.app:/cb".to_string()),
        1 => Just("http://localhost/cb".to_string()),
        1 => Just("https://evil.example/cb".to_string()),
        1 => Just("http://127.0.0.1/cb#frag".to_string()),
        1 => Just("http://127.0.0.1/cb?x=1".to_string()),
        1 => Just("com.example.app:/cb/../x".to_string()),
        1 => "[ -~]{0,12}",
    ];
    let value = "[ -~]{0,10}";
    (
        prop::option::weighted(0.9, client),
        prop::option::weighted(0.8, redirect),
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "response_type",
                    "scope",
                    "state",
                    "nonce",
                    "code_challenge",
                    "code_challenge_method",
                    "prompt",
                    "max_age",
                    "resource",
                    "request",
                    "response_mode",
                    "login_hint",
                ]),
                value,
            ),
            0..6,
        ),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(client, redirect, extra, duplicate)| {
            let mut q: Vec<(String, String)> = Vec::new();
            if let Some(c) = client {
                q.push(("client_id".into(), c));
            }
            if let Some(r) = redirect {
                q.push(("redirect_uri".into(), r.clone()));
                if duplicate {
                    q.push(("redirect_uri".into(), "https://evil.example/cb".into()));
                }
            }
            for (k, v) in extra {
                q.push((k.to_owned(), v));
            }
            q
        })
}

#[actix_web::test]
async fn authorize_never_redirects_to_an_unregistered_uri_and_never_fails_with_5xx() {
    let app = TestApp::spawn().await;
    let m = setup(&app, false).await;
    let registered = vec![
        "http://127.0.0.1/cb".to_string(),
        "com.example.app:/cb".to_string(),
    ];
    let (_, challenge) = pkce_pair();
    let mut runner = TestRunner::deterministic();
    let strategy = authorize_query(m.client.client_id.clone());
    let mut redirects = 0;
    for case in 0..300 {
        let mut q = strategy
            .new_tree(&mut runner)
            .expect("generate a case")
            .current();
        // Half the cases are otherwise well-formed, so that redirects are exercised too.
        if case % 2 == 0 {
            q.push(("response_type".into(), "code".into()));
            q.push(("code_challenge".into(), challenge.clone()));
            q.push(("code_challenge_method".into(), "S256".into()));
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q.iter())
            .finish();
        let r = app.get(&format!("/authorize?{query}")).await;
        assert!(
            !r.status.is_server_error(),
            "{} for /authorize?{query}: {}",
            r.status,
            r.text()
        );
        if r.status.is_redirection() {
            redirects += 1;
            let location = r.header("location").expect("a redirect has a location");
            let target = location.split('?').next().unwrap_or("");
            assert!(
                redirect_uri::matches(&registered, target),
                "/authorize?{query} redirected to unregistered {location}"
            );
            let asked = q
                .iter()
                .filter(|(k, _)| k == "redirect_uri")
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>();
            assert!(
                asked.len() <= 1,
                "a duplicated redirect_uri must not redirect: {query} -> {location}"
            );
        }
    }
    assert!(
        redirects > 10,
        "the generator exercised redirects ({redirects})"
    );
}
