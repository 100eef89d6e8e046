//! Private servers that speak TLS with a certificate from a [`TestCa`](crate::tls::TestCa):
//! a `redis-server` with a TLS port, and a PostgreSQL instance of its own (`initdb` in a temp
//! dir, `ssl = on`, only TLS connections allowed over TCP). Each is stopped when dropped.
//! Without `redis-server` or PostgreSQL's server programs a test calls
//! [`skip_or_fail`](crate::skip_or_fail) and gets `None`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::skip_or_fail;
use crate::tls::IssuedFiles;

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).map(|addr| addr.port()).expect("a free port")
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `redis-server` whose only port speaks TLS (clients are not asked for certificates).
pub struct TlsRedis {
    pub port: u16,
    child: Child,
}

impl TlsRedis {
    /// Starts one serving `files`; `None` (after `skip_or_fail`) without `redis-server`.
    pub fn start_or_skip(files: &IssuedFiles, ca_file: &Path, dir: &Path) -> Option<Self> {
        let port = free_port();
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--tls-cert-file")
            .arg(&files.cert)
            .arg("--tls-key-file")
            .arg(&files.key)
            .arg("--tls-ca-cert-file")
            .arg(ca_file)
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                skip_or_fail("redis-server is not installed (needed for a Redis with TLS)");
                return None;
            }
            Err(error) => panic!("redis-server could not be started: {error}"),
        };
        let redis = Self { port, child };
        wait_for_port(port, "redis-server with TLS");
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL instance of its own in `dir`, accepting TCP connections over TLS only.
pub struct TlsPostgres {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

impl TlsPostgres {
    /// Initialises and starts one serving `files`; `None` (after `skip_or_fail`) without
    /// PostgreSQL's server programs (`COURTSIDE_TEST_POSTGRES_BIN`, else the newest
    /// `/usr/lib/postgresql/*/bin`).
    pub fn start_or_skip(files: &IssuedFiles, dir: &Path) -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            skip_or_fail("PostgreSQL's initdb was not found (set COURTSIDE_TEST_POSTGRES_BIN); needed for a PostgreSQL with TLS");
            return None;
        };
        // initdb refuses to run as root: then the instance is the postgres user's.
        let as_postgres = is_root();
        std::fs::create_dir_all(dir).expect("postgres dir");
        let data = dir.join("data");
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::copy(&files.cert, &cert).expect("copy certificate");
        std::fs::copy(&files.key, &key).expect("copy key");
        set_mode(&key, 0o600);
        if as_postgres {
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir), "chown");
        }
        let postgres = Self { port: free_port(), bin, data, as_postgres };
        postgres.run_as_owner("initdb", |command| {
            command.arg("-D").arg(&postgres.data).args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        });
        let settings = format!(
            "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\n",
            postgres.port,
            dir.display(),
            cert.display(),
            key.display()
        );
        append(&postgres.data.join("postgresql.conf"), &settings);
        std::fs::write(postgres.data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n").expect("pg_hba.conf");
        if as_postgres {
            run(Command::new("chown").args(["postgres:postgres"]).arg(postgres.data.join("pg_hba.conf")), "chown");
        }
        let log = dir.join("postgres.log");
        postgres.run_as_owner("pg_ctl", |command| {
            command.arg("-D").arg(&postgres.data).arg("-l").arg(&log).args(["-w", "-t", "30", "start"]);
        });
        wait_for_port(postgres.port, "PostgreSQL with TLS");
        Some(postgres)
    }

    /// A URL for the `postgres` database with `parameters` (e.g. `sslmode=require`).
    pub fn url(&self, parameters: &str) -> String {
        let separator = if parameters.is_empty() { "" } else { "?" };
        format!("postgres://postgres@127.0.0.1:{}/postgres{separator}{parameters}", self.port)
    }

    fn run_as_owner(&self, program: &str, arguments: impl FnOnce(&mut Command)) {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        arguments(&mut command);
        run(&mut command, program);
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.data.clone();
        self.run_as_owner("pg_ctl", |command| {
            command.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
        });
    }
}

fn postgres_bin() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("COURTSIDE_TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("{what} could not run: {error}"));
    assert!(output.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open postgresql.conf");
    file.write_all(text.as_bytes()).expect("append to postgresql.conf");
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("key permissions");
}
#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}
