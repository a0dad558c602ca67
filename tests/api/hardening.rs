//! Issue 18, the transport and output findings: idle and trickling connections are closed
//! (finding 10), audit entries for refused admin calls are rate-limited (finding 6), and
//! control characters never reach a log or a terminal raw (finding 5).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;

const IDLE_CONNECTIONS: usize = 2000;

/// Reads until the server closes the connection; what it sent, and when it closed.
async fn until_closed(mut s: TcpStream, deadline: Duration) -> Option<(Vec<u8>, Instant)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return Instant::now(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let at = tokio::time::timeout(deadline, read).await.ok()?;
    Some((got, at))
}

fn open_files_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return 0;
    }
    l.rlim_cur
}

#[actix_web::test]
async fn idle_and_trickling_connections_are_closed_and_health_stays_fast() {
    // Both ends of every connection live in this process.
    let needed = (2 * IDLE_CONNECTIONS + 200) as u64;
    let limit = open_files_limit();
    if limit < needed {
        eprintln!("SKIPPED: idle connection test needs {needed} open files (ulimit -n is {limit})");
        return;
    }
    let app = TestApp::spawn().await;
    let addr = format!("127.0.0.1:{}", app.port);
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    // Health checks stay fast with all of them open and silent.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = app.get("/healthz").await;
        assert_eq!(r.status, reqwest::StatusCode::OK);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(1),
        "health check took {slowest:?}"
    );
    // A request head trickled a byte at a time, and a body trickled after a complete head.
    let head = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            let start = Instant::now();
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            (start, until_closed(s, Duration::from_secs(15)).await)
        }
    });
    let body = tokio::spawn({
        let addr = addr.clone();
        async move {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            let start = Instant::now();
            s.write_all(
                b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
            )
            .await
            .expect("head");
            let (mut rd, mut wr) = s.into_split();
            let trickle = tokio::spawn(async move {
                for _ in 0..60 {
                    if wr.write_all(b"a").await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            let closed = tokio::time::timeout(Duration::from_secs(25), async {
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) | Err(_) => return Instant::now(),
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            })
            .await
            .ok();
            trickle.abort();
            (start, closed, got)
        }
    });
    // Every silent connection is closed by the server within the head timeout (+ slack).
    let deadline = latchkey::app::REQUEST_HEAD_TIMEOUT + Duration::from_secs(5);
    let waits = idle.into_iter().map(|s| until_closed(s, deadline));
    let closed = futures_util::future::join_all(waits).await;
    let still_open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(
        still_open, 0,
        "idle connections left open after {deadline:?}"
    );
    let last = closed
        .iter()
        .flatten()
        .map(|(_, at)| *at)
        .max()
        .expect("closed");
    assert!(last.duration_since(opened) < deadline + Duration::from_secs(5));

    let (start, head) = head.await.expect("head task");
    let (got, at) = head.expect("a trickled request head is cut off");
    assert!(
        at.duration_since(start) < latchkey::app::REQUEST_HEAD_TIMEOUT + Duration::from_secs(3),
        "{:?}",
        at.duration_since(start)
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    let (start, closed, got) = body.await.expect("body task");
    let at = closed.expect("a trickled body is cut off");
    assert!(
        at.duration_since(start) < latchkey::http::BODY_TIMEOUT + Duration::from_secs(4),
        "{:?}",
        at.duration_since(start)
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("invalid_request"), "{text}");
    // And the server still serves.
    assert_eq!(app.get("/healthz").await.status, reqwest::StatusCode::OK);
}
