//! One HTTP/2 connection to one replica, dialled when a call needs it and
//! again after it closes.
//!
//! Calls go straight to hyper's connection handle. tonic's `Channel` would
//! put a buffer in front of it (a queue and a worker task that every call
//! passes through, for the sake of `poll_ready` back-pressure that
//! [`super::balance`] does not use); skipping it saved about 5,000
//! instructions a message over the two hops, measured.

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;

use super::hop::{self, CONNECTION_WINDOW, GRPC_TIMEOUT, STREAM_WINDOW};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long dialling a replica may take before the call moves on.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Headers whose value is new on (nearly) every call. HPACK would add each
/// value to both ends' dynamic tables, where it only pushes out the values
/// that do repeat and lengthens every later lookup by that name (measured:
/// ~10,000 instructions to encode one call's headers once the table is full
/// of message tags), so they are sent as never-indexed literals, except on
/// a connection's first call: that one enters their *names* into the
/// tables, and every later literal refers to its name by index instead of
/// spelling (and Huffman-coding) it again.
static PER_CALL_HEADERS: [&http::HeaderName; 4] = [
    &GRPC_TIMEOUT,
    &super::observe::MESSAGE_TAG,
    &TRACEPARENT,
    &TRACESTATE,
];
static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// The connection to one replica.
pub(super) struct Link {
    addr: SocketAddr,
    /// The authority every request names (`:authority`).
    authority: http::uri::Authority,
    /// The open connection's handle; `None` before the first call and after
    /// it closed. Dialling holds the lock, so concurrent calls share one dial.
    open: tokio::sync::Mutex<Option<http2::SendRequest<Body>>>,
    /// Whether the open connection has carried [`PER_CALL_HEADERS`]' names
    /// (a call has been handed it to send them).
    named: AtomicBool,
}

impl Link {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            // A socket address is always a valid authority.
            authority: http::uri::Authority::try_from(addr.to_string())
                .unwrap_or_else(|_| http::uri::Authority::from_static("localhost")),
            open: tokio::sync::Mutex::new(None),
            named: AtomicBool::new(false),
        }
    }

    /// The scheme and authority a request to this replica carries.
    pub(super) fn uri(&self, path: Option<&http::uri::PathAndQuery>) -> http::Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = path.cloned();
        http::Uri::from_parts(parts).unwrap_or_default()
    }

    /// Sends `request` to the replica. An error means the replica never
    /// answered it (no connection, a closed or refused stream): the call may
    /// be sent again elsewhere.
    pub(super) async fn send(
        &self,
        mut request: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        let (mut sender, indexed) = self.sender().await?;
        for name in &PER_CALL_HEADERS {
            if let Some(value) = request.headers_mut().get_mut(*name) {
                value.set_sensitive(!indexed);
            }
        }
        match sender.send_request(request).await {
            Ok(response) => Ok(response.map(Body::new)),
            Err(error) => {
                if sender.is_closed() {
                    self.forget_closed().await;
                }
                Err(unavailable(self.addr, error))
            }
        }
    }

    /// The open connection's handle, dialled first when there is none, and
    /// whether this call is the first on it to carry [`PER_CALL_HEADERS`].
    /// Both are decided under the lock, so a call still holding a replaced
    /// connection's handle cannot mark the new one as named.
    async fn sender(&self) -> Result<(http2::SendRequest<Body>, bool), BoxError> {
        let mut open = self.open.lock().await;
        if let Some(sender) = open.as_ref().filter(|sender| !sender.is_closed()) {
            return Ok((sender.clone(), !self.named.swap(true, Ordering::Relaxed)));
        }
        *open = None;
        // Boxed: the handshake's state is large, and every call's future
        // would otherwise carry (and copy) it.
        let sender = Box::pin(self.dial()).await?;
        self.named.store(true, Ordering::Relaxed);
        *open = Some(sender.clone());
        Ok((sender, true))
    }

    /// Drops the handle of a connection that closed (not a newer one that
    /// replaced it meanwhile), so the next call dials again.
    async fn forget_closed(&self) {
        let mut open = self.open.lock().await;
        if open.as_ref().is_some_and(http2::SendRequest::is_closed) {
            *open = None;
        }
    }

    async fn dial(&self) -> Result<http2::SendRequest<Body>, BoxError> {
        let connect = tokio::net::TcpStream::connect(self.addr);
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(unavailable(self.addr, error)),
            Err(_elapsed) => {
                let timed_out =
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting timed out");
                return Err(unavailable(self.addr, timed_out));
            }
        };
        hop::tune(&stream).map_err(|error| unavailable(self.addr, error))?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| unavailable(self.addr, error))?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "connection to a replica ended");
            }
        });
        Ok(sender)
    }
}

/// What a call that never reached `addr` fails with: UNAVAILABLE, the code
/// gRPC gives a transport failure, with the transport error as its source
/// (which is how a caller tells "never reached" from a server's UNAVAILABLE).
fn unavailable(
    addr: SocketAddr,
    error: impl std::error::Error + Send + Sync + 'static,
) -> BoxError {
    let mut status = tonic::Status::unavailable(format!("{addr}: {error}"));
    status.set_source(std::sync::Arc::new(error));
    Box::new(status)
}
