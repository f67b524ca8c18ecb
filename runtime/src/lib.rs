//! What every doumi binary shares and nothing more: telemetry set-up, the
//! shutdown signal, settings validation and the gRPC server frame (health and
//! reflection included).
#![forbid(unsafe_code)]

pub mod grpc;
pub mod metrics;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

/// Binds a listener for a service, or exits with one clear line: a port that
/// is taken is an operator problem, not a crash.
pub async fn bind_or_exit(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on {addr}: {error}");
            std::process::exit(1)
        }
    }
}
