//! A throwaway `redis-server` on a free loopback port, killed on drop.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` (from `$REDIS_SERVER_BIN` or the PATH) with no
    /// persistence, and waits until it answers PING.
    pub async fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let server = Self {
            child: spawn(port)?,
            port,
        };
        server.wait_ready().await?;
        Ok(server)
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
        self.child = spawn(self.port)?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
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
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A fresh connection for assertions on what the catalog stored.
    pub async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(redis::Client::open(self.url())?
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

fn spawn(port: u16) -> anyhow::Result<Child> {
    let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned());
    Command::new(&bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {bin} ({e}); scripts/test installs it"))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
