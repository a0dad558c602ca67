//! The storage contract: one suite, run against SQLite always and against PostgreSQL when
//! `LATCHKEY_TEST_POSTGRES_URL` is set (each test on a database of its own). It pins what the
//! protocol relies on from the store: uniqueness, single-use codes, rotation and reuse
//! decisions, and that concurrent decisions have exactly one winner.

use std::sync::{Arc, Barrier};

use latchkey::model::{
    AuditEntry, AuthCode, Client, ClientType, DeviceGrant, DeviceStatus, GrantType, Issuance,
    RefreshToken, RegistrationToken, Session, SigningKeyRecord, TokenFamily, User,
};
use latchkey::store::{
    AuditQuery, GrantsRevoked, Redeemed, Registered, Rotated, Store, StoreError,
};

use crate::helpers::eventually;
use crate::pg::PgDb;

/// A store on a fresh database of the given backend; `None` when that backend is not
/// available here. Holds the database (or directory) until dropped.
struct Db {
    store: Store,
    _pg: Option<PgDb>,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite() -> Option<Db> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url, 8).expect("open sqlite");
    Some(Db {
        store,
        _pg: None,
        _dir: Some(dir),
    })
}

fn postgres(test: &str) -> Option<Db> {
    let pg = PgDb::create(test)?;
    let store = Store::open(&pg.url, 8).expect("open postgres");
    Some(Db {
        store,
        _pg: Some(pg),
        _dir: None,
    })
}

/// Instantiates every contract test once per backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $name() {
                    let db = super::sqlite().expect("sqlite is always available");
                    super::$name(&db.store);
                }
            )*
        }
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    let Some(db) = super::postgres(stringify!($name)) else { return };
                    super::$name(&db.store);
                }
            )*
        }
    };
}

/// Contract tests run again on SQLite, each inside one [`Store::write`] on the in-place
/// writer: every store method then runs as a savepoint of that one transaction, and must
/// decide exactly as it does on its own (a rejected code still burnt, reuse still revokes).
macro_rules! in_place {
    ($($name:ident),* $(,)?) => {
        mod in_place_on_sqlite {
            $(
                #[actix_web::test]
                async fn $name() {
                    let db = super::sqlite().expect("sqlite is always available");
                    let caller = std::thread::current().id();
                    let ran_on = db
                        .store
                        .write(|s| {
                            super::$name(s);
                            Ok(std::thread::current().id())
                        })
                        .await
                        .expect("write");
                    assert_eq!(ran_on, caller, "ran in place");
                }
            )*
        }
    };
}

in_place!(
    a_code_is_redeemed_once_and_replay_revokes_what_it_issued,
    a_rejected_code_is_burnt,
    refresh_rotation_reuse_and_grace,
    a_superseded_successor_presented_later_revokes_the_family,
    a_dpop_proof_is_recorded_once_and_pruned_after_expiry,
    clients_are_replaced_and_deleted_with_their_grants,
);

contract!(
    migrations_are_idempotent_and_report_the_backend,
    clients_round_trip_and_ids_are_unique,
    users_round_trip_and_usernames_are_unique,
    sessions_expire_and_can_be_deleted,
    consent_is_replaced_not_duplicated,
    a_code_is_redeemed_once_and_replay_revokes_what_it_issued,
    a_rejected_code_is_burnt,
    concurrent_redemptions_of_one_code_have_one_winner,
    refresh_rotation_reuse_and_grace,
    concurrent_rotations_of_one_refresh_token_have_one_winner,
    a_batch_decides_each_rotation_as_if_alone,
    revoked_access_tokens_and_families,
    a_live_tokens_user_is_read_with_its_revocation_state,
    a_superseded_successor_presented_later_revokes_the_family,
    key_rotation_under_the_lock_happens_once,
    dpop_client_flag_and_family_binding_round_trip,
    a_dpop_proof_is_recorded_once_and_pruned_after_expiry,
    concurrent_presentations_of_one_dpop_proof_have_one_winner,
    of_two_racing_device_polls_only_one_is_recorded,
    audit_entries_are_numbered_paged_and_filtered,
    audit_entries_filter_by_actor_client_and_time_and_are_pruned_in_batches,
    users_are_searched_by_part_of_a_name_or_email_in_keyset_pages,
    expired_grants_are_pruned_in_batches_and_live_ones_stay,
    registration_respects_the_initial_tokens_limits,
    concurrent_registrations_never_exceed_max_uses,
    clients_are_replaced_and_deleted_with_their_grants,
    a_users_grants_are_revoked_in_bulk,
    the_wal_is_checkpointed_on_demand_and_then_starts_over,
    attested_keys_count_up_once_and_go_with_their_client,
);

const NOW: i64 = 1_900_000_000;

fn client(id: &str) -> Client {
    Client {
        client_id: id.into(),
        client_name: "app".into(),
        client_type: ClientType::Public,
        secret_hash: None,
        redirect_uris: vec!["http://127.0.0.1/cb".into(), "com.example.app:/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: "openid api:read".into(),
        audiences: vec!["https://api.example.test".into()],
        first_party: false,
        is_admin: false,
        disabled: false,
        created_at: NOW,
        updated_at: NOW,
        dpop_bound_access_tokens: false,
        allowed_origins: vec![],
        require_pushed_authorization_requests: false,
        jwks: None,
        jwks_uri: None,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        require_signed_request_object: false,
        tls_client_auth: None,
        tls_client_certificate_bound_access_tokens: false,
        require_mfa: false,
        attestation: None,
    }
}

fn user(id: &str, name: &str) -> User {
    User {
        user_id: id.into(),
        username: name.into(),
        email: Some(format!("{name}@example.test")),
        name: None,
        password_hash: "$argon2id$stub".into(),
        disabled: false,
        created_at: NOW,
        updated_at: NOW,
        is_admin: false,
    }
}

fn code(hash: &str) -> AuthCode {
    AuthCode {
        code_hash: hash.into(),
        client_id: "c1".into(),
        user_id: "u1".into(),
        redirect_uri: "http://127.0.0.1/cb".into(),
        redirect_uri_explicit: true,
        code_challenge: "challenge".into(),
        scope: "openid offline_access".into(),
        audiences: vec!["https://api.example.test".into()],
        nonce: Some("n".into()),
        auth_time: NOW,
        sid: "sid".into(),
        created_at: NOW,
        expires_at: NOW + 60,
        dpop_jkt: Some("jkt-code".into()),
        amr: "pwd".into(),
    }
}

fn refresh(hash: &str, family: &str) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        family_id: family.into(),
        scope: "openid offline_access".into(),
        audiences: vec!["https://api.example.test".into()],
        auth_time: NOW,
        sid: "sid".into(),
        created_at: NOW,
        expires_at: NOW + 3600,
        rotated_at: None,
        successor_hash: None,
        seen: Default::default(),
    }
}

fn issuance(family_id: &str, first_refresh: &str, jti: &str) -> Issuance {
    Issuance {
        access_jti: jti.into(),
        access_expires_at: NOW + 600,
        family: Some((
            TokenFamily {
                family_id: family_id.into(),
                client_id: "c1".into(),
                user_id: "u1".into(),
                created_at: NOW,
                expires_at: NOW + 86400,
                revoked_at: None,
                dpop_jkt: Some(format!("jkt-{family_id}")),
                amr: "pwd".into(),
            },
            refresh(first_refresh, family_id),
        )),
    }
}

/// Redeems `code_hash`, issuing a family named after `tag` when the code is valid.
fn redeem(s: &Store, code_hash: &str, tag: &str) -> Redeemed<()> {
    s.redeem_code(code_hash, NOW + 1, |_| {
        Ok::<_, ()>(issuance(
            &format!("fam-{tag}"),
            &format!("rt-{tag}"),
            &format!("jti-{tag}"),
        ))
    })
    .expect("redeem_code")
}

fn rotate(s: &Store, presented: &str, next: &str, now: i64, grace: i64) -> Rotated<()> {
    s.rotate_refresh(presented, now, grace, |old, _fam| {
        let mut n = refresh(next, &old.family_id);
        n.created_at = now;
        Ok::<_, ()>(n)
    })
    .expect("rotate_refresh")
}

fn migrations_are_idempotent_and_report_the_backend(s: &Store) {
    s.ping().expect("ping");
    assert!(matches!(s.backend().as_str(), "sqlite" | "postgres"));
    assert!(s.clients().expect("clients").is_empty());
}

fn clients_round_trip_and_ids_are_unique(s: &Store) {
    s.insert_client(&client("c1")).expect("insert");
    let got = s.client("c1").expect("get").expect("exists");
    assert_eq!(got.redirect_uris, client("c1").redirect_uris);
    assert_eq!(got.grant_types, client("c1").grant_types);
    assert_eq!(got.audiences, client("c1").audiences);
    assert!(!got.first_party && !got.disabled);
    assert!(s.client("nope").expect("get").is_none());
    assert!(matches!(
        s.insert_client(&client("c1")),
        Err(StoreError::Conflict(_))
    ));
    assert!(s.set_client_disabled("c1", true, NOW + 5).expect("disable"));
    assert!(s.client("c1").expect("get").expect("exists").disabled);
    assert!(!s.set_client_disabled("nope", true, NOW).expect("disable"));
    assert!(s.set_client_secret_hash("c1", "h2", NOW).expect("secret"));
    assert_eq!(
        s.client("c1")
            .expect("get")
            .expect("exists")
            .secret_hash
            .as_deref(),
        Some("h2")
    );
    s.insert_client(&client("c2")).expect("insert");
    assert_eq!(s.clients().expect("list").len(), 2);
}

fn users_round_trip_and_usernames_are_unique(s: &Store) {
    s.insert_user(&user("u1", "alice")).expect("insert");
    assert_eq!(
        s.user_by_username("alice")
            .expect("get")
            .expect("exists")
            .user_id,
        "u1"
    );
    assert!(
        s.user_by_username("Alice").expect("get").is_none(),
        "exact match"
    );
    assert!(matches!(
        s.insert_user(&user("u2", "alice")),
        Err(StoreError::Conflict(_))
    ));
    assert!(s.set_user_disabled("alice", true, NOW).expect("disable"));
    assert!(s.user("u1").expect("get").expect("exists").disabled);
    assert!(
        s.change_user_password("u1", "new", NOW)
            .expect("passwd")
            .is_some()
    );
    assert!(
        s.change_user_password("nobody", "new", NOW)
            .expect("passwd")
            .is_none()
    );
    assert_eq!(
        s.user("u1").expect("get").expect("exists").password_hash,
        "new"
    );
    assert_eq!(s.users().expect("list").len(), 1);
}

fn sessions_expire_and_can_be_deleted(s: &Store) {
    let sess = Session {
        session_hash: "sh".into(),
        sid: "sid".into(),
        user_id: "u1".into(),
        auth_time: NOW,
        created_at: NOW,
        expires_at: NOW + 100,
        seen: Default::default(),
        amr: "pwd".into(),
    };
    s.insert_session(&sess).expect("insert");
    assert!(s.session("sh", NOW + 99).expect("get").is_some());
    assert!(
        s.session("sh", NOW + 100).expect("get").is_none(),
        "expired"
    );
    s.delete_session("sh").expect("delete");
    assert!(s.session("sh", NOW).expect("get").is_none());
}

fn consent_is_replaced_not_duplicated(s: &Store) {
    s.save_consent("u1", "c1", "openid", "https://api.a", NOW)
        .expect("save");
    s.save_consent(
        "u1",
        "c1",
        "openid api:read",
        "https://api.a https://api.b",
        NOW + 1,
    )
    .expect("save again");
    assert_eq!(
        s.consent("u1", "c1").expect("get"),
        Some((
            "openid api:read".into(),
            "https://api.a https://api.b".into()
        ))
    );
    assert!(s.consent("u1", "c2").expect("get").is_none());
}

fn a_code_is_redeemed_once_and_replay_revokes_what_it_issued(s: &Store) {
    s.insert_code(&code("code-1")).expect("insert");
    assert!(matches!(redeem(s, "nope", "x"), Redeemed::NotFound));
    let Redeemed::Issued(c) = redeem(s, "code-1", "a") else {
        panic!("first redemption must issue");
    };
    assert_eq!(c.nonce.as_deref(), Some("n"));
    assert_eq!(c.audiences, vec!["https://api.example.test".to_string()]);
    assert!(
        !s.access_token_revoked("jti-a", Some("fam-a"))
            .expect("revoked?")
    );
    assert!(matches!(redeem(s, "code-1", "b"), Redeemed::Replayed));
    // What the first redemption issued is revoked, and stays revoked.
    assert!(s.access_token_revoked("jti-a", None).expect("revoked?"));
    let (_, fam) = s.refresh_token("rt-a").expect("get").expect("exists");
    assert!(fam.revoked_at.is_some());
    assert!(s.refresh_token("rt-b").expect("get").is_none());
}

fn a_rejected_code_is_burnt(s: &Store) {
    s.insert_code(&code("code-2")).expect("insert");
    let r = s
        .redeem_code("code-2", NOW, |_| Err::<Issuance, _>("wrong verifier"))
        .expect("redeem");
    assert!(matches!(r, Redeemed::Rejected("wrong verifier")));
    assert!(matches!(redeem(s, "code-2", "c"), Redeemed::Replayed));
}

fn concurrent_redemptions_of_one_code_have_one_winner(s: &Store) {
    s.insert_code(&code("code-3")).expect("insert");
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let results: Vec<&'static str> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    match redeem(s, "code-3", &format!("t{i}")) {
                        Redeemed::Issued(_) => "issued",
                        Redeemed::Replayed => "replayed",
                        Redeemed::NotFound => "not found",
                        Redeemed::Rejected(()) => "rejected",
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        results.iter().filter(|r| **r == "issued").count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| **r == "replayed").count(),
        n - 1,
        "{results:?}"
    );
}

fn refresh_rotation_reuse_and_grace(s: &Store) {
    s.insert_code(&code("code-4")).expect("insert");
    assert!(matches!(redeem(s, "code-4", "r"), Redeemed::Issued(_)));
    // rt-r -> rt-1
    let Rotated::Rotated { retry, .. } = rotate(s, "rt-r", "rt-1", NOW + 10, 30) else {
        panic!("first rotation");
    };
    assert!(!retry);
    // The response was lost; the app retries rt-r within the grace window: a retry, and the
    // first successor is replaced so only one stays valid.
    let Rotated::Rotated { retry, .. } = rotate(s, "rt-r", "rt-1b", NOW + 20, 30) else {
        panic!("retry within grace");
    };
    assert!(retry);
    let (superseded, _) = s.refresh_token("rt-1").expect("get").expect("kept");
    assert!(superseded.rotated_at.is_some() && superseded.successor_hash.is_none());
    // Normal use continues from the retry's successor.
    assert!(matches!(
        rotate(s, "rt-1b", "rt-2", NOW + 25, 30),
        Rotated::Rotated { retry: false, .. }
    ));
    // rt-r again: its successor has been used, so this is reuse, whatever the window.
    assert!(matches!(
        rotate(s, "rt-r", "rt-x", NOW + 26, 30),
        Rotated::Reused { .. }
    ));
    assert!(matches!(
        rotate(s, "rt-2", "rt-3", NOW + 27, 30),
        Rotated::Revoked
    ));
    assert!(matches!(
        rotate(s, "missing", "rt-y", NOW, 30),
        Rotated::NotFound
    ));

    // Outside the window, reuse revokes the family.
    s.insert_code(&code("code-5")).expect("insert");
    assert!(matches!(redeem(s, "code-5", "q"), Redeemed::Issued(_)));
    assert!(matches!(
        rotate(s, "rt-q", "rt-q1", NOW + 10, 30),
        Rotated::Rotated { .. }
    ));
    assert!(matches!(
        rotate(s, "rt-q", "rt-q2", NOW + 41, 30),
        Rotated::Reused { .. }
    ));
    let (_, fam) = s.refresh_token("rt-q1").expect("get").expect("exists");
    assert!(fam.revoked_at.is_some());
    assert!(
        s.access_token_revoked("jti-q", Some("fam-q"))
            .expect("revoked?")
    );
}

fn a_superseded_successor_presented_later_revokes_the_family(s: &Store) {
    s.insert_code(&code("code-8")).expect("insert");
    assert!(matches!(redeem(s, "code-8", "sp"), Redeemed::Issued(_)));
    // The app rotates rt-sp -> app-1; a thief replays rt-sp within the window and gets thief-1.
    assert!(matches!(
        rotate(s, "rt-sp", "app-1", NOW + 10, 30),
        Rotated::Rotated { retry: false, .. }
    ));
    assert!(matches!(
        rotate(s, "rt-sp", "thief-1", NOW + 12, 30),
        Rotated::Rotated { retry: true, .. }
    ));
    // The app's next refresh presents app-1: reuse, and the thief's token dies with the family.
    assert!(matches!(
        rotate(s, "app-1", "app-2", NOW + 20, 30),
        Rotated::Reused { .. }
    ));
    assert!(matches!(
        rotate(s, "thief-1", "thief-2", NOW + 21, 30),
        Rotated::Revoked
    ));
}

fn concurrent_rotations_of_one_refresh_token_have_one_winner(s: &Store) {
    s.insert_code(&code("code-6")).expect("insert");
    assert!(matches!(redeem(s, "code-6", "cc"), Redeemed::Issued(_)));
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let results: Vec<&'static str> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    // No grace window: every presentation after the first is reuse.
                    match rotate(s, "rt-cc", &format!("next-{i}"), NOW + 5, 0) {
                        Rotated::Rotated { .. } => "rotated",
                        Rotated::Reused { .. } => "reused",
                        Rotated::Revoked => "revoked",
                        _ => "other",
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        results.iter().filter(|r| **r == "rotated").count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| matches!(*r, "rotated" | "reused" | "revoked")),
        "{results:?}"
    );
}

type Precheck =
    Box<dyn FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), &'static str> + Send>;
type Check =
    Box<dyn FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, &'static str> + Send>;

/// One request of a batch: presents `presented` at `now`; `refuse` names the check that
/// refuses it, if any; otherwise its successor is `next`.
fn batched(
    presented: &str,
    next: &'static str,
    now: i64,
    grace: i64,
    refuse: Option<&'static str>,
) -> (String, i64, i64, Precheck, Check) {
    let precheck: Precheck = Box::new(move |_, _, _| match refuse {
        Some("precheck") => Err("precheck"),
        _ => Ok(()),
    });
    let check: Check = Box::new(move |old, _| match refuse {
        Some("check") => Err("check"),
        _ => {
            let mut n = refresh(next, &old.family_id);
            n.created_at = now;
            Ok(n)
        }
    });
    (presented.to_owned(), now, grace, precheck, check)
}

/// Rotations that arrive together are decided together on PostgreSQL (one read, one write
/// for all of them; see `store::rotation`): each must get exactly the outcome it would get
/// alone, and a refused one must write nothing. (On SQLite they run one after the other.)
fn a_batch_decides_each_rotation_as_if_alone(s: &Store) {
    for tag in ["ba", "bb", "bc", "bd", "be", "bf"] {
        s.insert_code(&code(&format!("code-{tag}")))
            .expect("insert");
        assert!(matches!(
            redeem(s, &format!("code-{tag}"), tag),
            Redeemed::Issued(_)
        ));
    }
    // bd's family is revoked; be's token was rotated long ago (reuse when presented again).
    s.revoke_family("fam-bd", "test", NOW + 2).expect("revoke");
    assert!(matches!(
        rotate(s, "rt-be", "be-1", NOW + 3, 30),
        Rotated::Rotated { .. }
    ));
    let answers = s
        .rotate_refresh_batch(vec![
            batched("rt-ba", "ba-1", NOW + 100, 30, None),
            // The same token again in the same batch: decided after the first, as a retry.
            batched("rt-ba", "ba-1b", NOW + 100, 30, None),
            batched("rt-bb", "bb-1", NOW + 100, 30, Some("precheck")),
            batched("rt-bc", "bc-1", NOW + 100, 30, Some("check")),
            batched("rt-bd", "bd-1", NOW + 100, 30, None),
            batched("rt-be", "be-2", NOW + 100, 30, None),
            batched("missing", "m-1", NOW + 100, 30, None),
            batched("rt-bf", "bf-1", NOW + 100, 30, None),
        ])
        .expect("batch");
    let outcomes: Vec<String> = answers
        .into_iter()
        .map(|a| match a.expect("answered") {
            Rotated::Rotated { retry, old, .. } => {
                format!("rotated {} retry={retry}", old.token_hash)
            }
            Rotated::Reused { family } => format!("reused {}", family.family_id),
            Rotated::Revoked => "revoked".into(),
            Rotated::NotFound => "not found".into(),
            Rotated::Rejected(e) => format!("rejected by {e}"),
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "rotated rt-ba retry=false",
            "rotated rt-ba retry=true",
            "rejected by precheck",
            "rejected by check",
            "revoked",
            "reused fam-be",
            "not found",
            "rotated rt-bf retry=false",
        ]
    );
    // The retry replaced the first successor: only ba-1b is current.
    let (first, _) = s.refresh_token("ba-1").expect("get").expect("kept");
    assert!(first.rotated_at.is_some() && first.successor_hash.is_none());
    let (retried, _) = s.refresh_token("ba-1b").expect("get").expect("stored");
    assert!(retried.rotated_at.is_none());
    let (bf, _) = s.refresh_token("rt-bf").expect("get").expect("kept");
    assert_eq!(bf.successor_hash.as_deref(), Some("bf-1"));
    assert_eq!(bf.rotated_at, Some(NOW + 100));
    let (bf1, _) = s.refresh_token("bf-1").expect("get").expect("stored");
    assert_eq!(
        (bf1.created_at, bf1.family_id.as_str(), bf1.rotated_at),
        (NOW + 100, "fam-bf", None)
    );
    // Refused ones wrote nothing: still current, and they rotate alone afterwards.
    for (tag, next) in [("bb", "bb-2"), ("bc", "bc-2")] {
        let (t, fam) = s
            .refresh_token(&format!("rt-{tag}"))
            .expect("get")
            .expect("kept");
        assert!(t.rotated_at.is_none() && fam.revoked_at.is_none(), "{tag}");
        assert!(s.refresh_token(&format!("{tag}-1")).expect("get").is_none());
        assert!(matches!(
            rotate(s, &format!("rt-{tag}"), next, NOW + 101, 30),
            Rotated::Rotated { retry: false, .. }
        ));
    }
    // Reuse revoked be's family; nothing was issued for the revoked or the missing token.
    let (_, be) = s.refresh_token("be-1").expect("get").expect("kept");
    assert!(be.revoked_at.is_some());
    for t in ["bd-1", "be-2", "m-1"] {
        assert!(s.refresh_token(t).expect("get").is_none(), "{t}");
    }
}

fn revoked_access_tokens_and_families(s: &Store) {
    assert!(!s.access_token_revoked("j1", None).expect("revoked?"));
    s.revoke_access_token("j1", NOW + 600).expect("revoke");
    s.revoke_access_token("j1", NOW + 600)
        .expect("revoking twice is fine");
    assert!(s.access_token_revoked("j1", None).expect("revoked?"));
    // A family nobody issued: its tokens are treated as revoked.
    assert!(
        s.access_token_revoked("j2", Some("no-such-family"))
            .expect("revoked?")
    );
    s.insert_code(&code("code-7")).expect("insert");
    assert!(matches!(redeem(s, "code-7", "f"), Redeemed::Issued(_)));
    assert!(
        !s.access_token_revoked("j3", Some("fam-f"))
            .expect("revoked?")
    );
    s.revoke_family("fam-f", "test", NOW)
        .expect("revoke family");
    assert!(
        s.access_token_revoked("j3", Some("fam-f"))
            .expect("revoked?")
    );
}

fn a_live_tokens_user_is_read_with_its_revocation_state(s: &Store) {
    let live = |jti, fam, uid| s.live_token_user(jti, fam, uid).expect("live_token_user");
    s.insert_user(&user("u1", "alice")).expect("user");
    s.insert_code(&code("code-l")).expect("insert");
    assert!(matches!(redeem(s, "code-l", "l"), Redeemed::Issued(_)));
    // Live, with and without its family; with the user, or none asked for.
    let found = live("jti-l", Some("fam-l"), Some("u1")).expect("live");
    assert_eq!(found.expect("user").username, "alice");
    assert_eq!(
        live("jti-x", None, Some("u1"))
            .expect("live")
            .expect("user")
            .user_id,
        "u1"
    );
    assert!(live("jti-l", Some("fam-l"), None).expect("live").is_none());
    // No such user: live, without one; an unknown family is revoked either way.
    assert!(
        live("jti-l", Some("fam-l"), Some("nobody"))
            .expect("live")
            .is_none()
    );
    assert!(live("jti-l", Some("no-such-family"), Some("u1")).is_none());
    assert!(live("jti-l", Some("no-such-family"), Some("nobody")).is_none());
    // Revoked by jti (with or without a family), then through the family.
    s.revoke_access_token("jti-x", NOW + 600).expect("revoke");
    assert!(live("jti-x", None, Some("u1")).is_none());
    assert!(live("jti-x", Some("fam-l"), Some("u1")).is_none());
    assert!(live("jti-x", None, Some("nobody")).is_none());
    s.revoke_family("fam-l", "test", NOW)
        .expect("revoke family");
    assert!(live("jti-l", Some("fam-l"), Some("u1")).is_none());
    assert!(live("jti-l", Some("fam-l"), None).is_none());
    assert!(live("jti-l", Some("fam-l"), Some("nobody")).is_none());
}

fn key(kid: &str, created_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "ES256".into(),
        public_jwk: "{}".into(),
        created_at,
        activates_at: created_at + 10,
        expires_at: None,
        sealed_private_key: Some("v1.sealed".into()),
    }
}

fn key_rotation_under_the_lock_happens_once(s: &Store) {
    s.insert_signing_key(&key("k0", NOW)).expect("first key");
    // Six replicas notice at once that a rotation is due; each decides under the lock.
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let inserted: Vec<Option<SigningKeyRecord>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    s.rotate_signing_key("ES256", &format!("replica {i}"), NOW + 100, |existing| {
                        let newest = existing.iter().map(|k| k.created_at).max()?;
                        (newest + 50 <= NOW + 100)
                            .then(|| (key(&format!("k-{i}"), NOW + 100), NOW + 1000))
                    })
                    .expect("rotate")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        inserted.iter().flatten().count(),
        1,
        "exactly one replica rotated"
    );
    let all = s.signing_keys().expect("keys");
    assert_eq!(all.len(), 2);
    let old = all.iter().find(|k| k.kid == "k0").expect("old key kept");
    assert_eq!(
        old.expires_at,
        Some(NOW + 1000),
        "old key scheduled for retirement"
    );
    assert_eq!(
        s.delete_expired_signing_keys(NOW + 1001).expect("delete"),
        vec!["k0".to_string()]
    );
}

fn dpop_client_flag_and_family_binding_round_trip(s: &Store) {
    let mut c = client("c-dpop");
    c.dpop_bound_access_tokens = true;
    s.insert_client(&c).expect("insert");
    assert!(
        s.client("c-dpop")
            .expect("get")
            .expect("exists")
            .dpop_bound_access_tokens
    );
    s.insert_client(&client("c-plain")).expect("insert");
    assert!(
        !s.client("c-plain")
            .expect("get")
            .expect("exists")
            .dpop_bound_access_tokens
    );

    s.insert_code(&code("code-dpop")).expect("insert");
    match redeem(s, "code-dpop", "d") {
        Redeemed::Issued(c) => assert_eq!(c.dpop_jkt.as_deref(), Some("jkt-code")),
        _ => panic!("the code should be issued"),
    }
    let (_, fam) = s.refresh_token("rt-d").expect("get").expect("exists");
    assert_eq!(fam.dpop_jkt.as_deref(), Some("jkt-fam-d"));
    // Rotation keeps the family, and so its binding.
    assert!(matches!(
        rotate(s, "rt-d", "rt-d2", NOW + 5, 0),
        Rotated::Rotated { .. }
    ));
    let (_, fam) = s.refresh_token("rt-d2").expect("get").expect("exists");
    assert_eq!(fam.dpop_jkt.as_deref(), Some("jkt-fam-d"));
}

fn a_dpop_proof_is_recorded_once_and_pruned_after_expiry(s: &Store) {
    assert!(s.record_dpop_proof("key-a", NOW + 60).expect("record"));
    assert!(
        !s.record_dpop_proof("key-a", NOW + 60).expect("replay"),
        "replay"
    );
    assert!(s.record_dpop_proof("key-b", NOW + 10).expect("record"));
    // Pruning keeps records whose proofs could still be accepted.
    assert_eq!(s.prune_dpop_proofs(NOW + 10).expect("prune"), 0);
    assert_eq!(s.prune_dpop_proofs(NOW + 11).expect("prune"), 1);
    assert!(
        !s.record_dpop_proof("key-a", NOW + 60)
            .expect("still a replay")
    );
    assert_eq!(s.prune_dpop_proofs(NOW + 61).expect("prune"), 1);
    assert!(
        s.record_dpop_proof("key-a", NOW + 200)
            .expect("gone, so fresh")
    );
}

fn concurrent_presentations_of_one_dpop_proof_have_one_winner(s: &Store) {
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let fresh: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    s.record_dpop_proof("same-proof", NOW + 60).expect("record")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| usize::from(h.join().expect("thread")))
            .sum()
    });
    assert_eq!(fresh, 1);
}

/// RFC 8628 §3.5: two polls of one device code at once (two replicas) must not both pass the
/// interval check; the one whose write comes second is told `raced` and its interval grows.
fn of_two_racing_device_polls_only_one_is_recorded(s: &Store) {
    s.insert_client(&client("tv")).expect("client");
    let g = DeviceGrant {
        device_hash: "dev-hash".into(),
        user_code: "BCDFGHJK".into(),
        client_id: "tv".into(),
        scope: "openid".into(),
        audiences: vec![],
        created_at: NOW,
        expires_at: NOW + 600,
        interval: 5,
        last_poll_at: None,
        status: DeviceStatus::Pending,
        code_hash: None,
    };
    assert!(s.insert_device_grant(&g).expect("insert"));
    // The first poll, and a second one that lands between the first one's read and write.
    let outer = s
        .poll_device_grant("dev-hash", NOW, 5, |seen| {
            assert_eq!(seen.last_poll_at, None);
            let inner = s
                .poll_device_grant("dev-hash", NOW, 5, |_| false)
                .expect("inner poll")
                .expect("found");
            assert!(!inner.raced, "the inner poll was recorded first");
            false
        })
        .expect("outer poll")
        .expect("found");
    assert!(outer.raced, "the outer poll lost the race");
    // The next poll sees the recorded poll and the grown interval.
    let next = s
        .poll_device_grant("dev-hash", NOW + 20, 5, |_| false)
        .expect("poll")
        .expect("found");
    assert!(!next.raced);
    assert_eq!(next.grant.last_poll_at, Some(NOW));
    assert_eq!(next.grant.interval, 10);
    assert!(
        s.poll_device_grant("unknown", NOW, 5, |_| false)
            .expect("poll")
            .is_none()
    );
}

// ---- admin: audit log, registration tokens, client replacement, bulk revocation ----------

fn audit_entry(event: &str, at: i64) -> AuditEntry {
    AuditEntry {
        id: 0,
        at,
        event: event.into(),
        actor: "admin:a1".into(),
        ip: Some("127.0.0.1".into()),
        target: Some("client:c1".into()),
        outcome: "success".into(),
        details: serde_json::json!({ "n": at }),
    }
}

fn audit_entries_are_numbered_paged_and_filtered(s: &Store) {
    let events = [
        "client.created",
        "client.disabled",
        "user.created",
        "clientx.odd",
        "a_b.c",
        "axb.c",
    ];
    for (i, e) in events.iter().enumerate() {
        s.insert_audit(&audit_entry(e, NOW + i as i64))
            .expect("insert audit");
    }
    let all = s
        .audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .expect("audit");
    assert_eq!(all.len(), events.len());
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
    assert_eq!(all[0].event, "client.created");
    assert_eq!(all[0].details, serde_json::json!({ "n": NOW }));
    assert_eq!(all[0].ip.as_deref(), Some("127.0.0.1"));
    // The newest two, oldest first; then forwards from an id.
    let newest = s
        .audit(&AuditQuery {
            limit: 2,
            ..Default::default()
        })
        .expect("audit");
    assert_eq!(
        newest.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        ["a_b.c", "axb.c"]
    );
    let after = s
        .audit(&AuditQuery {
            after: Some(all[1].id),
            limit: 2,
            ..Default::default()
        })
        .expect("audit");
    assert_eq!(after[0].id, all[2].id);
    assert_eq!(after.len(), 2);
    // Event filters: exact name or whole-part prefix; LIKE wildcards are literal.
    let ev = |e: &str| {
        s.audit(&AuditQuery {
            event: Some(e.into()),
            limit: 100,
            ..Default::default()
        })
        .expect("audit")
        .into_iter()
        .map(|x| x.event)
        .collect::<Vec<_>>()
    };
    assert_eq!(ev("client"), ["client.created", "client.disabled"]);
    assert_eq!(ev("client.disabled"), ["client.disabled"]);
    assert_eq!(ev("a_b"), ["a_b.c"]);
    assert!(ev("%").is_empty());
    assert!(ev("cli").is_empty());
}

fn audit_entries_filter_by_actor_client_and_time_and_are_pruned_in_batches(s: &Store) {
    let e = |event: &str, actor: &str, target: Option<&str>, at: i64| {
        let mut x = audit_entry(event, at);
        x.actor = actor.into();
        x.target = target.map(str::to_owned);
        s.insert_audit(&x).expect("insert audit");
    };
    e(
        "client.created",
        "admin:latchkey-console/user:root",
        Some("client:c1"),
        NOW,
    );
    e(
        "client.disabled",
        "admin:latchkey-console/user:rooted",
        Some("client:c2"),
        NOW + 10,
    );
    e("login.failed", "user:root", None, NOW + 20);
    e("token.issued", "client:c1", Some("user:u1"), NOW + 30);
    e("key.rotated", "admin:c1", Some("key:k"), NOW + 40);
    e("odd", "user:a%b", None, NOW + 50);
    let q = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        s.audit(&q)
            .expect("audit")
            .into_iter()
            .map(|x| x.event)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(&|q| q.actor = Some("admin:latchkey-console/user:root".into())),
        ["client.created", "client.disabled"],
        "a prefix of the actor"
    );
    assert_eq!(
        q(&|q| q.actor = Some("user:a%".into())),
        ["odd"],
        "LIKE wildcards are literal"
    );
    assert_eq!(
        q(&|q| q.actor = Some("user:%".into())),
        Vec::<String>::new()
    );
    assert_eq!(
        q(&|q| q.client = Some("c1".into())),
        ["client.created", "token.issued", "key.rotated"],
        "on it, by it, or by it as an admin client"
    );
    assert_eq!(
        q(&|q| {
            q.since = Some(NOW + 10);
            q.until = Some(NOW + 30);
        }),
        ["client.disabled", "login.failed"],
        "since is inclusive, until is not"
    );
    let all = s
        .audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .expect("audit");
    assert_eq!(
        q(&|q| {
            q.before = Some(all[3].id);
            q.limit = 2;
        }),
        ["client.disabled", "login.failed"],
        "the newest two before an id, oldest first"
    );
    // Retention: entries before NOW + 25, two per batch.
    assert_eq!(s.prune_audit(NOW + 25, 2).expect("prune"), 2);
    assert_eq!(s.prune_audit(NOW + 25, 2).expect("prune"), 1);
    assert_eq!(s.prune_audit(NOW + 25, 2).expect("prune"), 0);
    assert_eq!(q(&|_| {}), ["token.issued", "key.rotated", "odd"]);
}

fn users_are_searched_by_part_of_a_name_or_email_in_keyset_pages(s: &Store) {
    for (id, name, email) in [
        ("u1", "Alice", Some("alice@Example.com")),
        ("u2", "bob", Some("bob@example.org")),
        ("u3", "carol_x", None),
        ("u4", "carolyn", Some("c@EXAMPLE.com")),
    ] {
        let mut u = user(id, name);
        u.email = email.map(str::to_owned);
        s.insert_user(&u).expect("insert user");
    }
    let names = |q: &str, after: Option<&str>, limit: i64| {
        s.search_users(q, after, limit)
            .expect("search")
            .into_iter()
            .map(|u| u.username)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names("example.COM", None, 10),
        ["Alice", "carolyn"],
        "any case, email too"
    );
    assert_eq!(names("ALI", None, 10), ["Alice"]);
    assert_eq!(names("carol_", None, 10), ["carol_x"], "_ is literal");
    assert_eq!(names("%", None, 10), Vec::<String>::new(), "% is literal");
    assert_eq!(names("", None, 2), ["Alice", "bob"]);
    assert_eq!(names("", Some("bob"), 2), ["carol_x", "carolyn"]);
    assert_eq!(s.count_users().expect("count"), 4);
}

fn expired_grants_are_pruned_in_batches_and_live_ones_stay(s: &Store) {
    // A day and a bit after the families below end.
    let t = NOW + 2 * 86400 + 10;
    let session = |hash: &str, expires_at: i64| Session {
        session_hash: hash.into(),
        sid: format!("sid-{hash}"),
        user_id: "u1".into(),
        auth_time: NOW,
        created_at: NOW,
        expires_at,
        seen: Default::default(),
        amr: "pwd".into(),
    };
    s.insert_session(&session("sh-old", NOW + 100))
        .expect("insert");
    s.insert_session(&session("sh-live", t + 100))
        .expect("insert");
    s.revoke_access_token("j-old", NOW + 100).expect("revoke");
    s.revoke_access_token("j-live", t + 100).expect("revoke");
    // An old code that issued a family ending at NOW + 86400, rotated once.
    s.insert_code(&code("code-old")).expect("insert");
    assert!(matches!(redeem(s, "code-old", "old"), Redeemed::Issued(_)));
    assert!(matches!(
        rotate(s, "rt-old", "rt-old-2", NOW + 5, 0),
        Rotated::Rotated { .. }
    ));
    // A code expired less than a day ago, and a family that lives on.
    let mut recent = code("code-recent");
    recent.expires_at = t - 100;
    s.insert_code(&recent).expect("insert");
    s.insert_code(&code("code-live")).expect("insert");
    let live = s
        .redeem_code("code-live", NOW + 1, |_| {
            let mut i = issuance("fam-live", "rt-live", "jti-live");
            if let Some((f, _)) = i.family.as_mut() {
                f.expires_at = t + 1000;
            }
            Ok::<_, ()>(i)
        })
        .expect("redeem");
    assert!(matches!(live, Redeemed::Issued(_)));
    let p = s.prune_expired(t, 1000).expect("prune");
    assert_eq!(
        (
            p.sessions,
            p.revoked_access_tokens,
            p.authorization_codes,
            p.token_families,
            p.refresh_tokens
        ),
        (1, 1, 2, 1, 2),
        "the old session, revocation, both codes of the old day (code-old, code-live), the old family and its two tokens: {p:?}"
    );
    assert_eq!(
        s.prune_expired(t, 1000).expect("prune").total(),
        0,
        "nothing twice"
    );
    assert!(s.session("sh-live", t).expect("get").is_some());
    assert!(s.access_token_revoked("j-live", None).expect("revoked?"));
    assert!(
        !s.access_token_revoked("jti-x", Some("fam-live"))
            .expect("revoked?")
    );
    assert!(
        s.access_token_revoked("jti-x", Some("fam-old"))
            .expect("revoked?"),
        "an unknown family counts as revoked"
    );
    assert!(
        matches!(
            rotate(s, "rt-live", "rt-live-2", t, 0),
            Rotated::Rotated { .. }
        ),
        "the live family still rotates"
    );
    // Batches: three expired sessions, one per batch.
    for i in 0..3 {
        s.insert_session(&session(&format!("sh-b{i}"), NOW))
            .expect("insert");
    }
    for want in [1, 1, 1, 0] {
        assert_eq!(s.prune_expired(t, 1).expect("prune").sessions, want);
    }
}

fn reg_token(hash: &str, max_uses: Option<i64>, expires_at: i64) -> RegistrationToken {
    RegistrationToken {
        token_hash: hash.into(),
        created_at: NOW,
        expires_at,
        max_uses,
        uses: 0,
        created_by: "cli".into(),
        revoked_at: None,
        policy: None,
    }
}

fn registration_respects_the_initial_tokens_limits(s: &Store) {
    s.insert_registration_token(&reg_token("it-1", Some(1), NOW + 100))
        .expect("insert");
    s.insert_registration_token(&reg_token("it-2", None, NOW + 100))
        .expect("insert");
    assert_eq!(
        s.registration_token("it-1").expect("get"),
        Some(reg_token("it-1", Some(1), NOW + 100))
    );
    assert_eq!(
        s.register_client("it-1", &client("d1"), "rat-1", "{}", NOW)
            .expect("register"),
        Registered::Registered
    );
    assert_eq!(
        s.registration_access_token_hash("d1")
            .expect("get")
            .map(|(hash, policy)| (hash, policy.unwrap_or_default())),
        Some(("rat-1".to_owned(), "{}".to_owned()))
    );
    assert_eq!(
        s.client("d1").expect("get").expect("stored").client_name,
        "app"
    );
    assert_eq!(
        s.registration_token("it-1")
            .expect("get")
            .expect("row")
            .uses,
        1
    );
    assert_eq!(
        s.register_client("it-1", &client("d2"), "rat-2", "{}", NOW)
            .expect("register"),
        Registered::Refused("the initial access token has been used up")
    );
    assert!(
        s.client("d2").expect("get").is_none(),
        "nothing stored when refused"
    );
    assert_eq!(
        s.register_client("it-2", &client("d3"), "rat-3", "{}", NOW + 100)
            .expect("register"),
        Registered::Refused("the initial access token has expired")
    );
    assert_eq!(
        s.register_client("nope", &client("d4"), "rat-4", "{}", NOW)
            .expect("register"),
        Registered::Refused("the initial access token is invalid")
    );
    // A client id that exists already: a conflict, and the use is not counted.
    assert!(matches!(
        s.register_client("it-2", &client("d1"), "rat-5", "{}", NOW),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.registration_token("it-2")
            .expect("get")
            .expect("row")
            .uses,
        0
    );
}

fn concurrent_registrations_never_exceed_max_uses(s: &Store) {
    s.insert_registration_token(&reg_token("it-c", Some(2), NOW + 100))
        .expect("insert");
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let results: Vec<Registered> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = barrier.clone();
                scope.spawn(move || {
                    barrier.wait();
                    s.register_client(
                        "it-c",
                        &client(&format!("cc{i}")),
                        &format!("r{i}"),
                        "{}",
                        NOW,
                    )
                    .expect("register")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == Registered::Registered)
            .count(),
        2,
        "{results:?}"
    );
    assert_eq!(
        s.registration_token("it-c")
            .expect("get")
            .expect("row")
            .uses,
        2
    );
    assert_eq!(s.clients().expect("clients").len(), 2);
}

fn clients_are_replaced_and_deleted_with_their_grants(s: &Store) {
    s.insert_client(&client("c1")).expect("insert");
    let mut c = client("c1");
    c.client_name = "renamed".into();
    c.redirect_uris = vec!["https://app.example/cb".into()];
    c.client_type = ClientType::Confidential;
    c.secret_hash = Some("hash".into());
    assert!(s.replace_client(&c).expect("replace"));
    let got = s.client("c1").expect("get").expect("exists");
    assert_eq!(got.client_name, "renamed");
    assert_eq!(got.redirect_uris, c.redirect_uris);
    assert_eq!(got.secret_hash.as_deref(), Some("hash"));
    assert!(!s.replace_client(&client("missing")).expect("replace"));
    assert!(s.client("missing").expect("get").is_none());

    // A grant, a consent and an unused code for the client; deletion ends them all.
    s.insert_code(&code("code-d1")).expect("code");
    assert!(matches!(redeem(s, "code-d1", "d"), Redeemed::Issued(_)));
    s.insert_code(&code("code-d2")).expect("code");
    s.save_consent("u1", "c1", "openid", "", NOW)
        .expect("consent");
    assert!(s.delete_client("c1", NOW + 5).expect("delete"));
    assert!(s.client("c1").expect("get").is_none());
    assert!(s.consent("u1", "c1").expect("consent").is_none());
    assert!(
        s.access_token_revoked("jti-d", Some("fam-d"))
            .expect("revoked?")
    );
    assert!(
        matches!(redeem(s, "code-d2", "late"), Redeemed::Replayed),
        "unused code burnt"
    );
    assert!(!s.delete_client("c1", NOW + 6).expect("delete again"));
}

fn a_users_grants_are_revoked_in_bulk(s: &Store) {
    s.insert_code(&code("code-u1")).expect("code");
    assert!(matches!(redeem(s, "code-u1", "u"), Redeemed::Issued(_)));
    s.insert_code(&code("code-u2")).expect("code");
    s.save_consent("u1", "c1", "openid", "", NOW)
        .expect("consent");
    s.insert_session(&Session {
        session_hash: "sess-u1".into(),
        sid: "sid".into(),
        user_id: "u1".into(),
        auth_time: NOW,
        created_at: NOW,
        expires_at: NOW + 3600,
        seen: Default::default(),
        amr: "pwd".into(),
    })
    .expect("session");
    let r = s.revoke_user_grants("u1", NOW + 2).expect("revoke");
    assert_eq!(
        r,
        GrantsRevoked {
            token_families: 1,
            authorization_codes: 1,
            consents: 1,
            sessions: 1
        }
    );
    assert!(
        s.access_token_revoked("jti-u", Some("fam-u"))
            .expect("revoked?")
    );
    assert!(s.session("sess-u1", NOW + 3).expect("session").is_none());
    assert!(matches!(
        rotate(s, "rt-u", "rt-u2", NOW + 3, 30),
        Rotated::Revoked
    ));
    // Nothing left to revoke; the client-wide variant finds nothing either.
    assert_eq!(
        s.revoke_user_grants("u1", NOW + 4).expect("revoke"),
        GrantsRevoked::default()
    );
    assert_eq!(
        s.revoke_client_grants("c1", NOW + 4).expect("revoke"),
        GrantsRevoked::default()
    );
}

/// The server checkpoints SQLite's WAL in the background (`Store::checkpoint`) instead of on
/// a request's commit: a checkpoint copies every committed frame, and the next write starts
/// the WAL over (so it stays small), with nothing lost. PostgreSQL has nothing to do.
fn the_wal_is_checkpointed_on_demand_and_then_starts_over(s: &Store) {
    s.insert_code(&code("code-wal")).expect("insert");
    assert!(matches!(redeem(s, "code-wal", "w"), Redeemed::Issued(_)));
    let mut presented = "rt-w".to_owned();
    for i in 0..40 {
        let next = format!("rt-w{i}");
        assert!(matches!(
            rotate(s, &presented, &next, NOW + i, 0),
            Rotated::Rotated { .. }
        ));
        presented = next;
    }
    let Some(first) = s.checkpoint().expect("checkpoint") else {
        assert_eq!(s.backend().as_str(), "postgres");
        return;
    };
    assert_eq!(first.busy, 0);
    assert!(
        first.frames >= 40,
        "40 commits wrote {} frames",
        first.frames
    );
    assert_eq!(first.checkpointed, first.frames, "every frame copied");
    // One more commit: the WAL starts over from its first frame instead of growing.
    assert!(matches!(
        rotate(s, &presented, "rt-w-last", NOW + 50, 0),
        Rotated::Rotated { .. }
    ));
    let second = s.checkpoint().expect("checkpoint").expect("sqlite");
    assert!(
        second.frames < first.frames / 4,
        "after a checkpoint the WAL restarted: {} frames, was {}",
        second.frames,
        first.frames
    );
    // Nothing was lost on the way.
    let (last, _) = s.refresh_token("rt-w-last").expect("get").expect("present");
    assert!(last.rotated_at.is_none());
}

// ---- Store::write on SQLite: in place, or on the blocking pool when it would wait ---------

fn sqlite_path(db: &Db) -> std::path::PathBuf {
    db._dir.as_ref().expect("sqlite dir").path().join("t.db")
}

/// Inserts a user through [`Store::write`]; true when the work ran on the calling thread
/// (in place), false when it ran on the blocking pool.
async fn insert_user_in_write(s: &Store, id: &'static str, name: &'static str) -> bool {
    let caller = std::thread::current().id();
    let ran_on = s
        .write(move |s| {
            s.insert_user(&user(id, name))?;
            Ok(std::thread::current().id())
        })
        .await
        .expect("write");
    ran_on == caller
}

#[actix_web::test]
async fn an_in_place_write_runs_on_the_calling_thread_and_commits() {
    let db = sqlite().expect("sqlite");
    assert!(
        insert_user_in_write(&db.store, "u1", "alice").await,
        "ran in place"
    );
    // Committed: another connection (the pool's) sees it.
    assert!(db.store.user("u1").expect("read").is_some());
}

#[actix_web::test]
async fn an_in_place_write_that_fails_is_rolled_back_whole() {
    let db = sqlite().expect("sqlite");
    let outcome = db
        .store
        .write(|s| {
            s.insert_user(&user("u1", "alice"))?;
            // A failing statement inside the transaction (username taken) ...
            assert!(matches!(
                s.insert_user(&user("u2", "alice")),
                Err(StoreError::Conflict(_))
            ));
            s.insert_user(&user("u3", "carol"))?;
            // ... and then the work as a whole fails.
            Err::<(), _>(StoreError::Other("abandoned".into()))
        })
        .await;
    assert!(matches!(outcome, Err(StoreError::Other(m)) if m == "abandoned"));
    for id in ["u1", "u2", "u3"] {
        assert!(
            db.store.user(id).expect("read").is_none(),
            "{id} rolled back"
        );
    }
    // The in-place connection is left with no transaction open: the next write runs in place
    // and commits.
    assert!(
        insert_user_in_write(&db.store, "u4", "dave").await,
        "ran in place"
    );
    assert!(db.store.user("u4").expect("read").is_some());
}

/// While another connection (here: another process's, as the CLI's would be) holds SQLite's
/// write lock, `write` must neither fail nor stall the async worker: the in-place attempt is
/// refused at once and the work waits for the lock on the blocking pool, while the worker
/// keeps serving other tasks.
#[actix_web::test]
async fn a_write_that_would_wait_goes_to_the_blocking_pool_and_the_worker_runs_on() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let db = sqlite().expect("sqlite");
    let mut other =
        diesel::sqlite::SqliteConnection::establish(&sqlite_path(&db).display().to_string())
            .expect("second connection");
    other
        .batch_execute("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        other.batch_execute("COMMIT").expect("release the lock");
    });
    let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let counter = ticks.clone();
    let ticker = actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
            counter.set(counter.get() + 1);
        }
    });
    // The write waits for the lock and succeeds.
    let in_place = insert_user_in_write(&db.store, "u1", "alice").await;
    ticker.abort();
    release.join().expect("release thread");
    assert!(!in_place, "ran on the blocking pool");
    assert!(
        ticks.get() >= 3,
        "the worker ran other tasks while the write waited ({} ticks)",
        ticks.get()
    );
    assert!(db.store.user("u1").expect("read").is_some());
}

/// A read on SQLite may run on the in-place writer connection, which has no busy timeout:
/// while another connection holds the write lock with uncommitted changes, reads must still
/// answer (WAL readers need no lock), with the committed state only.
#[actix_web::test]
async fn reads_answer_while_another_connection_holds_the_write_lock() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let db = sqlite().expect("sqlite");
    db.store.insert_user(&user("u1", "alice")).expect("insert");
    let mut other =
        diesel::sqlite::SqliteConnection::establish(&sqlite_path(&db).display().to_string())
            .expect("second connection");
    other
        .batch_execute(
            "BEGIN IMMEDIATE; UPDATE users SET disabled = TRUE WHERE user_id = 'u1'; \
             DELETE FROM users WHERE user_id = 'nobody';",
        )
        .expect("uncommitted write");
    for _ in 0..3 {
        let seen = db
            .store
            .read(|s| s.user("u1"))
            .await
            .expect("the read answers")
            .expect("u1 exists");
        assert!(!seen.disabled, "only committed state is visible");
    }
    other.batch_execute("COMMIT").expect("commit");
    let seen = db
        .store
        .read(|s| s.user("u1"))
        .await
        .expect("read")
        .expect("u1");
    assert!(seen.disabled, "the commit is visible to the next read");
}

/// If the work inside an in-place write panics, its transaction must not stay open holding
/// SQLite's write lock: the connection is discarded by its pool, which rolls it back, and the
/// next write commits in place.
#[actix_web::test]
async fn a_panic_inside_an_in_place_write_leaves_no_lock_behind() {
    let db = sqlite().expect("sqlite");
    let store = db.store.clone();
    let unwound = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(store.write(|s| {
                s.insert_user(&user("u1", "alice"))?;
                panic!("the work fails half-way");
                #[allow(unreachable_code)]
                Ok(())
            }))
        }))
        .is_err()
    })
    .join()
    .expect("thread");
    assert!(unwound, "the panic reached the caller");
    assert!(db.store.user("u1").expect("read").is_none(), "rolled back");
    // No lock left behind: another connection that will not wait gets the write lock at once.
    {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut other =
            diesel::sqlite::SqliteConnection::establish(&sqlite_path(&db).display().to_string())
                .expect("second connection");
        other
            .batch_execute("PRAGMA busy_timeout = 0; BEGIN IMMEDIATE; ROLLBACK;")
            .expect("the write lock is free");
    }
    // And the store writes again (in place once its pool has replaced the connection).
    insert_user_in_write(&db.store, "u2", "bob").await;
    assert!(db.store.user("u2").expect("read").is_some());
}

/// Group commit: writes made on one worker while its transaction is open join it, each in a
/// savepoint: they commit together (one transaction for all), and one that fails is undone
/// alone.
#[actix_web::test]
async fn concurrent_writes_on_one_worker_share_one_commit_and_fail_alone() {
    let db = sqlite().expect("sqlite");
    let s = &db.store;
    let before = s.write_stats();
    let write = |id: &'static str, name: &'static str, then_fail: bool| {
        s.write(move |s| {
            s.insert_user(&user(id, name))?;
            if then_fail {
                return Err::<(), _>(StoreError::Other("abandoned".into()));
            }
            Ok(())
        })
    };
    let (a, b, c, d) = futures_util::future::join4(
        write("u1", "alice", false),
        write("u2", "bob", true),
        write("u3", "carol", false),
        // The username is taken by u1 (in the same transaction): refused, and only this one.
        write("u4", "alice", false),
    )
    .await;
    assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
    assert!(matches!(b, Err(StoreError::Other(m)) if m == "abandoned"));
    assert!(matches!(d, Err(StoreError::Conflict(_))), "{d:?}");
    for (id, kept) in [("u1", true), ("u2", false), ("u3", true), ("u4", false)] {
        assert_eq!(
            db.store.user(id).expect("read").is_some(),
            kept,
            "{id} seen by another connection"
        );
    }
    let after = s.write_stats();
    assert_eq!(after.1 - before.1, 4, "four writes");
    assert_eq!(after.0 - before.0, 1, "in one transaction");
    // The next write opens a transaction of its own.
    assert!(insert_user_in_write(s, "u5", "eve").await, "ran in place");
    assert_eq!(s.write_stats().0 - after.0, 1);
}

/// A write joined to another's transaction is acknowledged only once that transaction has
/// committed: when a member's work panics, which loses the transaction, no write of it is
/// acknowledged or kept, and the lock is not left behind.
#[actix_web::test]
async fn when_a_shared_transaction_is_lost_no_write_in_it_is_acknowledged() {
    let db = sqlite().expect("sqlite");
    let s = db.store.clone();
    let first = {
        let s = s.clone();
        actix_web::rt::spawn(async move { s.write(|s| s.insert_user(&user("u1", "alice"))).await })
    };
    let panicking = {
        let s = s.clone();
        actix_web::rt::spawn(async move {
            s.write(|s| {
                s.insert_user(&user("u2", "bob"))?;
                panic!("the work fails half-way");
                #[allow(unreachable_code)]
                Ok(())
            })
            .await
        })
    };
    let third = {
        let s = s.clone();
        actix_web::rt::spawn(async move { s.write(|s| s.insert_user(&user("u3", "carol"))).await })
    };
    let first = first.await.expect("first task");
    assert!(panicking.await.is_err(), "the panic ended its task");
    let third = third.await.expect("third task");
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "not acknowledged: {first:?}"
    );
    // The third write found the transaction gone: it waited for the lock on the blocking
    // pool and committed there, on its own.
    assert!(third.is_ok(), "{third:?}");
    assert!(db.store.user("u1").expect("read").is_none(), "u1 not kept");
    assert!(db.store.user("u2").expect("read").is_none(), "u2 not kept");
    assert!(db.store.user("u3").expect("read").is_some());
    insert_user_in_write(&s, "u4", "dave").await;
    assert!(db.store.user("u4").expect("read").is_some());
}

/// PostgreSQL servers keep clients and "not revoked" answers in memory. A lookup that missed
/// may add what it then read only if nothing was invalidated meanwhile: a read older than a
/// change must never be kept (it would outlive the change's notification).
#[actix_web::test]
async fn a_read_older_than_a_change_is_not_kept_in_memory() {
    const FIVE_SECONDS: std::time::Duration = std::time::Duration::from_secs(5);
    let Some(db) = postgres("read_older_than_a_change") else {
        return;
    };
    let s = &db.store;
    s.insert_client(&client("c-mem")).expect("insert");
    // Once the listening connection is up, a miss hands out a ticket.
    let start = std::time::Instant::now();
    let ticket = loop {
        match s.cached_client("c-mem") {
            Err(Some(t)) => break t,
            Err(None) if start.elapsed() < std::time::Duration::from_secs(5) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => panic!("no listening connection: {other:?}"),
        }
    };
    let before = s.client("c-mem").expect("read").expect("client");
    s.set_client_disabled("c-mem", true, NOW).expect("disable");
    s.remember_client(Some(ticket), &before);
    assert!(s.cached_client("c-mem").is_err(), "a stale client was kept");
    // A read after the change is kept, and then served from memory. The change's own
    // notification reaches the listening connection a little later and makes a ticket taken
    // before it stale (a refusal to keep is always safe), so this may take a few tries.
    eventually(
        "a read after the change to be kept",
        FIVE_SECONDS,
        || async {
            let Err(Some(ticket)) = s.cached_client("c-mem") else {
                return None;
            };
            let after = s.client("c-mem").expect("read").expect("client");
            s.remember_client(Some(ticket), &after);
            s.cached_client("c-mem").ok()
        },
    )
    .await;
    assert!(s.cached_client("c-mem").expect("from memory").disabled);

    // The same for "not revoked" answers: one read before a revocation is not kept...
    let Err(Some(ticket)) = s.cached_token_live("jti-mem", None) else {
        panic!("no ticket");
    };
    assert!(!s.access_token_revoked("jti-mem", None).expect("revoked?"));
    s.blocking(|s| s.revoke_access_token("jti-mem", NOW + 600))
        .await
        .expect("revoke");
    s.remember_live_token(Some(ticket), "jti-mem", None);
    assert!(
        s.cached_token_live("jti-mem", None).is_err(),
        "a stale answer was kept"
    );
    // ...and one read before another token's revocation is not kept either.
    let Err(Some(ticket)) = s.cached_token_live("jti-other", None) else {
        panic!("no ticket");
    };
    s.blocking(|s| s.revoke_access_token("jti-third", NOW + 600))
        .await
        .expect("revoke");
    s.remember_live_token(Some(ticket), "jti-other", None);
    assert!(s.cached_token_live("jti-other", None).is_err());
    // A fresh answer is kept (once the revocation's notification has been applied, as
    // above), and only for the family it was read with.
    eventually("a fresh answer to be kept", FIVE_SECONDS, || async {
        let Err(Some(ticket)) = s.cached_token_live("jti-other", None) else {
            return None;
        };
        s.remember_live_token(Some(ticket), "jti-other", None);
        s.cached_token_live("jti-other", None).ok()
    })
    .await;
    assert!(s.cached_token_live("jti-other", Some("fam-x")).is_err());
}

/// Rotations from concurrent requests (`rotate_refresh_async`, what the token endpoint
/// calls): on PostgreSQL queued and decided in batches, on SQLite in the shared write
/// transaction. Each distinct token rotates once; of many presentations of one token (no
/// grace window) exactly one rotates and the rest are reuse.
#[actix_web::test]
async fn concurrent_requests_rotate_each_token_once_on_both_backends() {
    let pg = postgres("concurrent_requests_rotate_each_token_once");
    if pg.is_none() {
        eprintln!("{}: PostgreSQL part skipped", crate::pg::ENV);
    }
    for db in [sqlite(), pg].into_iter().flatten() {
        let s = &db.store;
        let tags: Vec<String> = (0..20).map(|i| format!("as{i}")).collect();
        for tag in &tags {
            s.insert_code(&code(&format!("code-{tag}")))
                .expect("insert");
            assert!(matches!(
                redeem(s, &format!("code-{tag}"), tag),
                Redeemed::Issued(_)
            ));
        }
        let before = s.rotation_stats();
        let presentations = tags
            .iter()
            .map(|t| (format!("rt-{t}"), format!("{t}-next")))
            .chain((0..5).map(|i| ("rt-as0".to_owned(), format!("dup-{i}"))));
        let answers = futures_util::future::join_all(presentations.map(|(presented, next)| {
            s.rotate_refresh_async(
                presented,
                NOW + 50,
                0,
                |_, _, _| Ok::<_, ()>(()),
                move |old, _| {
                    let mut n = refresh(&next, &old.family_id);
                    n.created_at = NOW + 50;
                    Ok(n)
                },
            )
        }))
        .await;
        let mut rotated = std::collections::HashMap::new();
        for a in answers {
            match a.expect("answered") {
                Rotated::Rotated { old, retry, .. } => {
                    assert!(!retry);
                    *rotated.entry(old.token_hash).or_insert(0) += 1;
                }
                Rotated::Reused { family } => assert_eq!(family.family_id, "fam-as0"),
                Rotated::Revoked => {}
                other => panic!("unexpected outcome: {}", outcome_name(&other)),
            }
        }
        assert_eq!(rotated.len(), 20, "{rotated:?}");
        assert!(rotated.values().all(|n| *n == 1), "{rotated:?}");
        // The five extra presentations of rt-as0 were reuse: the family is revoked.
        let (_, fam) = s.refresh_token("rt-as0").expect("get").expect("kept");
        assert!(fam.revoked_at.is_some());
        let (_, fam) = s.refresh_token("rt-as1").expect("get").expect("kept");
        assert!(fam.revoked_at.is_none());
        if s.backend().as_str() == "postgres" {
            let after = s.rotation_stats();
            assert_eq!(
                after.1 - before.1,
                25,
                "every rotation went through a batch"
            );
            assert!(after.0 > before.0);
        }
    }
}

fn outcome_name<E>(r: &Rotated<E>) -> &'static str {
    match r {
        Rotated::NotFound => "not found",
        Rotated::Revoked => "revoked",
        Rotated::Reused { .. } => "reused",
        Rotated::Rejected(_) => "rejected",
        Rotated::Rotated { .. } => "rotated",
    }
}

/// PostgreSQL: a change another request makes between a batch's read and its write — the
/// token rotated, or its family revoked (on another replica, say) — stops the batch's write
/// for that token, which is then decided again under the family lock: as reuse (no grace
/// window here), or as revoked. Nothing the batch meant to write is written. (The change is
/// made from the request's own `check`, which runs between the two statements.)
#[test]
fn a_change_between_a_batchs_read_and_write_is_decided_again_under_the_lock() {
    let Some(db) = postgres("change_between_read_and_write") else {
        eprintln!("{} not set: skipped", crate::pg::ENV);
        return;
    };
    let s = &db.store;
    for tag in ["ca", "cb"] {
        s.insert_code(&code(&format!("code-{tag}")))
            .expect("insert");
        assert!(matches!(
            redeem(s, &format!("code-{tag}"), tag),
            Redeemed::Issued(_)
        ));
    }
    type Meddling<'a> = (
        String,
        i64,
        i64,
        Box<dyn FnMut(&RefreshToken, &TokenFamily, Option<&User>) -> Result<(), ()> + Send + 'a>,
        Box<dyn FnMut(&RefreshToken, &TokenFamily) -> Result<RefreshToken, ()> + Send + 'a>,
    );
    /// Presents `rt-{tag}`; `meddle` runs once, between the batch's read and its write.
    fn meddling<'a>(tag: &'static str, meddle: Box<dyn FnOnce() + Send + 'a>) -> Meddling<'a> {
        let mut meddle = Some(meddle);
        (
            format!("rt-{tag}"),
            NOW + 100,
            0,
            Box::new(|_, _, _| Ok(())),
            Box::new(move |old, fam| {
                if let Some(m) = meddle.take() {
                    m();
                }
                Ok(old.successor(
                    format!("{tag}-1"),
                    NOW + 100,
                    fam.expires_at,
                    Default::default(),
                ))
            }),
        )
    }
    let answers = s
        .rotate_refresh_batch(vec![
            meddling(
                "ca",
                Box::new(|| {
                    assert!(matches!(
                        rotate(s, "rt-ca", "other-1", NOW + 99, 0),
                        Rotated::Rotated { retry: false, .. }
                    ))
                }),
            ),
            meddling(
                "cb",
                Box::new(|| s.revoke_family("fam-cb", "test", NOW + 99).expect("revoke")),
            ),
        ])
        .expect("batch");
    let outcomes: Vec<&str> = answers
        .iter()
        .map(|a| outcome_name(a.as_ref().expect("answered")))
        .collect();
    assert_eq!(outcomes, ["reused", "revoked"]);
    for t in ["ca-1", "cb-1"] {
        assert!(s.refresh_token(t).expect("get").is_none(), "{t} written");
    }
    let (presented, fam) = s.refresh_token("rt-ca").expect("get").expect("kept");
    assert_eq!(presented.successor_hash.as_deref(), Some("other-1"));
    assert!(fam.revoked_at.is_some(), "reuse revoked the family");
}

fn attested_keys_count_up_once_and_go_with_their_client(s: &Store) {
    use latchkey::protocol::attestation::{Mode, Policy};
    use latchkey::store::AttestedKey;
    let mut c = client("att");
    c.attestation = Some(Policy {
        mode: Mode::Required,
        apple_app_ids: vec!["ABCDE12345.com.example.app".into()],
        ..Policy::default()
    });
    s.insert_client(&c).expect("insert");
    assert_eq!(
        s.client("att").expect("get").expect("exists").attestation,
        c.attestation,
        "the policy round-trips"
    );
    let key = AttestedKey {
        client_id: "att".into(),
        key_id: "kid-1".into(),
        public_key: "pk".into(),
        app_id: "ABCDE12345.com.example.app".into(),
        environment: "production".into(),
        counter: 0,
        created_at: NOW,
        last_used_at: NOW,
    };
    assert!(s.insert_attested_key(&key).expect("insert key"));
    assert!(
        !s.insert_attested_key(&key).expect("again"),
        "a retry changes nothing"
    );
    assert!(
        s.advance_attested_counter("att", "kid-1", 1, NOW + 1)
            .expect("advance")
    );
    assert!(
        !s.advance_attested_counter("att", "kid-1", 1, NOW + 2)
            .expect("same counter")
    );
    assert!(
        !s.advance_attested_counter("att", "kid-1", 0, NOW + 2)
            .expect("lower counter")
    );
    assert!(
        !s.advance_attested_counter("other", "kid-1", 5, NOW + 2)
            .expect("other client")
    );
    let got = s
        .attested_key("att", "kid-1")
        .expect("read")
        .expect("exists");
    assert_eq!((got.counter, got.last_used_at), (1, NOW + 1));
    assert!(s.attested_key("other", "kid-1").expect("read").is_none());
    // Editing the client keeps its keys; deleting it removes them.
    assert!(s.replace_client(&c).expect("replace"));
    assert!(s.attested_key("att", "kid-1").expect("read").is_some());
    assert!(s.delete_client("att", NOW + 3).expect("delete"));
    assert!(s.attested_key("att", "kid-1").expect("read").is_none());
}
