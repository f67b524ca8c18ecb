//! The HTTP/2 server under every doumi gRPC service: it accepts connections,
//! hands each call to its service by the path's first segment, sheds calls
//! past a connection's limit, closes connections that grew old and drains on
//! shutdown.
//!
//! hyper's HTTP/2 server, driven directly. tonic's `Server` passes every call
//! through an axum router (which records the call's path parameters and
//! original URI), a boxed clone of its whole layer stack, a semaphore, and a
//! `grpc-timeout` timer that repeats the caller's own: a caller past its
//! deadline resets the stream, and hyper then drops the call's future. Each
//! doumi service reads the deadline itself ([`super::caller_deadline`]) to
//! spend it well.

use std::{
    convert::Infallible,
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{
    FutureExt,
    future::{Either, Ready, ready},
};
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tonic::server::NamedService;
use tonic_health::{ServingStatus, pb::health_server::HealthServer, server::HealthService};
use tower::{Service, util::BoxCloneSyncService};

pub use tonic_health::server::HealthReporter;

use super::{
    answer::{Answer, Answering, Answers, Call},
    hop::{self, CONNECTION_WINDOW, MAX_HEADER_LIST_SIZE, STREAM_WINDOW},
    observe,
};
use crate::throttle::LogThrottle;

/// Calls one client connection may have in progress; past it calls are shed
/// at once with RESOURCE_EXHAUSTED (which callers turn into "busy") rather
/// than queued behind the work already there.
const MAX_CALLS_PER_CONNECTION: usize = 512;

/// How long a client connection is served before it is asked (GOAWAY) to go:
/// clients re-resolve and spread over new replicas instead of pinning one
/// HTTP/2 connection forever. Calls in flight finish first.
const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// How long accepting pauses after it failed (out of file descriptors, say),
/// so a failure that repeats cannot spin.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

type Standard = BoxCloneSyncService<Call, Answer, Infallible>;
/// A call to the service's own methods under way, as a `Service` future.
type Answered = futures::future::Map<Answering, fn(Answer) -> Result<Answer, Infallible>>;

/// Why a gRPC server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("building the reflection service failed")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// Serves `service` on a pre-bound `listener` until `shutdown` resolves,
/// then lets the calls in flight finish.
///
/// Health reports the service SERVING from the start and NOT_SERVING as soon as
/// shutdown begins, so load balancers stop sending work while in-flight calls
/// finish. `reporter` is the caller's when it also reports the health of what
/// it depends on (`HealthReporter::new()` otherwise).
pub async fn serve<S: Answers>(
    service: Arc<S>,
    descriptors: &[u8],
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    reporter: HealthReporter,
) -> Result<(), ServeError> {
    let health = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    reporter
        .set_service_status(S::NAME, ServingStatus::Serving)
        .await;
    let routes = Routes::new(service, health, descriptors)?;
    let observed = observe::Server::new(routes.names(), routes);

    let drain = async move {
        shutdown.await;
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        reporter
            .set_service_status(S::NAME, ServingStatus::NotServing)
            .await;
    };
    accept(listener, observed, drain).await;
    Ok(())
}

/// Accepts connections until `shutdown`, each served on its own task; then
/// asks every connection to finish (GOAWAY) and waits until they have.
async fn accept<S>(listener: TcpListener, service: S, shutdown: impl Future<Output = ()>)
where
    S: Service<Call, Response = Answer, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + Unpin + 'static,
{
    let mut http = http2::Builder::new(TokioExecutor::new());
    http.initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        // gRPC answers carry no Date: it would cost a clock read, a header and
        // its encoding on every answer.
        .auto_date_header(false)
        // The limit is ours (MAX_CALLS_PER_CONNECTION, answered with a gRPC
        // status); HTTP/2's own would refuse streams without one.
        .max_concurrent_streams(None);
    let (drain, draining) = watch::channel(false);
    let failures = LogThrottle::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted.and_then(|(stream, _)| hop::tune(&stream).map(|()| stream)) {
            Ok(stream) => stream,
            Err(error) => {
                if let Some(held_back) = failures.admit("accept") {
                    tracing::warn!(%error, held_back, "accepting a gRPC connection failed");
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let connection = http.serve_connection(
            TokioIo::new(stream),
            Connection {
                service: service.clone(),
                in_flight: Arc::default(),
            },
        );
        tokio::spawn(serve_connection(connection, draining.clone()));
    }
    // New clients are refused at once rather than left to time out.
    drop(listener);
    drop(draining);
    let _ = drain.send(true);
    drain.closed().await;
}

/// Serves one connection until its client leaves, or until it grew old or
/// the server drains: then it sends GOAWAY and finishes the calls in flight.
async fn serve_connection<S>(
    connection: http2::Connection<TokioIo<TcpStream>, Connection<S>, TokioExecutor>,
    mut draining: watch::Receiver<bool>,
) where
    S: Service<Call, Response = Answer, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + Unpin + 'static,
{
    let mut connection = pin!(connection);
    let old = tokio::time::sleep(MAX_CONNECTION_AGE);
    let mut old = pin!(old);
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            ended = connection.as_mut() => {
                if let Err(error) = ended {
                    tracing::debug!(%error, "a gRPC connection ended");
                }
                return;
            }
            () = &mut old, if !closing => {}
            _ = draining.wait_for(|draining| *draining), if !closing => {}
        }
        closing = true;
        connection.as_mut().graceful_shutdown();
    }
}

/// The services one server answers: doumi's own, found first, and the
/// standard ones beside it (health, reflection for grpcurl).
struct Routes<S> {
    service: Arc<S>,
    standard: Arc<[(&'static str, Standard)]>,
}

impl<S> Clone for Routes<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            standard: self.standard.clone(),
        }
    }
}

impl<S: Answers> Routes<S> {
    fn new(
        service: Arc<S>,
        health: HealthServer<HealthService>,
        descriptors: &[u8],
    ) -> Result<Self, ServeError> {
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(descriptors)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc's error details, so grpcurl can show an error's
                // ErrorInfo, RetryInfo and BadRequest.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let standard: Vec<(&'static str, Standard)> = vec![
            named(health),
            named(reflection().build_v1()?),
            // grpcurl before 1.8.8 (still what many package managers ship)
            // only speaks the v1alpha protocol.
            named(reflection().build_v1alpha()?),
        ];
        Ok(Self {
            service,
            standard: standard.into(),
        })
    }

    /// Every service answered here, by its gRPC name.
    fn names(&self) -> Vec<&'static str> {
        std::iter::once(S::NAME)
            .chain(self.standard.iter().map(|(name, _)| *name))
            .collect()
    }
}

fn named<T>(service: T) -> (&'static str, Standard)
where
    T: Service<Call, Response = Answer, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    T::Future: Send + 'static,
{
    (T::NAME, BoxCloneSyncService::new(service))
}

impl<S: Answers> Service<Call> for Routes<S> {
    type Response = Answer;
    type Error = Infallible;
    type Future = Either<
        Answered,
        Either<<Standard as Service<Call>>::Future, Ready<Result<Answer, Infallible>>>,
    >;

    /// Every service here is always ready; so is this.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let name = call
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.split_once('/'))
            .map(|(service, _method)| service);
        if name == Some(S::NAME) {
            let answered: fn(Answer) -> Result<Answer, Infallible> = Ok;
            return Either::Left(self.service.clone().answer(call).map(answered));
        }
        match self
            .standard
            .iter()
            .find(|(standard, _)| Some(*standard) == name)
        {
            Some((_, service)) => Either::Right(Either::Left(service.clone().call(call))),
            None => Either::Right(Either::Right(ready(Ok(tonic::Status::unimplemented(
                "no such service",
            )
            .into_http())))),
        }
    }
}

/// One client connection's service: counts its calls in flight and sheds
/// those past [`MAX_CALLS_PER_CONNECTION`].
struct Connection<S> {
    service: S,
    in_flight: Arc<AtomicUsize>,
}

impl<S> hyper::service::Service<Call> for Connection<S>
where
    S: Service<Call, Response = Answer, Error = Infallible> + Clone,
    S::Future: Unpin,
{
    type Response = Answer;
    type Error = Infallible;
    type Future = Either<Counted<S::Future>, Ready<Result<Answer, Infallible>>>;

    fn call(&self, call: Call) -> Self::Future {
        match Slot::take(&self.in_flight) {
            Some(slot) => Either::Left(Counted {
                call: self.service.clone().call(call),
                _slot: slot,
            }),
            None => Either::Right(ready(Ok(tonic::Status::resource_exhausted(
                "too many calls in progress on this connection",
            )
            .into_http()))),
        }
    }
}

/// A call in progress, holding its connection's slot until it is answered
/// or dropped.
struct Counted<F> {
    call: F,
    _slot: Slot,
}

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        Pin::new(&mut self.call).poll(cx)
    }
}

/// One of a connection's [`MAX_CALLS_PER_CONNECTION`] places, given back
/// when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(in_flight: &Arc<AtomicUsize>) -> Option<Self> {
        if in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_CALLS_PER_CONNECTION {
            in_flight.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Self(in_flight.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    use super::*;
    use crate::grpc::link::Link;

    /// A service whose calls never end, to fill a connection.
    struct Stalled;

    impl Answers for Stalled {
        const NAME: &'static str = "test.Stalled";

        fn answer(self: Arc<Self>, _: Call) -> Answering {
            Box::pin(futures::future::pending())
        }
    }

    /// A server of [`Stalled`] (and the standard services) until `stop`.
    async fn start() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        tokio::spawn(serve(
            Arc::new(Stalled),
            &[],
            listener,
            shutdown,
            HealthReporter::new(),
        ));
        (addr, stop)
    }

    /// The gRPC status a trailers-only answer carries.
    async fn status(link: &Link, path: &str) -> Option<String> {
        let path = http::uri::PathAndQuery::try_from(path).unwrap();
        let request = http::Request::post(link.uri(Some(&path)))
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let response = link.send(request, Bytes::new()).await.unwrap();
        let status = response.headers().get("grpc-status")?;
        Some(status.to_str().unwrap().to_owned())
    }

    async fn health(addr: SocketAddr) -> i32 {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let request = HealthCheckRequest {
            service: Stalled::NAME.into(),
        };
        let answer = HealthClient::new(channel).check(request).await.unwrap();
        answer.into_inner().status
    }

    #[tokio::test]
    async fn calls_reach_their_service_by_name() {
        let (addr, _stop) = start().await;
        assert_eq!(health(addr).await, ServingStatus::Serving as i32);
        let link = Link::new(addr);
        let unimplemented = (tonic::Code::Unimplemented as i32).to_string();
        assert_eq!(
            status(&link, "/no.Such/Thing").await,
            Some(unimplemented.clone())
        );
        // A method the standard services do not have is theirs to refuse.
        assert_eq!(
            status(&link, "/grpc.health.v1.Health/Nope").await,
            Some(unimplemented)
        );
    }

    #[tokio::test]
    async fn a_full_connection_sheds_its_own_calls_only() {
        let (addr, _stop) = start().await;
        let link = Arc::new(Link::new(addr));
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..=MAX_CALLS_PER_CONNECTION {
            let link = link.clone();
            calls.spawn(async move { status(&link, "/test.Stalled/Wait").await });
        }
        // One call more than a connection may have is answered at once;
        // the others keep their places.
        let shed = calls.join_next().await.unwrap().unwrap();
        assert_eq!(
            shed,
            Some((tonic::Code::ResourceExhausted as i32).to_string())
        );
        assert!(calls.try_join_next().is_none());
        assert_eq!(calls.len(), MAX_CALLS_PER_CONNECTION);
        // Another connection is not this one's flood.
        assert_eq!(health(addr).await, ServingStatus::Serving as i32);
    }

    #[tokio::test]
    async fn a_stopped_server_has_let_its_connections_go_and_refuses_new_ones() {
        let (addr, stop) = start().await;
        let link = Link::new(addr);
        let unimplemented = (tonic::Code::Unimplemented as i32).to_string();
        assert_eq!(status(&link, "/no.Such/Thing").await, Some(unimplemented));
        stop.send(()).unwrap();
        // The open connection is asked to go (GOAWAY) and closes.
        let path = http::uri::PathAndQuery::from_static("/no.Such/Thing");
        loop {
            let request = http::Request::post(link.uri(Some(&path))).body(()).unwrap();
            if link.send(request, Bytes::new()).await.is_err() {
                break;
            }
        }
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
