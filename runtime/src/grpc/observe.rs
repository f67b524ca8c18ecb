//! What every gRPC call records, on both ends of a hop: a span joined to
//! the caller's trace (W3C `traceparent` in the metadata), the message tag
//! carried from service to service, and the `grpc_*` metrics per method and
//! status code.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tracing::{Instrument, field::Empty};

use crate::{metrics as m, telemetry};

/// The metadata key that carries a message's tag from hop to hop.
pub static MESSAGE_TAG: http::HeaderName = http::HeaderName::from_static("doumi-message");

/// Distinct methods labelled by name; past this (a caller inventing method
/// names) calls are labelled `unknown`, so the series stay bounded.
const MAX_METHODS: usize = 64;

/// A method's labels, interned once for the life of the process.
#[derive(Clone, Copy)]
struct Method {
    service: &'static str,
    method: &'static str,
    /// `service/method`, the span name gRPC tracing conventions use.
    name: &'static str,
}

const UNKNOWN: Method = Method {
    service: "unknown",
    method: "unknown",
    name: "unknown",
};

/// A method with its series on one end of a hop, registered once: a call
/// then costs a few atomic additions, not a label lookup per series.
struct Observed {
    method: Method,
    started: metrics::Counter,
    handling: metrics::Histogram,
    /// `handled`'s name, for the per-code counters made on first use.
    handled_name: &'static str,
    /// One counter per gRPC code (0–16), registered when first seen.
    handled: [OnceLock<metrics::Counter>; 17],
}

impl Observed {
    fn new(series: &Series, method: Method) -> Self {
        Self {
            method,
            started: metrics::counter!(
                series.started,
                "grpc_service" => method.service,
                "grpc_method" => method.method,
            ),
            handling: metrics::histogram!(
                series.handling,
                "grpc_service" => method.service,
                "grpc_method" => method.method,
            ),
            handled_name: series.handled,
            handled: Default::default(),
        }
    }

    fn handled(&self, code: tonic::Code) -> Option<&metrics::Counter> {
        let slot = self.handled.get(usize::try_from(code as i32).ok()?)?;
        Some(slot.get_or_init(|| {
            metrics::counter!(
                self.handled_name,
                "grpc_service" => self.method.service,
                "grpc_method" => self.method.method,
                "grpc_code" => code_name(code),
            )
        }))
    }
}

/// The methods one end of a hop has seen; only paths under `services` get
/// their own labels.
struct Methods {
    series: &'static Series,
    services: Vec<&'static str>,
    /// At most [`MAX_METHODS`] entries, so a caller's invented paths cannot
    /// make lookups slow: hashed fast.
    seen: RwLock<HashMap<String, Arc<Observed>, rustc_hash::FxBuildHasher>>,
    unknown: Arc<Observed>,
}

impl Methods {
    fn new(series: &'static Series, services: Vec<&'static str>) -> Self {
        // Handles made before the recorder exists would count nowhere.
        let _ = m::prometheus();
        Self {
            series,
            services,
            seen: RwLock::default(),
            unknown: Arc::new(Observed::new(series, UNKNOWN)),
        }
    }

    fn label(&self, path: &str) -> Arc<Observed> {
        let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
            return self.unknown.clone();
        };
        if !self.services.is_empty() && !self.services.contains(&service) {
            return self.unknown.clone();
        }
        if let Some(known) = self
            .seen
            .read()
            .ok()
            .and_then(|seen| seen.get(path).cloned())
        {
            return known;
        }
        let Ok(mut seen) = self.seen.write() else {
            return self.unknown.clone();
        };
        if seen.len() >= MAX_METHODS {
            return seen
                .get(path)
                .cloned()
                .unwrap_or_else(|| self.unknown.clone());
        }
        // Leaked once per distinct method, at most MAX_METHODS of them.
        let method = Method {
            service: Box::leak(service.into()),
            method: Box::leak(method.into()),
            name: Box::leak(format!("{service}/{method}").into_boxed_str()),
        };
        seen.entry(path.to_owned())
            .or_insert_with(|| Arc::new(Observed::new(self.series, method)))
            .clone()
    }

    /// Records how a call that started at `started` ended, on `span` and in
    /// the metrics (with one debug line: the access log).
    fn finish(
        &self,
        observed: &Observed,
        code: tonic::Code,
        started: Instant,
        span: &tracing::Span,
    ) {
        let elapsed = started.elapsed();
        span.record("rpc.grpc.status_code", code as i32);
        span.in_scope(|| tracing::debug!(code = code_name(code), ?elapsed, "grpc call"));
        // A method nobody serves is the caller's invention: not a label of its own.
        let observed = if code == tonic::Code::Unimplemented {
            &self.unknown
        } else {
            observed
        };
        observed.handling.record(elapsed.as_secs_f64());
        if let Some(handled) = observed.handled(code) {
            handled.increment(1);
        }
    }
}

/// The Go name of a gRPC status code, as Prometheus labels spell it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// The status of a unary call from its response headers: tonic sends a
/// failure as a trailers-only response (`grpc-status` in the headers), and a
/// response without it carries a message, so the call succeeded.
fn status_of(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get(&GRPC_STATUS)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

/// The series one end of a hop records, per method (and code, once done).
struct Series {
    started: &'static str,
    handled: &'static str,
    handling: &'static str,
}

const SERVER: Series = Series {
    started: m::GRPC_SERVER_STARTED,
    handled: m::GRPC_SERVER_HANDLED,
    handling: m::GRPC_SERVER_HANDLING,
};

const CLIENT: Series = Series {
    started: m::GRPC_CLIENT_STARTED,
    handled: m::GRPC_CLIENT_HANDLED,
    handling: m::GRPC_CLIENT_HANDLING,
};

/// The service polled ready takes this call; a fresh clone waits for the
/// next one (tower's usual swap).
fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}

/// The server side: wraps every service a doumi gRPC server serves.
#[derive(Clone)]
pub struct Server<S> {
    inner: S,
    methods: Arc<Methods>,
}

impl<S> Server<S> {
    /// Labels calls to `services` by method; other paths are `unknown`.
    pub fn new(services: Vec<&'static str>, inner: S) -> Self {
        Self {
            inner,
            methods: Arc::new(Methods::new(&SERVER, services)),
        }
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Server<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let observed = self.methods.label(request.uri().path());
        let method = observed.method;
        let tag = request
            .headers()
            .get(&MESSAGE_TAG)
            .and_then(|value| value.to_str().ok())
            .filter(|tag| tag.len() <= 64)
            .map(str::to_owned);
        let span = tracing::info_span!(
            "grpc",
            otel.name = method.name,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = method.name,
            rpc.grpc.status_code = Empty,
            msg = tag.as_deref(),
            trace_id = Empty,
        );
        telemetry::continue_trace(&span, request.headers());
        observed.started.increment(1);
        let started = Instant::now();
        let methods = self.methods.clone();
        let call = take_ready(&mut self.inner)
            .call(request)
            .instrument(span.clone());
        Box::pin(async move {
            let result = match tag {
                Some(tag) => telemetry::for_message(tag, call).await,
                None => call.await,
            };
            let code = match &result {
                Ok(response) => status_of(response.headers()),
                Err(_) => tonic::Code::Unknown,
            };
            methods.finish(&observed, code, started, &span);
            result
        })
    }
}

/// The client side: wraps a channel to another doumi service.
#[derive(Clone)]
pub struct Client<S> {
    pub(super) inner: S,
    methods: Arc<Methods>,
}

impl<S> Client<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            methods: Arc::new(Methods::new(&CLIENT, Vec::new())),
        }
    }

    /// A call to `path` starts: its span, its trace and message tag added to
    /// `headers`, its method's `started` counted.
    pub(super) fn start(&self, path: &str, headers: &mut http::HeaderMap) -> ClientCall {
        let observed = self.methods.label(path);
        let method = observed.method;
        let span = tracing::debug_span!(
            "grpc.client",
            otel.name = method.name,
            otel.kind = "client",
            rpc.system = "grpc",
            rpc.method = method.name,
            rpc.grpc.status_code = Empty,
        );
        telemetry::inject_trace(&span, headers);
        if let Some(tag) = telemetry::message_tag()
            && let Ok(value) = http::HeaderValue::from_str(&tag)
        {
            headers.insert(MESSAGE_TAG.clone(), value);
        }
        observed.started.increment(1);
        ClientCall {
            methods: self.methods.clone(),
            observed,
            span,
            started: Instant::now(),
        }
    }
}

/// A client's call under way, until [`ClientCall::end`] records how it ended.
pub(super) struct ClientCall {
    methods: Arc<Methods>,
    observed: Arc<Observed>,
    pub(super) span: tracing::Span,
    started: Instant,
}

impl ClientCall {
    pub(super) fn end(self, code: tonic::Code) {
        self.methods
            .finish(&self.observed, code, self.started, &self.span);
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for Client<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let observed = self.start(parts.uri.path(), &mut parts.headers);
        let call = take_ready(&mut self.inner)
            .call(http::Request::from_parts(parts, body))
            .instrument(observed.span.clone());
        Box::pin(async move {
            let result = call.await;
            let code = match &result {
                Ok(response) => status_of(response.headers()),
                // No connection: what tonic reports for a transport failure.
                Err(_) => tonic::Code::Unavailable,
            };
            observed.end(code);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_by_name_and_bounded() {
        let methods = Methods::new(&SERVER, vec!["doumi.catalog.v1.BookCatalog"]);
        let known = methods
            .label("/doumi.catalog.v1.BookCatalog/GetBook")
            .method;
        assert_eq!(
            (known.service, known.method, known.name),
            (
                "doumi.catalog.v1.BookCatalog",
                "GetBook",
                "doumi.catalog.v1.BookCatalog/GetBook"
            )
        );
        assert_eq!(
            methods.label("/evil.Service/Anything").method.name,
            "unknown"
        );
        assert_eq!(methods.label("no-slashes").method.name, "unknown");
        for i in 0..2 * MAX_METHODS {
            methods.label(&format!("/doumi.catalog.v1.BookCatalog/Invented{i}"));
        }
        assert_eq!(methods.seen.read().unwrap().len(), MAX_METHODS);
        assert_eq!(
            methods
                .label("/doumi.catalog.v1.BookCatalog/Invented999")
                .method
                .name,
            "unknown"
        );
    }

    #[test]
    fn status_comes_from_trailers_only_responses() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_of(&headers), tonic::Code::Ok);
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_of(&headers), tonic::Code::NotFound);
        assert_eq!(code_name(tonic::Code::Cancelled), "Canceled");
    }
}
