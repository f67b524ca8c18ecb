//! The frame every doumi gRPC server runs in: standard health checking,
//! reflection for grpcurl, traces and metrics on every call (`observe`), and
//! a graceful drain on shutdown; and the one way doumi's services dial each
//! other.

mod balance;
mod hop;
mod link;
pub mod observe;
mod target;

pub use balance::{DialSettings, MAX_RETRIES};

use hop::{
    CONNECTION_WINDOW, GRPC_TIMEOUT, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES,
    STREAM_WINDOW, parse_grpc_timeout,
};
pub use target::{Target, TargetError};

use std::{convert::Infallible, future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    body::Body,
    server::NamedService,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
pub use tonic_health::server::HealthReporter;
use tonic_health::{ServingStatus, pb::health_server::HealthServer, server::HealthService};

use crate::deadline::Deadline;

/// Calls one client connection may have in progress; past it calls are shed
/// at once with RESOURCE_EXHAUSTED (which callers turn into "busy") rather
/// than queued behind the work already there.
const MAX_CALLS_PER_CONNECTION: usize = 512;

/// A channel to every replica of another doumi service, every call traced
/// and counted.
pub type Channel = observe::Client<balance::Replicas>;

/// A channel to every replica `target` names, each call to the next replica
/// in turn and moved to another when its replica never started it.
/// Connections are made as calls need them: the service starts (and answers
/// with an apology) while the other is still starting or down. Needs a tokio
/// runtime (a name is resolved in the background).
pub fn channel(target: &Target, settings: DialSettings) -> Channel {
    observe::Client::new(balance::Replicas::new(target, settings))
}

/// Why a gRPC server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("building the reflection service failed")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves `service` on a pre-bound `listener` until `shutdown` resolves.
///
/// Health reports the service SERVING from the start and NOT_SERVING as soon as
/// shutdown begins, so load balancers stop sending work while in-flight calls
/// finish. `reporter` is the caller's when it also reports the health of what
/// it depends on (`HealthReporter::new()` otherwise).
pub async fn serve<S>(
    service: S,
    descriptors: &[u8],
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    reporter: HealthReporter,
) -> Result<(), ServeError>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let health = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    reporter.set_serving::<S>().await;

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(descriptors)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc's error details, so grpcurl can show an error's
            // ErrorInfo, RetryInfo and BadRequest.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let routes = Routes::new(service)
        .add_service(health)
        .add_service(reflection().build_v1()?)
        // grpcurl before 1.8.8 (still what many package managers ship) only
        // speaks the v1alpha protocol.
        .add_service(reflection().build_v1alpha()?);
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE_IDLE))
        .with_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .with_keepalive_retries(Some(KEEPALIVE_PROBES));
    let drain = async move {
        shutdown.await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter.set_not_serving::<S>().await;
    };

    let observed = observe::ServerLayer::new(vec![
        S::NAME,
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]);
    Server::builder()
        .layer(observed)
        .concurrency_limit_per_connection(MAX_CALLS_PER_CONNECTION)
        .load_shed(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        // Clients re-resolve and spread over new replicas instead of pinning
        // one HTTP/2 connection forever.
        .max_connection_age(Duration::from_secs(300))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, drain)
        .await?;
    Ok(())
}

/// The caller's deadline, counted from now: the `grpc-timeout` header tonic
/// and every other gRPC client send (`"14500m"` = 14.5 s), read where a call
/// arrives and where the balancer sends it on. [`Deadline::NONE`] when the
/// caller set none (or sent one that does not parse).
pub fn caller_deadline(headers: &http::HeaderMap) -> Deadline {
    headers
        .get(&GRPC_TIMEOUT)
        .and_then(|value| parse_grpc_timeout(value.to_str().ok()?))
        .map_or(Deadline::NONE, Deadline::after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_header_in_every_unit() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(caller_deadline(&headers), Deadline::NONE);
        for (value, want) in [
            ("14500m", Duration::from_millis(14500)),
            ("3S", Duration::from_secs(3)),
            ("2M", Duration::from_secs(120)),
            ("1H", Duration::from_secs(3600)),
            ("250u", Duration::from_micros(250)),
            ("7n", Duration::from_nanos(7)),
        ] {
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(caller_deadline(&headers).remaining(), Some(want), "{value}");
        }
        headers.insert("grpc-timeout", "soon".parse().unwrap());
        assert_eq!(caller_deadline(&headers), Deadline::NONE);
    }
}
