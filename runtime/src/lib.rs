//! What every doumi binary shares and nothing more: telemetry set-up, the
//! shutdown signal, settings validation and the gRPC server frame (health and
//! reflection included).
#![forbid(unsafe_code)]

pub mod breaker;
pub mod deadline;
pub mod grpc;
pub mod metrics;
pub mod ports;
pub mod rate;
pub mod redis;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod throttle;

use std::{future::Future, net::SocketAddr, pin::Pin, time::Duration};

use tokio::net::TcpListener;

/// The shutdown signal handed to a service's `run`.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long in-flight work may take after SIGTERM before the process gives
/// up. The gateway holds an early attempt up to 10 s (its reply policy
/// `hold`), then hands its unfinished work to the other replicas; a bot or
/// catalog call cut at the end is sent again to another replica by its
/// caller. Kubernetes' grace period is the preStop pause (5 s), this, and a
/// margin (the manifests say 20 s; their checks hold them to this).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(12);

/// The whole life of a service binary, so each `main.rs` stays a few lines:
/// settings (every bad one listed, exit 64), telemetry, the bound listener,
/// `run` until SIGTERM or SIGINT, then a drain bounded by [`DRAIN_TIMEOUT`]
/// and the last spans exported.
pub async fn service_main<C, E, Fut>(
    name: &'static str,
    telemetry: &telemetry::TelemetryArgs,
    config: impl FnOnce(&mut settings::Problems) -> Option<C>,
    listen: impl FnOnce(&C) -> SocketAddr,
    run: impl FnOnce(C, TcpListener, Shutdown) -> Fut,
) where
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error,
{
    let mut problems = settings::Problems::new();
    let export = telemetry.trace_export(&mut problems);
    let config = config(&mut problems);
    let config = problems.finish(config).unwrap_or_else(|e| e.exit());
    let binary = format!("doumi-{name}");
    let traces = match telemetry::init(
        &binary,
        telemetry.format,
        export.as_ref(),
        telemetry.service_name.as_deref(),
    ) {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("error: {name} cannot export traces: {error}");
            std::process::exit(1)
        }
    };
    metrics::register_service(name);
    let addr = listen(&config);
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: {name} cannot listen on {addr}: {error}");
            std::process::exit(1)
        }
    };
    let (signalled, drain_started) = tokio::sync::oneshot::channel::<()>();
    let shutdown: Shutdown = Box::pin(async move {
        shutdown::signal().await;
        let _ = signalled.send(());
    });
    let drain_deadline = async {
        if drain_started.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = run(config, listener, shutdown) => {
            if let Err(error) = result {
                let error = causes(&error);
                tracing::error!(%error, "{name} stopped");
                traces.shutdown().await;
                std::process::exit(1);
            }
            traces.shutdown().await;
        }
        () = drain_deadline => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "{name} did not drain in time");
            std::process::exit(1);
        }
    }
}

/// An error with every cause under it ("setting up the Redis cache failed:
/// invalid certificate: UnknownIssuer"): the top line alone rarely says what
/// to fix.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
