//! The frame every doumi gRPC server runs in: standard health checking,
//! reflection for grpcurl, and a graceful drain on shutdown.

use std::{convert::Infallible, future::Future, time::Duration};

use tokio::net::TcpListener;
use tonic::{
    body::Body,
    server::NamedService,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

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
/// finish.
pub async fn serve<S>(
    service: S,
    descriptors: &[u8],
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
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
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<S>().await;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(descriptors)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let routes = Routes::new(service)
        .add_service(health)
        .add_service(reflection);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let drain = async move {
        shutdown.await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter.set_not_serving::<S>().await;
    };

    Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // Clients re-resolve and spread over new replicas instead of pinning
        // one HTTP/2 connection forever.
        .max_connection_age(Duration::from_secs(300))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, drain)
        .await?;
    Ok(())
}
