//! The `latchkey` command line against a running server sharing its database, as in
//! production: changes take effect without a restart; secrets are shown once and never listed.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{API, CliOutput, TestApp, sha256_b64url, verify_offline};

#[track_caller]
fn json_of(out: &CliOutput) -> Value {
    assert_eq!(out.code, Some(0), "command failed: {out:?}");
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed something that is not JSON ({e}): {out:?}"))
}

#[track_caller]
fn assert_fails(out: &CliOutput, stderr_mentions: &str) {
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "expected a non-zero exit: {out:?}"
    );
    assert!(
        out.stderr.contains(stderr_mentions),
        "stderr should mention {stderr_mentions:?}: {out:?}"
    );
    assert!(
        !out.stderr.contains("panicked"),
        "a CLI error must not be a panic: {out:?}"
    );
}

#[actix_web::test]
async fn client_add_json_then_the_secret_works_against_the_running_server() {
    let app = TestApp::spawn().await;
    let out = app
        .cli(
            &[
                "client",
                "add",
                "--name",
                "svc",
                "--type",
                "confidential",
                "--grant",
                "client_credentials",
                "--scope",
                "api:read",
                "--audience",
                API,
                "--json",
            ],
            None,
        )
        .await;
    let v = json_of(&out);
    let id = v["client_id"].as_str().expect("client_id");
    let secret = v["client_secret"].as_str().expect("client_secret");
    assert!(
        secret.len() >= 43,
        "a secret of at least 256 bits: {secret}"
    );
    assert_eq!(v["client_name"], "svc");
    assert_eq!(v["grant_types"], serde_json::json!(["client_credentials"]));
    assert_eq!(v["scope"], "api:read");

    let r = app
        .post_token(&[("grant_type", "client_credentials")], Some((id, secret)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let jwks = app.jwks().await;
    let verified = verify_offline(&token, &jwks, &app.issuer, API).expect("valid token");
    assert_eq!(verified.claims["client_id"], id);
}

#[actix_web::test]
async fn public_client_add_prints_a_null_secret() {
    let app = TestApp::spawn().await;
    let out = app
        .cli(
            &[
                "client",
                "add",
                "--name",
                "mobile",
                "--type",
                "public",
                "--redirect-uri",
                "com.example.app:/cb",
                "--json",
            ],
            None,
        )
        .await;
    let v = json_of(&out);
    assert!(v["client_id"].is_string());
    assert!(v["client_secret"].is_null(), "{v}");
}

#[actix_web::test]
async fn client_list_and_show_never_print_the_secret() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let secret = client.secret().to_owned();
    let hash = sha256_b64url(&secret);

    let list = app.cli(&["client", "list", "--json"], None).await;
    let v = json_of(&list);
    let made = crate::helpers::made_clients(&v);
    let ids: Vec<&str> = made
        .iter()
        .filter_map(|c| c["client_id"].as_str())
        .collect();
    assert_eq!(ids, [client.client_id.as_str()]);

    let show = app
        .cli(&["client", "show", &client.client_id, "--json"], None)
        .await;
    let shown = json_of(&show);
    assert_eq!(shown["client_id"], client.client_id.as_str());
    assert_eq!(shown["client_name"], "svc");

    let list_text = app.cli(&["client", "list"], None).await;
    let show_text = app.cli(&["client", "show", &client.client_id], None).await;
    for out in [&list, &show, &list_text, &show_text] {
        assert_eq!(out.code, Some(0), "{out:?}");
        for s in [&out.stdout, &out.stderr] {
            assert!(!s.contains(&secret), "the secret was printed: {out:?}");
            assert!(!s.contains(&hash), "the secret's hash was printed: {out:?}");
        }
    }
    for c in v.as_array().expect("array").iter().chain([&shown]) {
        for k in ["client_secret", "secret_hash", "client_secret_hash"] {
            assert!(c.get(k).is_none(), "{k} printed: {c}");
        }
    }
}

#[actix_web::test]
async fn rotate_secret_refuses_the_old_and_accepts_the_new() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    app.token_for(&client, &[]).await;

    let out = app
        .cli(
            &["client", "rotate-secret", &client.client_id, "--json"],
            None,
        )
        .await;
    let v = json_of(&out);
    assert_eq!(v["client_id"], client.client_id.as_str());
    let new_secret = v["client_secret"].as_str().expect("new secret");
    assert_ne!(new_secret, client.secret());

    let old = app
        .post_token(&[("grant_type", "client_credentials")], client.basic())
        .await;
    old.assert_oauth_error(401, "invalid_client");
    let new = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&client.client_id, new_secret)),
        )
        .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text());
}

#[actix_web::test]
async fn client_disable_shows_in_list_and_show() {
    let app = TestApp::spawn().await;
    let client = app.add_service_client().await;
    let out = app
        .cli(&["client", "disable", &client.client_id, "--json"], None)
        .await;
    json_of(&out);
    let shown = json_of(
        &app.cli(&["client", "show", &client.client_id, "--json"], None)
            .await,
    );
    assert_eq!(shown["disabled"], true, "{shown}");
}

#[actix_web::test]
async fn user_add_reads_the_password_from_stdin_and_list_hides_the_hash() {
    let app = TestApp::spawn().await;
    let password = "correct horse battery staple";
    let out = app
        .cli(
            &[
                "user",
                "add",
                "--username",
                "alice",
                "--email",
                "alice@example.test",
                "--password-stdin",
                "--json",
            ],
            Some(&format!("{password}\n")),
        )
        .await;
    let created = json_of(&out);
    assert_eq!(created["username"], "alice");
    assert!(created["sub"].is_string(), "{created}");

    let list = app.cli(&["user", "list", "--json"], None).await;
    let users = json_of(&list);
    let users = users.as_array().expect("array");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["username"], "alice");
    assert_eq!(users[0]["email"], "alice@example.test");
    assert_eq!(users[0]["sub"], created["sub"]);
    for out in [&out, &list] {
        assert!(!out.stdout.contains(password), "{out:?}");
        assert!(
            !out.stdout.contains("$argon2"),
            "password hash printed: {out:?}"
        );
        assert!(!out.stdout.contains("password"), "{out:?}");
    }

    // The same username again is refused.
    let again = app
        .cli(
            &["user", "add", "--username", "alice", "--password-stdin"],
            Some("another password\n"),
        )
        .await;
    assert_fails(&again, "alice");
}

#[actix_web::test]
async fn user_add_refuses_a_password_not_from_stdin_or_too_short() {
    let app = TestApp::spawn().await;
    let no_flag = app.cli(&["user", "add", "--username", "bob"], None).await;
    assert_fails(&no_flag, "--password-stdin");
    let short = app
        .cli(
            &["user", "add", "--username", "bob", "--password-stdin"],
            Some("short\n"),
        )
        .await;
    assert_fails(&short, "password");
    let empty = app
        .cli(
            &["user", "add", "--username", "bob", "--password-stdin"],
            Some(""),
        )
        .await;
    assert_fails(&empty, "password");
    let users = json_of(&app.cli(&["user", "list", "--json"], None).await);
    assert_eq!(users, serde_json::json!([]), "nothing was created");
}

#[actix_web::test]
async fn bad_invocations_exit_non_zero_with_a_message() {
    let app = TestApp::spawn().await;
    let cases: [(&[&str], &str); 8] = [
        (&["client", "add", "--type", "confidential"], "--name"),
        (
            &["client", "add", "--name", "x", "--type", "secret"],
            "secret",
        ),
        (
            &[
                "client",
                "add",
                "--name",
                "x",
                "--type",
                "public",
                "--grant",
                "client_credentials",
            ],
            "client_credentials",
        ),
        (
            &[
                "client",
                "add",
                "--name",
                "x",
                "--type",
                "confidential",
                "--grant",
                "password",
            ],
            "password",
        ),
        (&["client", "show", "no-such-client"], "no-such-client"),
        (
            &["client", "rotate-secret", "no-such-client"],
            "no-such-client",
        ),
        (&["keys", "rotate", "--alg", "HS256"], "HS256"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, mention) in cases {
        let out = app.cli(args, None).await;
        assert_fails(&out, mention);
        assert!(
            out.stdout.trim().is_empty(),
            "{args:?}: errors go to stderr: {out:?}"
        );
    }
    // Nothing was created by the failed adds.
    let v = json_of(&app.cli(&["client", "list", "--json"], None).await);
    assert_eq!(crate::helpers::made_clients(&v), Vec::<Value>::new());
}

#[actix_web::test]
async fn rotate_secret_of_a_public_client_is_refused() {
    let app = TestApp::spawn().await;
    let public = app
        .add_client(&[
            "--name",
            "mobile",
            "--type",
            "public",
            "--redirect-uri",
            "com.example.app:/cb",
        ])
        .await;
    let out = app
        .cli(&["client", "rotate-secret", &public.client_id], None)
        .await;
    assert_fails(&out, "public");
}

/// Invalid values, each with the key the error message must name.
const INVALID: [(&str, &str, &str); 8] = [
    ("access_token_ttl", "\"abc\"", "access_token_ttl"),
    ("access_token_ttl", "0", "access_token_ttl"),
    ("issuer", "\"http://x/\"", "issuer"),
    ("issuer", "\"ftp://id.example.test\"", "issuer"),
    ("issuer", "\"https://id.example.test?q=1\"", "issuer"),
    ("database_url", "\"mysql://db\"", "database_url"),
    ("access_token_alg", "\"none\"", "access_token_alg"),
    ("db_pool_size", "0", "db_pool_size"),
];

#[actix_web::test]
async fn invalid_environment_configuration_names_the_key() {
    let app = TestApp::spawn().await;
    for (key, toml_value, names) in INVALID {
        let var = format!("LATCHKEY_{}", key.to_ascii_uppercase());
        let value = toml_value.trim_matches('"');
        let out = app
            .cli_with_env(&["client", "list", "--json"], None, &[(&var, value)])
            .await;
        assert!(
            matches!(out.code, Some(c) if c != 0),
            "{var}={value}: expected a non-zero exit: {out:?}"
        );
        assert!(
            out.stderr.contains(names),
            "{var}={value}: stderr should name {names:?}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{var}={value}: {out:?}");
    }
}

#[actix_web::test]
async fn invalid_configuration_file_names_the_key() {
    let app = TestApp::spawn().await;
    for (i, (key, toml_value, names)) in INVALID.into_iter().enumerate() {
        let path = app.dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, format!("{key} = {toml_value}\n")).expect("write toml");
        let path = path.display().to_string();
        let out = app
            .cli_no_env(&["--config", &path, "client", "list", "--json"], None)
            .await;
        assert!(
            matches!(out.code, Some(c) if c != 0),
            "{key} = {toml_value}: expected a non-zero exit: {out:?}"
        );
        assert!(
            out.stderr.contains(names),
            "{key} = {toml_value}: stderr should name {names:?}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{out:?}");
    }

    let path = app.dir.path().join("unknown.toml");
    std::fs::write(&path, "acces_token_ttl = 60\n").expect("write toml");
    let path = path.display().to_string();
    let out = app
        .cli_no_env(&["--config", &path, "client", "list"], None)
        .await;
    assert_fails(&out, "acces_token_ttl");

    let missing = app.dir.path().join("missing.toml").display().to_string();
    let out = app
        .cli_no_env(&["--config", &missing, "client", "list"], None)
        .await;
    assert_fails(&out, "missing.toml");
}

#[actix_web::test]
async fn environment_alone_points_the_cli_at_the_servers_database() {
    // No latchkey.toml: LATCHKEY_DATABASE_URL / LATCHKEY_KEYS_DIR / LATCHKEY_ISSUER only.
    let app = TestApp::spawn().await;
    let out = app
        .cli_env_only(
            &[
                "client",
                "add",
                "--name",
                "svc",
                "--type",
                "confidential",
                "--grant",
                "client_credentials",
                "--scope",
                "api:read",
                "--audience",
                API,
                "--json",
            ],
            None,
            &[],
        )
        .await;
    let v = json_of(&out);
    let (id, secret) = (
        v["client_id"].as_str().expect("client_id"),
        v["client_secret"].as_str().expect("client_secret"),
    );
    let r = app
        .post_token(&[("grant_type", "client_credentials")], Some((id, secret)))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a client added with env-only configuration must exist on the server: {}",
        r.text()
    );
    assert!(
        !app.dir.path().join("env-only/data").exists(),
        "the CLI fell back to the default ./data/latchkey.db"
    );
}

#[actix_web::test]
async fn the_cli_works_before_the_first_serve() {
    // A fresh directory with no database yet: the CLI creates and migrates it.
    let app = TestApp::spawn().await;
    let fresh = app.dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).expect("mkdir");
    let db = fresh.join("new.db");
    let toml = fresh.join("fresh.toml");
    std::fs::write(
        &toml,
        format!(
            "database_url = {}\nkeys_dir = {}\n",
            serde_json::Value::from(format!("sqlite://{}", db.display())),
            serde_json::Value::from(fresh.join("keys").display().to_string()),
        ),
    )
    .expect("write toml");
    let toml = toml.display().to_string();
    let out = app
        .cli_no_env(&["--config", &toml, "client", "list", "--json"], None)
        .await;
    assert_eq!(json_of(&out), serde_json::json!([]));
    assert!(db.exists(), "the database was created");
    let out = app
        .cli_no_env(
            &[
                "--config",
                &toml,
                "client",
                "add",
                "--name",
                "svc",
                "--type",
                "confidential",
                "--json",
            ],
            None,
        )
        .await;
    assert!(json_of(&out)["client_secret"].is_string());
    let out = app
        .cli_no_env(&["--config", &toml, "client", "list", "--json"], None)
        .await;
    assert_eq!(crate::helpers::made_clients(&json_of(&out)).len(), 1);
    // ... and that client is not on the running server, which uses another database.
    let listed = json_of(&app.cli_no_env(&["client", "list", "--json"], None).await);
    assert_eq!(crate::helpers::made_clients(&listed), Vec::<Value>::new());
}
