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
