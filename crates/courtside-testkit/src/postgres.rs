//! Test databases: every test creates its own database, named `courtside_test_<pid>_<random>`,
//! on the server at `COURTSIDE_TEST_POSTGRES_URL` (default [`DEFAULT_ADMIN_URL`]), and drops it
//! (ending its connections) when done.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use tokio_postgres::{Client, NoTls};

use crate::skip_or_fail;

/// The server and database used to create and drop the test databases.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

const ADMIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The administrative URL: `COURTSIDE_TEST_POSTGRES_URL`, or the local default.
pub fn admin_url() -> String {
    std::env::var("COURTSIDE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

async fn connect(url: &str) -> Result<Client, String> {
    let connecting = tokio_postgres::connect(url, NoTls);
    let (client, connection) = tokio::time::timeout(ADMIN_CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no answer within {ADMIN_CONNECT_TIMEOUT:?}"))?
        .map_err(|error| error_chain(&error))?;
    tokio::spawn(connection);
    Ok(client)
}

/// An error and its causes: the driver's own message leaves the cause out.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A fresh, empty database for this test, or `None` (after [`skip_or_fail`]) without PostgreSQL.
pub async fn fresh_database() -> Option<TestDatabase> {
    let admin_url = admin_url();
    match connect(&admin_url).await {
        Ok(_) => Some(TestDatabase::create(&admin_url).await),
        Err(reason) => {
            skip_or_fail(&format!("PostgreSQL not reachable at {admin_url} ({reason}); set COURTSIDE_TEST_POSTGRES_URL"));
            None
        }
    }
}

/// A database created for one test; dropped (with its connections ended) when this is dropped.
pub struct TestDatabase {
    /// The URL to hand to the store.
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a new, empty database on the server at `admin_url`; panics if it cannot.
    pub async fn create(admin_url: &str) -> TestDatabase {
        let name = format!("courtside_test_{}_{:08x}", std::process::id(), rand::rng().random::<u32>());
        let admin = connect(admin_url).await.unwrap_or_else(|reason| panic!("connect to {admin_url}: {reason}"));
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        TestDatabase { url: database_url(admin_url, &name), name, admin_url: admin_url.to_string() }
    }

    /// A URL for a fresh, empty schema `name` of this database: the store's tables are created
    /// there (it leads the `search_path`). Cheaper than a database per store.
    pub async fn fresh_schema_url(&self, name: &str) -> String {
        self.connect().await.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("create schema");
        let options = format!("-c search_path={name}");
        if self.url.contains("://") {
            let separator = if self.url.contains('?') { '&' } else { '?' };
            format!("{}{separator}options={}", self.url, options.replace(' ', "%20").replace('=', "%3D"))
        } else {
            format!("{} options='{options}'", self.url)
        }
    }

    /// A plain connection to this database, for a test that looks at or tampers with the tables.
    pub async fn connect(&self) -> Client {
        connect(&self.url).await.expect("connect to the test database")
    }

    /// A store URL for this database whose host and port are `127.0.0.1:port` (a proxy).
    pub fn url_via(&self, port: u16) -> String {
        let config: tokio_postgres::Config = self.url.parse().expect("database url");
        let user = config.get_user().unwrap_or("postgres");
        let password = config.get_password().map(|p| format!(":{}", String::from_utf8_lossy(p))).unwrap_or_default();
        format!("postgres://{user}{password}@127.0.0.1:{port}/{}", self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop has no runtime of its own to await on: use a short-lived one on another thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let admin = connect(&admin_url).await.ok()?;
                admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("note: could not drop test database {}", self.name);
        }
    }
}

/// `admin_url` with its database replaced by `database` (URL or `key=value` form).
pub fn database_url(admin_url: &str, database: &str) -> String {
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = admin_url.strip_prefix(scheme) {
            let (location, query) = match rest.find('?') {
                Some(at) => rest.split_at(at),
                None => (rest, ""),
            };
            let authority = location.split('/').next().unwrap_or_default();
            return format!("{scheme}{authority}/{database}{query}");
        }
    }
    format!("{admin_url} dbname={database}")
}

/// The PostgreSQL server the test databases live on, as a socket address (for a proxy).
pub fn server_address() -> SocketAddr {
    let config: tokio_postgres::Config = admin_url().parse().expect("admin url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) if host != "localhost" => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().expect("a numeric host in COURTSIDE_TEST_POSTGRES_URL")
}
