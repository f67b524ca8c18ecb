//! One HTTP/2 connection to one replica, dialled when a call needs it and
//! again after it closes.
//!
//! Calls speak HTTP/2 (the `h2` crate) from the caller's own task: the call
//! opens its stream, sends its message and reads the answer where it is
//! awaited. tonic's `Channel` would put a buffer in front (a queue and a
//! worker task every call passes through), and hyper's client a queue to the
//! connection's task and a task spawned per call to wait for the response;
//! the connection's own task here only reads and writes the socket.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use futures::FutureExt;
use h2::{RecvStream, client::SendRequest};
use http_body::Frame;

use super::hop::{self, CONNECTION_WINDOW, GRPC_TIMEOUT, MAX_HEADER_LIST_SIZE, STREAM_WINDOW};

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
    /// The open connection; `None` before the first call and after it
    /// closed. Dialling holds the lock, so concurrent calls share one dial.
    open: tokio::sync::Mutex<Option<Open>>,
    /// Whether the open connection has carried [`PER_CALL_HEADERS`]' names
    /// (a call has been handed it to send them).
    named: AtomicBool,
}

/// An open connection: the handle calls open streams with, and whether the
/// connection's task has ended (closed by either side, or failed).
struct Open {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Open {
    /// A handle for one more call, unless the connection takes no new
    /// calls: it ended, or the replica sent GOAWAY (it is restarting, or
    /// closing an old connection), which h2 reports at once rather than on
    /// a call. Polled once here, for the check and the call alike: each
    /// handle cloned or polled takes the connection's lock.
    fn handle(&self) -> Option<SendRequest<Bytes>> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        match self.sender.clone().ready().now_or_never() {
            Some(Ok(ready)) => Some(ready),
            Some(Err(_)) => None,
            // At the replica's limit of streams: the call waits its turn.
            None => Some(self.sender.clone()),
        }
    }
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

    /// Sends a unary call, `request`'s head with its encoded `message`, to
    /// the replica; the answer's head, and its stream to read the rest from.
    /// An error means the replica never answered it (no connection, a closed
    /// or refused stream): the call may be sent again elsewhere.
    pub(super) async fn send(
        &self,
        mut request: http::Request<()>,
        message: Bytes,
    ) -> Result<http::Response<RecvStream>, BoxError> {
        let (sender, indexed) = self.sender().await?;
        for name in &PER_CALL_HEADERS {
            if let Some(value) = request.headers_mut().get_mut(*name) {
                value.set_sensitive(!indexed);
            }
        }
        Self::exchange(sender, request, message)
            .await
            .map_err(|error| unavailable(self.addr, error))
    }

    /// Opens the call's stream (once the connection takes another), sends
    /// the message and waits for the response's head. Dropped before that,
    /// the stream is reset (CANCEL), so the replica stops working on it.
    async fn exchange(
        sender: SendRequest<Bytes>,
        request: http::Request<()>,
        message: Bytes,
    ) -> Result<http::Response<RecvStream>, h2::Error> {
        let mut sender = sender.ready().await?;
        let (response, mut stream) = sender.send_request(request, message.is_empty())?;
        if !message.is_empty() {
            // Within the stream's window (1 MiB) a unary message is written
            // at once; past it, h2 holds the rest until the window opens.
            stream.send_data(message, true)?;
        }
        response.await
    }

    /// The open connection's handle, dialled first when there is none (or
    /// it closed, or its replica sent GOAWAY), and whether this call is the
    /// first on it to carry [`PER_CALL_HEADERS`]. Both are decided under the
    /// lock, so a call still holding a replaced connection's handle cannot
    /// mark the new one as named.
    async fn sender(&self) -> Result<(SendRequest<Bytes>, bool), BoxError> {
        let mut open = self.open.lock().await;
        if let Some(sender) = open.as_ref().and_then(Open::handle) {
            return Ok((sender, !self.named.swap(true, Ordering::Relaxed)));
        }
        *open = None;
        // Boxed: the handshake's state is large, and every call's future
        // would otherwise carry (and copy) it.
        let dialled = Box::pin(self.dial()).await?;
        let sender = dialled.sender.clone();
        self.named.store(true, Ordering::Relaxed);
        *open = Some(dialled);
        Ok((sender, true))
    }

    async fn dial(&self) -> Result<Open, BoxError> {
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
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST_SIZE)
            .enable_push(false)
            .handshake(stream)
            .await
            .map_err(|error| unavailable(self.addr, error))?;
        let closed = Arc::new(AtomicBool::new(false));
        let ended = closed.clone();
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "connection to a replica ended");
            }
            ended.store(true, Ordering::Relaxed);
        });
        Ok(Open { sender, closed })
    }
}

/// A response's body as it arrives, for tonic's clients: the message, then
/// the trailers (the call's status). Each piece read is given back to the
/// flow-control windows, so the replica can send the next.
pub(super) struct Answer(pub(super) RecvStream);

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let stream = &mut self.0;
        match ready!(stream.poll_data(cx)) {
            Some(Ok(data)) => {
                // Only fails when the stream is gone, which the next poll reports.
                let _ = stream.flow_control().release_capacity(data.len());
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Some(Err(error)) => return Poll::Ready(Some(Err(error))),
            None => {}
        }
        Poll::Ready(match ready!(stream.poll_trailers(cx)) {
            Ok(Some(trailers)) => Some(Ok(Frame::trailers(trailers))),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use http_body_util::BodyExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A replica that asks every connection to go (GOAWAY, as one that grew
    /// old or a replica that drains) as soon as a call arrives on it, and
    /// still answers that call; it counts the connections it accepted.
    async fn closing_replica() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut connection = h2::server::handshake(socket).await.unwrap();
                    while let Some(Ok((_call, mut respond))) = connection.accept().await {
                        connection.graceful_shutdown();
                        let answer = http::Response::builder()
                            .header("grpc-status", "0")
                            .body(())
                            .unwrap();
                        respond.send_response(answer, true).unwrap();
                    }
                });
            }
        });
        (addr, connections)
    }

    #[tokio::test]
    async fn a_connection_its_replica_closes_costs_no_call() {
        let (addr, connections) = closing_replica().await;
        let link = Link::new(addr);
        let path = http::uri::PathAndQuery::from_static("/doumi.test.v1.Test/Call");
        for _ in 0..3 {
            let request = http::Request::post(link.uri(Some(&path))).body(()).unwrap();
            let answer = link.send(request, Bytes::from_static(b"call")).await;
            let trailers_only = Answer(answer.unwrap().into_body()).collect().await.unwrap();
            assert!(trailers_only.to_bytes().is_empty());
        }
        // Each call found its connection closing and dialled a new one.
        assert_eq!(connections.load(Ordering::Relaxed), 3);
    }
}
