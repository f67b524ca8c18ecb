//! Calls spread over every replica of the next service, and a call that a
//! replica never started moved to another.
//!
//! (Past 600 lines for its tests: real replicas started, stopped, killed and
//! renamed under calls, which is what this file is for; the code is ~400.)
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
use http_body_util::BodyExt;
use rand::Rng;
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::body::Body;

use super::{
    hop::GRPC_TIMEOUT,
    link::{Answer, Link},
    target::Target,
};
use crate::{deadline::Deadline, throttle::LogThrottle};

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

/// Who calls, as gRPC clients say it.
static USER_AGENT: http::HeaderValue =
    http::HeaderValue::from_static(concat!("doumi/", env!("CARGO_PKG_VERSION")));

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

/// Asks what addresses a name has now.
type Lookup = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>
        + Send
        + Sync,
>;

/// One replica: its address and its connection.
struct Member {
    addr: SocketAddr,
    link: Link,
    /// Its last call could not reach it; skipped while others are up.
    down: AtomicBool,
}

impl Member {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            link: Link::new(addr),
            down: AtomicBool::new(false),
        }
    }
}

impl Replicas {
    /// Connections to every replica `target` names, made as calls need
    /// them (a service starts while the next is still starting or down).
    /// Spawns the resolver of a name: needs a tokio runtime.
    pub fn new(target: &Target, settings: DialSettings) -> Self {
        let lookup: Option<Lookup> = match target {
            Target::Dns { host, port } => {
                let (host, port) = (host.clone(), *port);
                Some(Arc::new(move || {
                    let host = host.clone();
                    Box::pin(async move {
                        Ok(tokio::net::lookup_host((host.as_str(), port))
                            .await?
                            .collect())
                    })
                }))
            }
            Target::Fixed(_) => None,
        };
        Self::resolving(target, settings, lookup)
    }

    /// [`Replicas::new`] with the name looked up by `lookup`.
    fn resolving(target: &Target, settings: DialSettings, lookup: Option<Lookup>) -> Self {
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
        if let Some(lookup) = lookup {
            let resolver = Resolver {
                lookup,
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
        deadline: Deadline,
    ) -> Result<Arc<Member>, BoxError> {
        let mut members = self.members.clone();
        let wait = deadline
            .instant()
            .unwrap_or_else(|| Instant::now() + FIRST_RESOLUTION_WAIT);
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
    lookup: Lookup,
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
            match (self.lookup)().await {
                Ok(addrs) => self.update(addrs),
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

/// The head of the call to send (again) to `member`: the same method, path
/// and headers, with the time that is left as its `grpc-timeout`.
fn attempt(member: &Member, parts: &http::request::Parts, deadline: Deadline) -> http::Request<()> {
    let mut request = http::Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = member.link.uri(parts.uri.path_and_query());
    *request.version_mut() = parts.version;
    // Not the extensions: HTTP/2 reads none of tonic's, and copying them
    // cost a map and a box per call.
    *request.headers_mut() = parts.headers.clone();
    if let Some(left) = deadline.remaining()
        && let Ok(value) = http::HeaderValue::try_from(format!("{}m", left.as_millis()))
    {
        request.headers_mut().insert(GRPC_TIMEOUT.clone(), value);
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
        let replicas = self.clone();
        Box::pin(async move {
            let deadline = super::caller_deadline(request.headers());
            // Unary calls: the encoded message is small and kept, so that it
            // can be sent again.
            let (parts, body) = request.into_parts();
            let body: Bytes = body.collect().await?.to_bytes();
            let response = replicas.send(parts, body, deadline).await?;
            Ok(response.map(|answer| Body::new(Answer(answer))))
        })
    }
}

impl Replicas {
    /// Sends a unary call, `parts` with its encoded `message`, to the next
    /// replica, and again to another while no replica started it (at most
    /// [`MAX_RETRIES`] times, within `deadline`); the answer's head and the
    /// stream of the rest.
    pub(super) async fn send(
        &self,
        mut parts: http::request::Parts,
        message: Bytes,
        deadline: Deadline,
    ) -> Result<http::Response<h2::RecvStream>, BoxError> {
        let shared = &self.shared;
        parts
            .headers
            .insert(http::header::USER_AGENT, USER_AGENT.clone());
        let mut tried = Vec::new();
        loop {
            let member = shared.pick(&tried, deadline).await?;
            let request = attempt(&member, &parts, deadline);
            let error = match member.link.send(request, message.clone()).await {
                Ok(response) => {
                    if member.down.load(Ordering::Relaxed) {
                        member.down.store(false, Ordering::Relaxed);
                    }
                    return Ok(response);
                }
                Err(error) => error,
            };
            shared.failed(&member, &error);
            tried.push(member.addr);
            let retry = tried.len() as u32;
            let pause = backoff(retry);
            if retry > MAX_RETRIES || deadline.remaining().is_some_and(|left| left <= pause) {
                return Err(error);
            }
            metrics::counter!(crate::metrics::GRPC_CLIENT_RETRIES, "target" => shared.target.to_string())
                .increment(1);
            tokio::time::sleep(pause).await;
        }
    }
}

impl crate::settings::Problems {
    /// How another doumi service is dialled: its names resolved again every
    /// `resolve_interval` (`DOUMI_RESOLVE_INTERVAL`).
    pub fn dial(&mut self, resolve_interval: &str) -> Option<DialSettings> {
        const NAME: &str = "DOUMI_RESOLVE_INTERVAL";
        let interval = self.duration(NAME, resolve_interval)?;
        if interval < Duration::from_secs(1) {
            self.add(
                NAME,
                "must be at least 1s (DNS is asked that often at most)",
            );
            return None;
        }
        Some(DialSettings {
            resolve_interval: interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    use super::*;

    /// A replica: a health server on its own runtime, so that it can be
    /// stopped gracefully (GOAWAY, calls in flight finish) or killed (the
    /// runtime and every connection dropped at once, as a SIGKILL does).
    struct Replica {
        addr: SocketAddr,
        calls: Arc<AtomicU64>,
        stop: CancellationToken,
        runtime: Option<tokio::runtime::Runtime>,
    }

    impl Replica {
        fn start(addr: SocketAddr) -> Self {
            let calls = Arc::new(AtomicU64::new(0));
            let stop = CancellationToken::new();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the replica");
            let listener = std::net::TcpListener::bind(addr).expect("bind the replica's address");
            listener
                .set_nonblocking(true)
                .expect("a non-blocking socket");
            let addr = listener.local_addr().expect("its address");
            let counted = calls.clone();
            let (_, health) = tonic_health::server::health_reporter();
            let shutdown = stop.clone().cancelled_owned();
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tonic::transport::Server::builder()
                    .trace_fn(move |_| {
                        counted.fetch_add(1, Ordering::Relaxed);
                        tracing::Span::none()
                    })
                    .add_service(health)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(listener),
                        shutdown,
                    )
                    .await
                    .map_err(std::io::Error::other)
            });
            Self {
                addr,
                calls,
                stop,
                runtime: Some(runtime),
            }
        }

        fn calls(&self) -> u64 {
            self.calls.load(Ordering::Relaxed)
        }

        /// SIGTERM: stop taking calls, finish those in flight.
        async fn stop(mut self) {
            self.stop.cancel();
            if let Some(runtime) = self.runtime.take() {
                tokio::task::spawn_blocking(move || {
                    runtime.shutdown_timeout(Duration::from_secs(5))
                })
                .await
                .expect("the replica stopped");
            }
        }

        /// SIGKILL: everything gone at once.
        fn kill(mut self) {
            if let Some(runtime) = self.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }

    impl Drop for Replica {
        fn drop(&mut self) {
            if let Some(runtime) = self.runtime.take() {
                runtime.shutdown_background();
            }
        }
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn target_of(replicas: &[&Replica]) -> Target {
        Target::Fixed(replicas.iter().map(|r| r.addr).collect())
    }

    async fn check(client: &mut HealthClient<super::super::Channel>) -> Result<(), tonic::Status> {
        let mut request = tonic::Request::new(HealthCheckRequest::default());
        request.set_timeout(Duration::from_secs(5));
        client.check(request).await.map(drop)
    }

    #[tokio::test]
    async fn every_replica_gets_its_share_of_the_calls() {
        let replicas: Vec<Replica> = (0..3).map(|_| Replica::start(loopback())).collect();
        let channel = super::super::channel(
            &target_of(&replicas.iter().collect::<Vec<_>>()),
            DialSettings::DEFAULT,
        );
        let mut client = HealthClient::new(channel);
        for _ in 0..300 {
            check(&mut client).await.expect("every call answered");
        }
        for replica in &replicas {
            assert!(
                (75..=125).contains(&replica.calls()),
                "a third each: {:?}",
                replicas.iter().map(Replica::calls).collect::<Vec<_>>()
            );
        }
    }

    #[tokio::test]
    async fn replicas_stopped_restarted_and_killed_cost_no_call() {
        let first = Replica::start(loopback());
        let second = Replica::start(loopback());
        let (first_addr, second_addr) = (first.addr, second.addr);
        let channel = super::super::channel(&target_of(&[&first, &second]), DialSettings::DEFAULT);
        let client = HealthClient::new(channel);
        let calls = |n: usize| {
            let mut client = client.clone();
            async move {
                for i in 0..n {
                    if let Err(status) = check(&mut client).await {
                        panic!("call {i} failed: {status:?}");
                    }
                }
            }
        };

        // Calls, a few milliseconds apart, until `replica` has taken some: a
        // restarted replica is found again once it accepts connections.
        let until_called = |replica: &Replica| {
            let calls = replica.calls.clone();
            let mut client = client.clone();
            async move {
                let before = calls.load(Ordering::Relaxed);
                for i in 0..1000 {
                    if calls.load(Ordering::Relaxed) > before {
                        return;
                    }
                    if let Err(status) = check(&mut client).await {
                        panic!("call {i} failed: {status:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                panic!("the restarted replica was never called again");
            }
        };

        calls(50).await;
        // A rolling restart: each stopped as Kubernetes stops a pod, then
        // started again on its address.
        first.stop().await;
        calls(50).await;
        let first = Replica::start(first_addr);
        until_called(&first).await;
        second.stop().await;
        calls(50).await;
        let second = Replica::start(second_addr);
        until_called(&second).await;
        // A replica killed outright, its connection open.
        first.kill();
        let survivor = second.calls();
        calls(100).await;
        assert_eq!(
            second.calls(),
            survivor + 100,
            "the survivor took every call"
        );
        // Killed while calls are on their way: none lost either.
        let first = Replica::start(first_addr);
        until_called(&first).await;
        let load = tokio::spawn(calls(300));
        tokio::time::sleep(Duration::from_millis(10)).await;
        second.kill();
        load.await.expect("the calls went on");
        assert!(first.calls() > 0);
    }

    #[tokio::test]
    async fn a_call_is_tried_at_most_three_times_then_fails_unavailable() {
        // Two addresses nothing listens on.
        let gone: Vec<SocketAddr> = (0..2)
            .map(|_| {
                std::net::TcpListener::bind(loopback())
                    .and_then(|l| l.local_addr())
                    .expect("a free port")
            })
            .collect();
        let mut client = HealthClient::new(super::super::channel(
            &Target::Fixed(gone),
            DialSettings::DEFAULT,
        ));
        let status = check(&mut client).await.expect_err("nobody answers");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }

    #[tokio::test]
    async fn replicas_added_to_the_name_get_calls_and_those_removed_none() {
        let (first, second) = (Replica::start(loopback()), Replica::start(loopback()));
        let named = Arc::new(std::sync::Mutex::new(vec![first.addr]));
        let lookup: Lookup = {
            let named = named.clone();
            Arc::new(move || {
                let addrs = named.lock().map(|a| a.clone()).unwrap_or_default();
                Box::pin(async move { Ok(addrs) })
            })
        };
        let target = Target::Dns {
            host: "doumi-bot-headless".into(),
            port: 50051,
        };
        let settings = DialSettings {
            resolve_interval: Duration::from_secs(1),
        };
        let mut client = HealthClient::new(super::super::Channel::new(Replicas::resolving(
            &target,
            settings,
            Some(lookup),
        )));
        check(&mut client).await.expect("answered by the one named");
        assert_eq!((first.calls(), second.calls()), (1, 0));

        // Scaled up: the new replica is called once the name is resolved again.
        named.lock().expect("names").push(second.addr);
        let mut calls = 0;
        while second.calls() == 0 {
            check(&mut client).await.expect("answered");
            calls += 1;
            assert!(calls < 1000, "the added replica was never called");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Scaled down: the replica left the name, so it gets no more calls
        // (it still runs: nothing failed, only the name changed).
        *named.lock().expect("names") = vec![second.addr];
        // While both are known, two calls in a row reach both.
        let mut rounds = 0;
        let before = loop {
            let before = first.calls();
            for _ in 0..2 {
                check(&mut client).await.expect("answered");
            }
            if first.calls() == before {
                break before;
            }
            rounds += 1;
            assert!(rounds < 1000, "the removed replica was called on and on");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        for _ in 0..20 {
            check(&mut client).await.expect("answered");
        }
        assert_eq!(first.calls(), before, "the removed replica is not called");
    }

    #[tokio::test]
    async fn a_name_is_resolved_to_its_replicas() {
        // `localhost` resolves to the loopback addresses only; what matters
        // here is that the name is resolved, not the number of replicas.
        let replica = Replica::start(loopback());
        let target = Target::Dns {
            host: "localhost".into(),
            port: replica.addr.port(),
        };
        let mut client = HealthClient::new(super::super::channel(&target, DialSettings::DEFAULT));
        for _ in 0..10 {
            check(&mut client).await.expect("answered through the name");
        }
        assert_eq!(replica.calls(), 10);
    }
}
