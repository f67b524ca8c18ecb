//! A throwaway `redis-server` on a free loopback port, killed on drop; in
//! plaintext, or speaking only TLS as managed Redis offerings do, with a
//! certificate authority of its own made for the test.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use doumi_runtime::{redis::RedisTarget, settings::Problems};

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    child: Child,
    port: u16,
    /// Set when it speaks only TLS.
    tls: Option<Tls>,
}

/// A TLS server's files: its certificate and key, and the CA that signed it.
struct Tls {
    dir: PathBuf,
}

impl Tls {
    /// A CA and a server certificate for 127.0.0.1 and localhost, written
    /// to a directory of their own.
    fn make() -> anyhow::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = std::env::temp_dir().join(format!("doumi-redis-tls-{}", rand_suffix()));
        std::fs::create_dir_all(&dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
            .signed_by(&key, &ca)?;
        std::fs::write(dir.join("ca.pem"), ca.pem())?;
        std::fs::write(dir.join("server.pem"), server.pem())?;
        std::fs::write(dir.join("server.key"), key.serialize_pem())?;
        Ok(Self { dir })
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Tls {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

impl RedisServer {
    /// Starts `redis-server` (from `$REDIS_SERVER_BIN` or the PATH) with no
    /// persistence, and waits until it answers PING.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    /// The same, speaking only TLS (`rediss://`), its certificate signed by
    /// a CA made for it ([`Self::ca_file`]).
    pub async fn start_tls() -> anyhow::Result<Self> {
        Self::start_with(Some(Tls::make()?)).await
    }

    async fn start_with(tls: Option<Tls>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let server = Self {
            child: spawn(port, tls.as_ref())?,
            port,
            tls,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn ca_file(&self) -> Option<String> {
        self.tls.as_ref().map(|tls| tls.file("ca.pem"))
    }

    /// Kills the server, as a crash or an outage would.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is
    /// answered, as with a Redis stuck behind a slow disk or a full network.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {signal} failed: {status}");
        Ok(())
    }

    /// Starts it again on the same port (empty: nothing is persisted) and
    /// waits until it answers PING.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.child = spawn(self.port, self.tls.as_ref())?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = self.target().client()?;
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("redis-server on port {} did not come up", self.port)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// How a service reaches it: through the services' own validation of
    /// DOUMI_REDIS_URL and DOUMI_REDIS_CA_FILE.
    pub fn target(&self) -> RedisTarget {
        let mut problems = Problems::new();
        let target = problems.redis(&Some(self.url()), &self.ca_file(), &None);
        match problems.finish(target.flatten()) {
            Ok(target) => target,
            Err(error) => panic!("the test Redis's own settings: {error}"),
        }
    }

    /// A fresh connection for assertions on what the catalog stored.
    pub async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(self
            .target()
            .client()?
            .get_multiplexed_async_connection()
            .await?)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(port: u16, tls: Option<&Tls>) -> anyhow::Result<Child> {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned());
    let port = port.to_string();
    let ports: Vec<String> = match tls {
        None => vec!["--port".into(), port],
        // TLS only: the plaintext port closed, clients not asked for a
        // certificate (as managed offerings do).
        Some(tls) => vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port,
            "--tls-cert-file".into(),
            tls.file("server.pem"),
            "--tls-key-file".into(),
            tls.file("server.key"),
            "--tls-ca-cert-file".into(),
            tls.file("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
    };
    Command::new(&bin)
        .args(&ports)
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {bin} ({e}); scripts/test installs it"))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
