//! One Prometheus recorder per process, shared by every service in it
//! (`doumi up` and the tests run several services in one process, and a
//! process can only have one global `metrics` recorder), with what every
//! service exposes: process metrics, a build-info gauge and the gRPC series.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    sync::{Once, OnceLock, RwLock},
    time::Duration,
};

use axum::{Router, routing::get};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Latency buckets in seconds, spanning a cache hit to WeChat's 15 s of retries.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 4.5, 7.0, 10.0, 15.0,
];

/// The gRPC series, named as the gRPC world's Prometheus middlewares name
/// them, so existing dashboards and alerts apply.
pub const GRPC_SERVER_STARTED: &str = "grpc_server_started_total";
pub const GRPC_SERVER_HANDLED: &str = "grpc_server_handled_total";
pub const GRPC_SERVER_HANDLING: &str = "grpc_server_handling_seconds";
pub const GRPC_CLIENT_STARTED: &str = "grpc_client_started_total";
pub const GRPC_CLIENT_HANDLED: &str = "grpc_client_handled_total";
pub const GRPC_CLIENT_HANDLING: &str = "grpc_client_handling_seconds";
/// Calls sent again to another replica because theirs never started them.
pub const GRPC_CLIENT_RETRIES: &str = "doumi_grpc_client_retries_total";
/// The replicas a client knows of, per target.
pub const GRPC_CLIENT_REPLICAS: &str = "doumi_grpc_client_replicas";
/// `1`, labelled with the service and its version.
pub const BUILD_INFO: &str = "doumi_build_info";
/// Per service: 1 while Redis is in use, 0 while it is skipped after failures.
pub const REDIS_IN_USE: &str = "doumi_redis_in_use";
/// Per service: Redis calls not made because Redis is being skipped.
pub const REDIS_SKIPPED: &str = "doumi_redis_skipped_total";
/// Per service: Redis calls that failed or timed out.
pub const REDIS_FAILURES: &str = "doumi_redis_failures_total";

/// Every series this module exposes in each service (the process ones as
/// the `metrics-process` collector names them on Linux): what dashboards and
/// alert rules may rely on.
pub const NAMES: &[&str] = &[
    GRPC_SERVER_STARTED,
    GRPC_SERVER_HANDLED,
    GRPC_SERVER_HANDLING,
    GRPC_CLIENT_STARTED,
    GRPC_CLIENT_HANDLED,
    GRPC_CLIENT_HANDLING,
    GRPC_CLIENT_RETRIES,
    GRPC_CLIENT_REPLICAS,
    BUILD_INFO,
    REDIS_IN_USE,
    REDIS_SKIPPED,
    REDIS_FAILURES,
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_threads",
];

/// A series on a message's path, told apart by labels whose values are few
/// and fixed (a message's kind, an outcome; none at all), each registered the
/// first time it is used and kept: a message then costs a small map lookup
/// and an atomic add, not the registry's hashing of the name and every label.
/// Registered on first use, so a series made before the recorder is installed
/// still counts. `fixed` labels (an account's name) are the same on all.
pub struct Series<H, const N: usize> {
    name: &'static str,
    keys: [&'static str; N],
    fixed: Vec<metrics::Label>,
    /// Keyed by doumi's own label values, never by input: hashed fast.
    seen: RwLock<HashMap<[&'static str; N], H, rustc_hash::FxBuildHasher>>,
}

/// Counters kept by [`Series`].
pub type Counters<const N: usize> = Series<metrics::Counter, N>;
/// Histograms kept by [`Series`].
pub type Histograms<const N: usize> = Series<metrics::Histogram, N>;

/// A handle [`Series`] registers and keeps.
pub trait Handle: Sized {
    fn register(name: &'static str, labels: Vec<metrics::Label>) -> Self;
}

impl Handle for metrics::Counter {
    fn register(name: &'static str, labels: Vec<metrics::Label>) -> Self {
        metrics::counter!(name, labels)
    }
}

impl Handle for metrics::Histogram {
    fn register(name: &'static str, labels: Vec<metrics::Label>) -> Self {
        metrics::histogram!(name, labels)
    }
}

impl<H: Handle, const N: usize> Series<H, N> {
    pub fn new(name: &'static str, keys: [&'static str; N], fixed: Vec<metrics::Label>) -> Self {
        Self {
            name,
            keys,
            fixed,
            seen: RwLock::default(),
        }
    }

    /// Hands `update` the series labelled `values` (in the order of the keys).
    fn with(&self, values: [&'static str; N], update: impl FnOnce(&H)) {
        if let Ok(seen) = self.seen.read()
            && let Some(handle) = seen.get(&values)
        {
            return update(handle);
        }
        let labels = self.fixed.iter().cloned().chain(
            self.keys
                .iter()
                .zip(values)
                .map(|(key, value)| metrics::Label::from_static_parts(key, value)),
        );
        let handle = H::register(self.name, labels.collect());
        update(&handle);
        if let Ok(mut seen) = self.seen.write() {
            seen.insert(values, handle);
        }
    }
}

impl<const N: usize> Counters<N> {
    /// Adds one to the series labelled `values`.
    pub fn increment(&self, values: [&'static str; N]) {
        self.with(values, |counter| counter.increment(1));
    }
}

impl<const N: usize> Histograms<N> {
    /// Records `value` in the series labelled `values`.
    pub fn record(&self, values: [&'static str; N], value: f64) {
        self.with(values, |histogram| histogram.record(value));
    }
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use.
/// `None` if some other recorder was installed first; metrics then go there.
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = builder
                .set_buckets(LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let installed = metrics::set_global_recorder(recorder).ok().map(|()| handle);
            if let Some(handle) = &installed {
                describe_common();
                keep_up(handle.clone());
            }
            installed
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Folds the samples histograms collect into their buckets every few
/// seconds. Without it they pile up until the next scrape, and with no
/// scraper (a listener `off`, a benchmark) memory grows with every call.
fn keep_up(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no metrics upkeep thread: histograms grow until scraped");
    }
}

fn process() -> &'static metrics_process::Collector {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS.get_or_init(metrics_process::Collector::default)
}

fn describe_common() {
    process().describe();
    metrics::describe_gauge!(BUILD_INFO, "1, labelled with the service and its version");
    metrics::describe_gauge!(
        REDIS_IN_USE,
        "1 while the service uses Redis, 0 while it skips it after failures (until a probe)"
    );
    metrics::describe_counter!(
        REDIS_SKIPPED,
        "Redis calls not made because Redis is being skipped after failures"
    );
    metrics::describe_counter!(
        REDIS_FAILURES,
        "Redis calls that failed or timed out (the service went on without Redis)"
    );
    metrics::describe_counter!(GRPC_SERVER_STARTED, "gRPC calls started on the server");
    metrics::describe_counter!(
        GRPC_SERVER_HANDLED,
        "gRPC calls completed on the server, by status code"
    );
    metrics::describe_histogram!(
        GRPC_SERVER_HANDLING,
        metrics::Unit::Seconds,
        "Time the server took to answer a gRPC call"
    );
    metrics::describe_counter!(GRPC_CLIENT_STARTED, "gRPC calls started by this client");
    metrics::describe_counter!(
        GRPC_CLIENT_HANDLED,
        "gRPC calls this client saw completed, by status code"
    );
    metrics::describe_histogram!(
        GRPC_CLIENT_HANDLING,
        metrics::Unit::Seconds,
        "Time a gRPC call took, as this client saw it"
    );
    metrics::describe_counter!(
        GRPC_CLIENT_RETRIES,
        "gRPC calls sent again to another replica because theirs never started them, by target"
    );
    metrics::describe_gauge!(
        GRPC_CLIENT_REPLICAS,
        "Replicas this client knows of, by target"
    );
}

/// Announces a service of this process in `doumi_build_info`.
pub fn register_service(service: &'static str) {
    let _ = prometheus();
    metrics::gauge!(BUILD_INFO, "service" => service, "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

/// Runs `describe` once per process: HELP lines for a service's own series.
pub fn describe_once(once: &'static Once, describe: fn()) {
    let _ = prometheus();
    once.call_once(describe);
}

/// The metrics in Prometheus' text format, process metrics freshly read.
pub fn render() -> String {
    let Some(handle) = prometheus() else {
        return String::new();
    };
    process().collect();
    handle.render()
}

/// Why a metrics listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for metrics on {addr}")]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds the `/metrics` listener at `addr`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves: a small
/// HTTP listener beside a gRPC port, for Prometheus to scrape.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = prometheus();
    let app = Router::new().route("/metrics", get(|| async { render() }));
    tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `/metrics` on `listener` in the background until `shutdown`
/// resolves; a failure is logged, never fatal to the service.
pub fn spawn(listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(async move {
        if let Err(error) = serve(listener, shutdown).await {
            tracing::error!(%error, "metrics listener failed");
        }
    });
}
