//! Verifications per second on one core: latchkey-verify vs a raw jsonwebtoken `decode` of the
//! same token with a pre-parsed key and a prepared `Validation`.
//!
//! `cargo bench -p latchkey-verify` runs the measurement; without `--bench` (e.g. from
//! `cargo test --benches`) it only checks that every variant accepts the token.
//!
//! Method: for each algorithm, samples of a fixed batch of verifications alternate between the
//! variants, in rotating order (so drift in CPU frequency hits all of them alike); each sample
//! takes ~100 ms; the median time per verification is reported. One thread: these are per-core
//! numbers. Then the cost of refusing forgeries that never reach signature verification, and
//! the cost of a DPoP-checked request (RFC 9449: token + ES256 proof + replay cache) against a
//! bearer-only one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use latchkey_verify::{Claims, DpopRequest, Verifier};

const SAMPLES: usize = 21;
const SAMPLE_TIME: Duration = Duration::from_millis(100);

struct Case {
    name: &'static str,
    token: String,
    raw_key: DecodingKey,
    raw_validation: Validation,
    verifier: Verifier,
}

fn raw_validation(alg: Algorithm, issuer: &str) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = 30;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[issuer]);
    v.set_audience(&[AUDIENCE]);
    v
}

fn raw_key(key: &TestKey) -> DecodingKey {
    let j = &key.jwk;
    match key.alg {
        "ES256" => {
            DecodingKey::from_ec_components(j["x"].as_str().unwrap(), j["y"].as_str().unwrap())
                .unwrap()
        }
        "RS256" => {
            DecodingKey::from_rsa_components(j["n"].as_str().unwrap(), j["e"].as_str().unwrap())
                .unwrap()
        }
        _ => DecodingKey::from_ed_components(j["x"].as_str().unwrap()).unwrap(),
    }
}

/// Nanoseconds per call of `f`, median over `SAMPLES` samples, interleaved across variants.
fn measure(variants: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    // Calibrate a batch size so that one sample takes about SAMPLE_TIME.
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < SAMPLE_TIME / 4 {
        (variants[0].1)();
        calls += 1;
    }
    let batch = (calls * 4).max(1);
    for (_, f) in variants.iter_mut() {
        for _ in 0..batch / 4 {
            f(); // warm-up
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(SAMPLES); variants.len()];
    let n = variants.len();
    for round in 0..SAMPLES {
        // Rotate which variant goes first, so no variant systematically follows another.
        for i in (0..n).map(|k| (k + round) % n) {
            let f = &mut variants[i].1;
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            samples[i].push(t.elapsed().as_nanos() as f64 / f64::from(batch));
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

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let keys = [
        TestKey::es256("ec-1"),
        TestKey::rsa("rsa-1", "RS256"),
        TestKey::eddsa("ed-1"),
    ];
    // A realistic JWKS: three algorithms plus two rotated-out-but-published keys.
    let old = [TestKey::es256("ec-0"), TestKey::es256("ec-00")];
    let all: Vec<&TestKey> = keys.iter().chain(old.iter()).collect();
    let mock = MockIssuer::start(jwks(&all));
    let issuer = mock.issuer();
    // A long cooldown: the unknown-kid rejections measured below must not cause refetches.
    let verifier = runtime
        .block_on(
            Verifier::builder(&issuer, AUDIENCE)
                .jwks_url(mock.jwks_url())
                .refetch_cooldown(Duration::from_secs(3600))
                .build(),
        )
        .unwrap();

    let cases: Vec<Case> = keys
        .iter()
        .map(|k| Case {
            name: k.alg,
            token: k.token(&claims(&issuer)),
            raw_key: raw_key(k),
            raw_validation: raw_validation(k.alg.parse().unwrap(), &issuer),
            verifier: verifier.clone(),
        })
        .collect();

    for case in &cases {
        let raw: Claims =
            jsonwebtoken::decode::<Claims>(&case.token, &case.raw_key, &case.raw_validation)
                .unwrap()
                .claims;
        let ours = case.verifier.verify_cached(&case.token).unwrap();
        assert_eq!(raw, ours, "{}", case.name);
        let ours_async = runtime.block_on(case.verifier.verify(&case.token)).unwrap();
        assert_eq!(raw, ours_async, "{}", case.name);
    }
    if !bench_mode {
        dpop_vs_bearer(&keys[0], &issuer, &jwks(&all), false);
        println!("benchmark sanity check passed (run `cargo bench` to measure)");
        return;
    }

    println!(
        "{:<7} {:>16} {:>16} {:>16} {:>8} {:>8}",
        "alg", "raw decode", "verify_cached", "verify (async)", "ratio", "async"
    );
    for case in &cases {
        let mut raw = || {
            black_box(
                jsonwebtoken::decode::<Claims>(
                    black_box(&case.token),
                    &case.raw_key,
                    &case.raw_validation,
                )
                .unwrap(),
            );
        };
        let mut cached = || {
            black_box(case.verifier.verify_cached(black_box(&case.token)).unwrap());
        };
        let mut awaited = || {
            black_box(
                runtime
                    .block_on(case.verifier.verify(black_box(&case.token)))
                    .unwrap(),
            );
        };
        let ns = measure(&mut [
            ("raw", &mut raw),
            ("cached", &mut cached),
            ("async", &mut awaited),
        ]);
        let per_sec = |ns: f64| format!("{:.0}/s ({:.1}µs)", 1e9 / ns, ns / 1e3);
        println!(
            "{:<7} {:>16} {:>16} {:>16} {:>7.3}× {:>7.3}×",
            case.name,
            per_sec(ns[0]),
            per_sec(ns[1]),
            per_sec(ns[2]),
            ns[1] / ns[0],
            ns[2] / ns[0],
        );
    }

    // Forgeries refused before any signature check: the cost an attacker can impose per request.
    let none = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": "ec-1"});
    let none_token = format!("{}.", signing_input(&none, &claims(&issuer)));
    let stranger = TestKey::es256("unknown").token(&claims(&issuer));
    let mut refuse_none = || {
        black_box(verifier.verify_cached(black_box(&none_token)).unwrap_err());
    };
    let mut refuse_unknown = || {
        black_box(verifier.verify_cached(black_box(&stranger)).unwrap_err());
    };
    let ns = measure(&mut [("none", &mut refuse_none), ("kid", &mut refuse_unknown)]);
    println!(
        "refusal without signature check: alg none {:.2}µs, unknown kid {:.2}µs",
        ns[0] / 1e3,
        ns[1] / 1e3
    );
    assert_eq!(mock.jwks_requests(), 1, "the benchmark must not refetch");

    dpop_vs_bearer(&keys[0], &issuer, &jwks(&all), bench_mode);
}

/// A DPoP-checked request (`verify_dpop_cached`: the token, then an ES256 proof — parse, key
/// from the `jwk`, signature, `htm`/`htu`/`iat`/`ath`, thumbprint = `cnf.jkt` — then the
/// replay cache) against a bearer-only one (`verify_cached`) with the same kind of token. Every
/// DPoP call needs a proof never seen before, so proofs are made up front, outside the timing.
fn dpop_vs_bearer(signer: &TestKey, issuer: &str, jwks_json: &str, bench_mode: bool) {
    const URL: &str = "https://api.example.test/me";
    let verifier = Verifier::builder(issuer, AUDIENCE)
        // Proofs are made before the measurement starts: keep them acceptable throughout.
        .dpop_proof_max_age(Duration::from_secs(3600))
        .build_static(jwks_json.as_bytes())
        .unwrap();
    let holder = TestKey::es256("holder");
    let bound = signer.token(&with(
        claims(issuer),
        serde_json::json!({"cnf": {"jkt": jwk_thumbprint(&holder)}}),
    ));
    let bearer = signer.token(&claims(issuer));
    let n = if bench_mode { 40_000 } else { 2 };
    let proofs: Vec<String> = (0..n)
        .map(|i| dpop_proof(&holder, "GET", URL, &bound, &format!("jti-{i}")))
        .collect();
    let request = |proof: &str| {
        verifier
            .verify_dpop_cached(
                &bound,
                &DpopRequest {
                    proof,
                    method: "GET",
                    url: URL,
                },
            )
            .map(|c| c.sub)
    };
    assert!(request(&proofs[0]).is_ok());
    assert!(request(&proofs[0]).is_err(), "a replay is refused");
    assert!(verifier.verify_cached(&bearer).is_ok());
    if !bench_mode {
        return;
    }
    let mut next = 1;
    let mut dpop = || {
        black_box(request(black_box(&proofs[next])).unwrap());
        next += 1;
    };
    let mut plain = || {
        black_box(verifier.verify_cached(black_box(&bearer)).unwrap());
    };
    let ns = measure(&mut [("bearer", &mut plain), ("dpop", &mut dpop)]);
    println!(
        "ES256 token, bearer-only (verify_cached): {:.0}/s ({:.1}µs); DPoP-checked with an ES256 proof (verify_dpop_cached): {:.0}/s ({:.1}µs); DPoP / bearer {:.2}×",
        1e9 / ns[0],
        ns[0] / 1e3,
        1e9 / ns[1],
        ns[1] / 1e3,
        ns[1] / ns[0]
    );
}
