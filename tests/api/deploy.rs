//! `docker-compose.yml` is valid: checked with `docker compose config` (or the standalone
//! `docker-compose`), which needs no container engine. Skips with a message when neither is
//! installed (`.ci/run` installs Debian's `docker-compose`).

use std::process::Command;

fn compose() -> Option<Vec<&'static str>> {
    let works = |cmd: &[&str]| {
        Command::new(cmd[0])
            .args(&cmd[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    [&["docker", "compose"][..], &["docker-compose"][..]]
        .into_iter()
        .find(|c| works(c))
        .map(<[&str]>::to_vec)
}

fn config(cmd: &[&str], kek: Option<&str>) -> std::process::Output {
    let mut c = Command::new(cmd[0]);
    c.args(&cmd[1..])
        .args(["--file", "docker-compose.yml", "config"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LATCHKEY_KEY_ENCRYPTION_KEY");
    if let Some(k) = kek {
        c.env("LATCHKEY_KEY_ENCRYPTION_KEY", k);
    }
    c.output().expect("run compose config")
}

#[test]
fn docker_compose_file_is_valid_and_requires_a_shared_kek() {
    let Some(cmd) = compose() else {
        eprintln!(
            "SKIPPED docker compose validation: neither `docker compose` nor `docker-compose` is installed"
        );
        return;
    };
    let ok = config(&cmd, Some("c2hhcmVkLWtleS1lbmNyeXB0aW9uLWtleS0zMi1ieXRlcw"));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for service in [
        "postgres:",
        "latchkey-a:",
        "latchkey-b:",
        "lb:",
        "resource-api:",
    ] {
        assert!(out.contains(service), "service {service} missing:\n{out}");
    }
    assert!(out.contains("LATCHKEY_DATABASE_URL: postgres://"), "{out}");
    // Both replicas get the one KEK from the environment.
    assert_eq!(
        out.matches("LATCHKEY_KEY_ENCRYPTION_KEY: c2hhcmVk").count(),
        2,
        "{out}"
    );
    // Without a KEK, the file refuses to render instead of starting replicas that would each
    // generate their own.
    let missing = config(&cmd, None);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("LATCHKEY_KEY_ENCRYPTION_KEY"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
