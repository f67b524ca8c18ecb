//! The HTTP surface WeChat and Kubernetes see: `/wechat` (the single
//! account) or `/wechat/NAME` (an account of the accounts file) — GET
//! verification, POST messages in plaintext, compatible or safe mode —
//! `/healthz`, `/readyz` (with each account's standing), `/metrics`. A
//! message flows top to bottom through `receive`: verify → decrypt (safe
//! mode) → parse → the reply window → render → encrypt (safe mode); the
//! envelope's rules are `doumi_wechat::envelope`, the HTTP work is here.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequestParts, Path, Request, State},
    http::request::Parts,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use doumi_proto::bot::v1::{InboundMessage, Reply, event, inbound_message, reply};
use doumi_runtime::{breaker::BreakerState, redis::SharedRedis, telemetry};
use tokio::time::Instant;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};
use tracing::{Instrument, field::Empty};

use doumi_wechat::{
    crypto::KeyUsed,
    envelope::SignedQuery,
    inbound,
    outbound::{self, Addressing, Rendered},
};

use crate::{
    accounts::{Account, Directory},
    error::Refusal,
    metrics as m,
    window::message_tag,
};

/// WeChat's messages are a few KiB; anything past this is not from WeChat.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Outer bound on any request, slow clients included (holding attempts end
/// well before it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
pub struct AppState {
    pub accounts: Directory,
    /// Redis, when replicas share it (for `/readyz`).
    pub redis: Option<SharedRedis>,
    pub timestamp_tolerance: Duration,
    /// False once shutdown starts, so `/readyz` takes the pod out of rotation
    /// while in-flight messages are still answered.
    pub ready: Arc<AtomicBool>,
}

/// Every route, behind the layers each request passes through once: its
/// span, the refusal counter, the request timeout and the body limit.
pub fn router(
    state: AppState,
) -> impl tower::Service<Request, Response = Response, Error = Infallible, Future = impl Send + 'static>
+ Clone
+ Send
+ 'static {
    // One shared copy: axum clones the state for every request.
    let state = Arc::new(state);
    let routes = Router::new()
        .route("/wechat", get(verify_root).post(receive_root))
        .route("/wechat/{account}", get(verify_named).post(receive_named))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { doumi_runtime::metrics::render() }),
        )
        .with_state(state);
    // Around the router, not `Router::layer`: that wraps each route in each
    // layer, every layer boxed, so a request passed four boxes more.
    tower::ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // tower's `map_response`, not axum's: that boxes every request's future.
        .map_response(crate::error::count_other_refusals)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(routes)
}

/// The span of one request: a message's root span on `/wechat` (joined to
/// the caller's trace when a load balancer sends `traceparent`), a debug
/// span for probes and scrapes. Never the query string: it carries the
/// reader's OpenID.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    if !(path == "/wechat" || path.starts_with("/wechat/")) {
        return tracing::debug_span!("http", method = %request.method(), path);
    }
    let span = tracing::info_span!(
        "message",
        otel.name = "POST /wechat",
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = path,
        account = Empty,
        msg = Empty,
        reader = Empty,
        kind = Empty,
        trace_id = Empty,
    );
    telemetry::continue_trace(&span, request.headers());
    span
}

impl AppState {
    /// The account WeChat posts to at `/wechat`.
    fn root(&self) -> Result<&Arc<Account>, Refusal> {
        self.accounts.root().ok_or(Refusal::NoSuchAccount)
    }

    /// The account WeChat posts to at `/wechat/NAME`.
    fn named(&self, name: &str) -> Result<&Arc<Account>, Refusal> {
        self.accounts.get(name).ok_or(Refusal::NoSuchAccount)
    }
}

/// A callback's signed query, read straight from the URI.
struct Callback(SignedQuery);

impl<S: Sync> FromRequestParts<S> for Callback {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Refusal> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(SignedQuery::parse(query)?))
    }
}

async fn verify_root(
    State(state): State<Arc<AppState>>,
    Callback(query): Callback,
) -> Result<String, Refusal> {
    verify_url(state.root()?, query)
}

async fn verify_named(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Callback(query): Callback,
) -> Result<String, Refusal> {
    verify_url(state.named(&name)?, query)
}

/// WeChat's server verification: echo `echostr` when the account's
/// endpoint finds it signed.
fn verify_url(account: &Account, query: SignedQuery) -> Result<String, Refusal> {
    let echostr = account.endpoint().verify_url(query)?;
    tracing::info!(account = &**account.name(), "url verification succeeded");
    Ok(echostr)
}

async fn receive_root(
    State(state): State<Arc<AppState>>,
    Callback(query): Callback,
    body: Bytes,
) -> Result<Response, Refusal> {
    let account = state.root()?;
    receive(&state, account, query, body).await
}

async fn receive_named(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Callback(query): Callback,
    body: Bytes,
) -> Result<Response, Refusal> {
    let account = state.named(&name)?;
    receive(&state, account, query, body).await
}

/// A message or event, from WeChat's request to our reply.
async fn receive(
    state: &AppState,
    account: &Account,
    query: SignedQuery,
    body: Bytes,
) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let endpoint = account.endpoint();
    let signed = tracing::debug_span!("verify")
        .in_scope(|| endpoint.check(&query, now_unix(), state.timestamp_tolerance))?;
    let encrypted = signed.encrypted();
    let opened = tracing::debug_span!("decrypt").in_scope(|| endpoint.open(&signed, &body))?;
    if opened.key == Some(KeyUsed::Previous) {
        metrics::counter!(m::PREVIOUS_KEY, "account" => account.name().clone()).increment(1);
    }
    let mut message = tracing::debug_span!("parse").in_scope(|| inbound::parse(&opened.xml))?;
    message.account = account.name().to_string();
    let kind = kind_label(&message);
    let (reader, to_account) = (message.from_user.clone(), message.to_account.clone());
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("account", &**account.name());
        span.record("msg", message_tag(&message));
        span.record("reader", telemetry::pseudonym(&reader));
        span.record("kind", kind);
    }

    let (reply, outcome) = account
        .window()
        .answer(message, arrived)
        .instrument(tracing::debug_span!("window"))
        .await;
    account.count_request(kind, outcome.as_str());
    let Some(reply) = reply else {
        tracing::info!(
            kind,
            outcome = outcome.as_str(),
            encrypted,
            "attempt abandoned"
        );
        return Ok(abandoned());
    };
    account.count_reply(reply_label(&reply));
    tracing::info!(kind, outcome = outcome.as_str(), encrypted, "answered");

    let to = Addressing {
        reader: &reader,
        account: &to_account,
        now: now_unix(),
    };
    let response = tracing::debug_span!("render").in_scope(|| {
        Ok::<_, Refusal>(match (outbound::render(Some(&reply), &to), opened.key) {
            (Rendered::Xml(xml), Some(key)) => xml_response(endpoint.seal(&xml, key, &signed)?),
            (Rendered::Xml(xml), None) => xml_response(xml),
            (Rendered::Success, _) => (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "success",
            )
                .into_response(),
        })
    })?;
    account.time_attempt(arrived.elapsed());
    Ok(response)
}

/// The end of an attempt WeChat has given up on. Nothing may look like an
/// answer — even an empty body tells WeChat to stop retrying — so the body
/// fails and the connection closes without a complete response.
fn abandoned() -> Response {
    let body = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::other("attempt abandoned: WeChat hung up"))
    });
    Response::new(axum::body::Body::from_stream(body))
}

fn xml_response(xml: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}

/// Ready or draining, then each account's standing with WeChat: a refused
/// account does not make the gateway unready (passive replies still work),
/// but it is where an operator looks first.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (status, word) = if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    };
    let redis = match &state.redis {
        None => String::new(),
        Some(redis) if redis.state() == BreakerState::Closed => "redis: in use\n".to_owned(),
        Some(redis) => format!(
            "redis: skipped after failures, tried again in {}s: each message is answered with \
             what this replica knows\n",
            redis.remaining_cooldown().as_secs()
        ),
    };
    (
        status,
        format!("{word}\n{redis}{}", state.accounts.standing()),
    )
}

/// A bounded label for a message kind.
fn kind_label(message: &InboundMessage) -> &'static str {
    use inbound_message::Kind;
    match &message.kind {
        Some(Kind::Text(_)) => "text",
        Some(Kind::Image(_)) => "image",
        Some(Kind::Voice(_)) => "voice",
        Some(Kind::Video(_)) => "video",
        Some(Kind::Location(_)) => "location",
        Some(Kind::Link(_)) => "link",
        Some(Kind::File(_)) => "file",
        Some(Kind::Event(e)) => match &e.kind {
            Some(event::Kind::Subscribe(_)) => "event_subscribe",
            Some(event::Kind::Unsubscribe(_)) => "event_unsubscribe",
            Some(event::Kind::ScanCode(_)) => "event_scancode",
            Some(event::Kind::Click(_)) => "event_click",
            _ => "event_other",
        },
        Some(Kind::Unknown(_)) | None => "unknown",
    }
}

fn reply_label(reply: &Reply) -> &'static str {
    match &reply.kind {
        Some(reply::Kind::Text(_)) => "text",
        Some(reply::Kind::News(_)) => "news",
        Some(reply::Kind::Image(_)) => "image",
        Some(reply::Kind::Voice(_)) => "voice",
        Some(reply::Kind::Video(_)) => "video",
        Some(reply::Kind::Music(_)) => "music",
        Some(reply::Kind::Transfer(_)) => "transfer",
        Some(reply::Kind::None(_)) | None => "none",
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
