//! Calls spread over every replica of the next service, and a call that a
//! replica never started moved to another.
//!
//! One HTTP/2 connection per hop would pin a caller to one pod for the
//! connection's life (a ClusterIP Service balances connections, not calls).
//! [`Replicas`] keeps a connection to each address its [`Target`] names —
//! resolved again every [`DialSettings::resolve_interval`] and soon after a
//! connection fails — and gives each call to the next replica in turn,
//! skipping those whose last call could not reach them until they accept
//! connections again.
//!
//! A call that failed before any response (connection refused or reset,
//! GOAWAY, a refused stream: a replica restarting or gone) is one the server
//! never answered, and is sent again to another replica, at most
//! [`MAX_RETRIES`] times and only while the caller's deadline allows; a call
//! that got any response, an error status included, is never repeated.
//! tower's balancer would send a call to a replica that is down (tonic's lazy
//! connections report ready while reconnecting) and cannot repeat one, which
//! is why the choice is made here.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rand::Rng;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::{body::Body, transport::Endpoint};
use tower::ServiceExt;

use super::{CONNECTION_WINDOW, STREAM_WINDOW, target::Target};
use crate::throttle::LogThrottle;

/// Times a call is sent again after its replica never started it.
pub const MAX_RETRIES: u32 = 2;
/// The first pause before a retry; doubled for the next, with jitter.
const RETRY_BACKOFF: Duration = Duration::from_millis(20);
/// A name is resolved again at most this often, however many calls fail.
const MIN_RESOLVE_GAP: Duration = Duration::from_secs(1);
/// How long a replica that refused a connection waits before it is tried
/// again, at first and at most.
const PROBE_FIRST: Duration = Duration::from_millis(50);
const PROBE_MAX: Duration = Duration::from_secs(2);
/// How long a call waits for the first resolution of a name when the caller
/// set no deadline.
const FIRST_RESOLUTION_WAIT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const GRPC_TIMEOUT: &str = "grpc-timeout";

/// How a [`Replicas`] dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialSettings {
    /// How often a name is resolved again (new pods, pods gone).
    pub resolve_interval: Duration,
}

impl DialSettings {
    pub const DEFAULT: Self = Self {
        resolve_interval: Duration::from_secs(30),
    };
}

impl Default for DialSettings {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Every replica of one service; cheap to clone, one set per target.
#[derive(Clone)]
pub struct Replicas {
    shared: Arc<Shared>,
}

struct Shared {
    target: Arc<str>,
    members: watch::Receiver<Members>,
    next: AtomicUsize,
    /// Wakes the resolver early (a connection failed).
    resolve_now: Arc<Notify>,
    throttle: LogThrottle,
    /// Stops the resolver and the probes when the last clone is dropped.
    _stop: DropGuard,
    stop: CancellationToken,
}

type Members = Arc<[Arc<Member>]>;

/// One replica: its address and its connection.
struct Member {
    addr: SocketAddr,
    channel: tonic::transport::Channel,
    /// Its last call could not reach it; skipped while others are up.
    down: AtomicBool,
}

impl Member {
    fn new(addr: SocketAddr) -> Self {
        // A socket address is always a valid authority.
        let uri = http::Uri::try_from(format!("http://{addr}")).unwrap_or_default();
        let endpoint = Endpoint::from(uri)
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
        Self {
            addr,
            channel: endpoint.connect_lazy(),
            down: AtomicBool::new(false),
        }
    }
}

impl Replicas {
    /// Connections to every replica `target` names, made as calls need
    /// them (a service starts while the next is still starting or down).
    /// Spawns the resolver of a name: needs a tokio runtime.
    pub fn new(target: &Target, settings: DialSettings) -> Self {
        let stop = CancellationToken::new();
        let resolve_now = Arc::new(Notify::new());
        let initial: Vec<Arc<Member>> = target
            .fixed()
            .unwrap_or_default()
            .iter()
            .map(|&addr| Arc::new(Member::new(addr)))
            .collect();
        let (members, receiver) = watch::channel(Members::from(initial));
        let shared = Arc::new(Shared {
            target: target.to_string().into(),
            members: receiver,
            next: AtomicUsize::new(0),
            resolve_now: resolve_now.clone(),
            throttle: LogThrottle::default(),
            _stop: stop.clone().drop_guard(),
            stop: stop.clone(),
        });
        if let Target::Dns { host, port } = target {
            let resolver = Resolver {
                host: host.clone(),
                port: *port,
                target: shared.target.clone(),
                interval: settings.resolve_interval,
                members,
                resolve_now,
                stop,
            };
            tokio::spawn(resolver.run());
        }
        record_endpoints(&shared.target, &shared.members.borrow());
        Self { shared }
    }
}

impl Shared {
    /// The next replica in turn that this call has not tried, preferring
    /// those that are up; waits for a name's first resolution.
    async fn pick(
        &self,
        tried: &[SocketAddr],
        deadline: Option<Instant>,
    ) -> Result<Arc<Member>, BoxError> {
        let mut members = self.members.clone();
        let wait = deadline.unwrap_or_else(|| Instant::now() + FIRST_RESOLUTION_WAIT);
        let resolved = tokio::time::timeout_at(wait, members.wait_for(|m| !m.is_empty())).await;
        let current = match resolved {
            Ok(Ok(current)) => current.clone(),
            _ => {
                return Err(Box::new(tonic::Status::unavailable(format!(
                    "{} names no address yet",
                    self.target
                ))));
            }
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let in_turn = (0..current.len()).map(|i| &current[(start + i) % current.len()]);
        let fresh = |m: &&Arc<Member>| !tried.contains(&m.addr);
        let up = |m: &&Arc<Member>| !m.down.load(Ordering::Relaxed);
        let chosen = in_turn
            .clone()
            .find(|m| fresh(m) && up(m))
            .or_else(|| in_turn.clone().find(fresh))
            .or_else(|| in_turn.clone().next());
        chosen
            .cloned()
            .ok_or_else(|| Box::new(tonic::Status::unavailable("no replica")) as BoxError)
    }

    /// `member` could not be reached: skip it until it accepts connections
    /// again, and look the name up again soon (it may be gone).
    fn failed(&self, member: &Arc<Member>, error: &BoxError) {
        self.resolve_now.notify_one();
        if member.down.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(held_back) = self.throttle.admit("replica unreachable") {
            tracing::warn!(
                target_name = %self.target,
                replica = %member.addr,
                %error,
                held_back,
                "a replica could not be reached; its calls go to the others"
            );
        }
        tokio::spawn(probe(
            member.clone(),
            self.members.clone(),
            self.stop.clone(),
        ));
    }
}

/// Marks `member` up again once it accepts a connection (the channel then
/// reconnects on its next call), or gives up when it left the set.
async fn probe(member: Arc<Member>, members: watch::Receiver<Members>, stop: CancellationToken) {
    let mut pause = PROBE_FIRST;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        if !members.borrow().iter().any(|m| Arc::ptr_eq(m, &member)) {
            return;
        }
        let connect = tokio::net::TcpStream::connect(member.addr);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
            member.down.store(false, Ordering::Relaxed);
            return;
        }
        pause = (pause * 2).min(PROBE_MAX);
    }
}

/// Keeps a name's members current.
struct Resolver {
    host: String,
    port: u16,
    target: Arc<str>,
    interval: Duration,
    members: watch::Sender<Members>,
    resolve_now: Arc<Notify>,
    stop: CancellationToken,
}

impl Resolver {
    async fn run(self) {
        let throttle = LogThrottle::default();
        loop {
            let resolved = Instant::now();
            match tokio::net::lookup_host((self.host.as_str(), self.port)).await {
                Ok(addrs) => self.update(addrs.collect()),
                Err(error) => {
                    if let Some(held_back) = throttle.admit("resolve") {
                        tracing::warn!(
                            target_name = %self.target,
                            %error,
                            held_back,
                            "resolving the replicas failed; calls keep the last addresses"
                        );
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
                () = async {
                    self.resolve_now.notified().await;
                    tokio::time::sleep_until(resolved + MIN_RESOLVE_GAP).await;
                } => {}
            }
        }
    }

    /// Keeps the replicas still named (and their connections), adds the new
    /// ones, drops the rest. A name that resolves to nothing keeps the last
    /// set: calls then fail on it as they would on nothing, and recover as
    /// soon as a replica is back.
    fn update(&self, mut addrs: Vec<SocketAddr>) {
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return;
        }
        let current = self.members.borrow().clone();
        if current.iter().map(|m| m.addr).eq(addrs.iter().copied()) {
            return;
        }
        let mut known: HashMap<SocketAddr, Arc<Member>> =
            current.iter().map(|m| (m.addr, m.clone())).collect();
        let next: Vec<Arc<Member>> = addrs
            .iter()
            .map(|addr| {
                known
                    .remove(addr)
                    .unwrap_or_else(|| Arc::new(Member::new(*addr)))
            })
            .collect();
        tracing::info!(
            target_name = %self.target,
            replicas = ?addrs,
            "replicas changed"
        );
        record_endpoints(&self.target, &next);
        self.members.send_replace(next.into());
    }
}

fn record_endpoints(target: &str, members: &[Arc<Member>]) {
    metrics::gauge!(crate::metrics::GRPC_CLIENT_REPLICAS, "target" => target.to_owned())
        .set(members.len() as f64);
}

/// The deadline a tonic client sends as `grpc-timeout` (the request's timeout).
fn deadline_of(headers: &http::HeaderMap) -> Option<Instant> {
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    super::parse_grpc_timeout(value).map(|timeout| Instant::now() + timeout)
}

/// The call to send (again): the same method, headers and message, with
/// the time that is left as its `grpc-timeout`.
fn attempt(parts: &http::request::Parts, body: &Bytes, deadline: Option<Instant>) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(Full::new(body.clone())));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    if let Some(deadline) = deadline {
        let left = deadline.saturating_duration_since(Instant::now()).as_millis();
        if let Ok(value) = http::HeaderValue::try_from(format!("{left}m")) {
            request.headers_mut().insert(GRPC_TIMEOUT, value);
        }
    }
    request
}

/// A pause before retry `n` (1-based): doubling, with up to half again of jitter.
fn backoff(n: u32) -> Duration {
    let base = RETRY_BACKOFF * 2u32.saturating_pow(n.saturating_sub(1));
    base + base.mul_f64(rand::rng().random_range(0.0..0.5))
}

impl tower::Service<http::Request<Body>> for Replicas {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is each replica's, awaited once one is chosen.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let deadline = deadline_of(request.headers());
            // Unary calls: the encoded message is small and kept, so that it
            // can be sent again.
            let (parts, body) = request.into_parts();
            let body: Bytes = body.collect().await?.to_bytes();
            let mut tried = Vec::new();
            loop {
                let member = shared.pick(&tried, deadline).await?;
                let request = attempt(&parts, &body, deadline);
                let error = match member.channel.clone().oneshot(request).await {
                    Ok(response) => return Ok(response),
                    Err(error) => BoxError::from(error),
                };
                shared.failed(&member, &error);
                tried.push(member.addr);
                let retry = tried.len() as u32;
                let pause = backoff(retry);
                if retry > MAX_RETRIES || deadline.is_some_and(|d| Instant::now() + pause >= d) {
                    return Err(error);
                }
                metrics::counter!(crate::metrics::GRPC_CLIENT_RETRIES, "target" => shared.target.to_string())
                    .increment(1);
                tokio::time::sleep(pause).await;
            }
        })
    }
}
