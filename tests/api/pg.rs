//! PostgreSQL for the tests: `LATCHKEY_TEST_POSTGRES_URL` names a server (`.ci/run` points it
//! at the local one); every test gets a fresh database of its own, dropped when it ends.
//! Without the variable, PostgreSQL tests print that they skipped and pass.

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;

pub const ENV: &str = "LATCHKEY_TEST_POSTGRES_URL";

/// A database created for one test.
pub struct PgDb {
    pub url: String,
    admin_url: String,
    name: String,
}

impl PgDb {
    /// Runs SQL on this database as an operator would (psql), outside any server.
    pub fn sql(&self, sql: &str) {
        let mut conn = PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("{}: cannot connect: {e}", self.name));
        conn.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A fresh, empty database, or `None` (with a message) when PostgreSQL is not configured.
    pub fn create(test: &str) -> Option<PgDb> {
        let Ok(admin_url) = std::env::var(ENV) else {
            eprintln!(
                "SKIPPED {test} on PostgreSQL: set {ENV}=postgres://user@host:port/db to run it"
            );
            return None;
        };
        let name = format!("latchkey_t_{}", latchkey::secret::random_id());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("{ENV}={admin_url}: cannot connect: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let mut url = url::Url::parse(&admin_url).expect("LATCHKEY_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(PgDb {
            url: url.to_string(),
            admin_url,
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut (every connection closed, new ones
/// refused) and restore: the database "going down" and "coming back" without touching the
/// shared server.
pub struct Proxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
}

struct ProxyState {
    up: std::sync::atomic::AtomicBool,
    conns: std::sync::Mutex<Vec<std::net::TcpStream>>,
}

impl Proxy {
    pub fn start(target: &str) -> Proxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(ProxyState {
            up: true.into(),
            conns: Default::default(),
        });
        let target = target.to_owned();
        let st = state.clone();
        std::thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { continue };
                if !st.up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let Ok(outbound) = TcpStream::connect(&target) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                if let (Ok(a), Ok(b), Ok(c), Ok(d)) = (
                    inbound.try_clone(),
                    outbound.try_clone(),
                    inbound.try_clone(),
                    outbound.try_clone(),
                ) {
                    if let Ok(mut conns) = st.conns.lock() {
                        conns.push(c);
                        conns.push(d);
                    }
                    pipe(a, outbound);
                    pipe(b, inbound);
                }
            }
        });
        Proxy { port, state }
    }

    /// The database disappears: open connections are cut, new ones refused.
    pub fn cut(&self) {
        self.state
            .up
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut conns) = self.state.conns.lock() {
            for c in conns.drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    pub fn restore(&self) {
        self.state
            .up
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).expect("database URL");
        u.set_host(Some("127.0.0.1")).expect("host");
        u.set_port(Some(self.port)).expect("port");
        u.to_string()
    }

    /// host:port of the PostgreSQL server `url` names.
    pub fn target_of(url: &str) -> String {
        let u = url::Url::parse(url).expect("database URL");
        format!(
            "{}:{}",
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(5432)
        )
    }
}
