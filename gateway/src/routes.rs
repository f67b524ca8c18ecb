//! The HTTP surface WeChat and Kubernetes see: `/wechat` (GET verification,
//! POST messages in plaintext, compatible or safe mode), `/healthz`,
//! `/readyz`, `/metrics`. A message flows top to bottom through `receive`:
//! verify → decrypt (safe mode) → parse → the reply window → render →
//! encrypt (safe mode).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use doumi_proto::bot::v1::{InboundMessage, Reply, event, inbound_message, reply};
use doumi_runtime::telemetry;
use serde::Deserialize;
use tokio::time::Instant;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};
use tracing::{Instrument, field::Empty};

use doumi_wechat::{
    crypto::{CryptoError, MessageCrypto},
    inbound,
    outbound::{self, Addressing, Rendered},
    signature,
};

use crate::{
    config::WechatToken,
    error::Refusal,
    metrics as m,
    window::{ReplyWindow, message_tag},
};

/// WeChat's messages are a few KiB; anything past this is not from WeChat.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Outer bound on any request, slow clients included (holding attempts end
/// well before it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
pub struct AppState {
    pub token: WechatToken,
    pub window: ReplyWindow,
    pub timestamp_tolerance: Duration,
    pub crypto: Option<MessageCrypto>,
    pub require_encryption: bool,
    /// False once shutdown starts, so `/readyz` takes the pod out of rotation
    /// while in-flight messages are still answered.
    pub ready: Arc<AtomicBool>,
}

/// The query WeChat signs every request with.
#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    signature: Option<String>,
    timestamp: Option<String>,
    nonce: Option<String>,
    echostr: Option<String>,
    encrypt_type: Option<String>,
    msg_signature: Option<String>,
}

pub fn router(state: AppState) -> Router {
    // One shared copy: axum clones the state for every request.
    let state = Arc::new(state);
    Router::new()
        .route("/wechat", get(verify_url).post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(|| async { doumi_runtime::metrics::render() }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::map_response(
            crate::error::count_other_refusals,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

/// The span of one request: a message's root span on `/wechat` (joined to
/// the caller's trace when a load balancer sends `traceparent`), a debug
/// span for probes and scrapes. Never the query string: it carries the
/// reader's OpenID.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    if path != "/wechat" {
        return tracing::debug_span!("http", method = %request.method(), path);
    }
    let span = tracing::info_span!(
        "message",
        otel.name = "POST /wechat",
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = path,
        msg = Empty,
        reader = Empty,
        kind = Empty,
        trace_id = Empty,
    );
    telemetry::continue_trace(&span, request.headers());
    span
}

/// The signed parts of a request, once present.
struct Signed<'a> {
    timestamp: &'a str,
    nonce: &'a str,
}

impl AppState {
    /// Checks the plain signature over token, timestamp and nonce, and that
    /// the timestamp is recent. WeChat's retries reuse all three, and pass.
    fn check_signed<'q>(&self, query: &'q SignedQuery) -> Result<Signed<'q>, Refusal> {
        let (Some(signature), Some(timestamp), Some(nonce)) =
            (&query.signature, &query.timestamp, &query.nonce)
        else {
            return Err(Refusal::Unsigned);
        };
        if !signature::verify(signature, &[self.token.expose(), timestamp, nonce]) {
            return Err(Refusal::BadSignature);
        }
        let sent: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| Refusal::StaleTimestamp)?;
        if (now_unix() - sent).unsigned_abs() > self.timestamp_tolerance.as_secs() {
            return Err(Refusal::StaleTimestamp);
        }
        Ok(Signed { timestamp, nonce })
    }

    /// The message XML: the body itself in plaintext mode, the decrypted
    /// `Encrypt` in safe and compatible mode (whose plaintext copy is ignored).
    fn open(
        &self,
        query: &SignedQuery,
        signed: &Signed<'_>,
        body: &[u8],
    ) -> Result<(Vec<u8>, bool), Refusal> {
        let encrypted = query
            .encrypt_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("aes"));
        if !encrypted {
            if self.require_encryption {
                return Err(Refusal::PlaintextRefused);
            }
            return Ok((body.to_vec(), false));
        }
        let crypto = self
            .crypto
            .as_ref()
            .ok_or(Refusal::EncryptionNotConfigured)?;
        // Without msg_signature nothing vouches for the payload: never fall back to plaintext.
        let msg_signature = query
            .msg_signature
            .as_deref()
            .ok_or(CryptoError::ValidateSignature)?;
        let payload = inbound::parse_encrypted(body).map_err(|e| match e {
            inbound::ParseError::Missing(_) | inbound::ParseError::Xml(_) => {
                Refusal::Crypto(CryptoError::ParseXml)
            }
            other => Refusal::BadMessage(other),
        })?;
        MessageCrypto::verify(
            self.token.expose(),
            signed.timestamp,
            signed.nonce,
            &payload,
            msg_signature,
        )?;
        Ok((crypto.decrypt(&payload)?.into_bytes(), true))
    }

    /// The safe-mode reply envelope around `xml`, signed like WeChat's own.
    fn seal(&self, xml: &str, signed: &Signed<'_>) -> Result<String, Refusal> {
        let crypto = self
            .crypto
            .as_ref()
            .ok_or(Refusal::EncryptionNotConfigured)?;
        outbound::seal(
            crypto,
            self.token.expose(),
            signed.timestamp,
            signed.nonce,
            xml,
        )
        .map_err(|error| {
            tracing::error!(%error, "sealing the reply failed");
            Refusal::Crypto(CryptoError::ParseXml)
        })
    }
}

/// WeChat's server verification: echo `echostr` when the signature holds.
/// It is signed the same way in every encryption mode.
async fn verify_url(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SignedQuery>,
) -> Result<String, Refusal> {
    let (Some(signature), Some(timestamp), Some(nonce), Some(echostr)) = (
        &query.signature,
        &query.timestamp,
        &query.nonce,
        &query.echostr,
    ) else {
        return Err(Refusal::Unsigned);
    };
    if !signature::verify(signature, &[state.token.expose(), timestamp, nonce]) {
        return Err(Refusal::BadSignature);
    }
    tracing::info!("url verification succeeded");
    Ok(echostr.clone())
}

/// A message or event, from WeChat's request to our reply.
async fn receive(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SignedQuery>,
    body: Bytes,
) -> Result<Response, Refusal> {
    let arrived = Instant::now();
    let signed = tracing::debug_span!("verify").in_scope(|| state.check_signed(&query))?;
    let (xml, encrypted) =
        tracing::debug_span!("decrypt").in_scope(|| state.open(&query, &signed, &body))?;
    let message = tracing::debug_span!("parse").in_scope(|| inbound::parse(&xml))?;
    let kind = kind_label(&message);
    let (reader, account) = (message.from_user.clone(), message.to_account.clone());
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("msg", message_tag(&message));
        span.record("reader", telemetry::pseudonym(&reader));
        span.record("kind", kind);
    }

    let (reply, outcome) = state
        .window
        .answer(message, arrived)
        .instrument(tracing::debug_span!("window"))
        .await;
    metrics::counter!(m::REQUESTS, "kind" => kind, "outcome" => outcome.as_str()).increment(1);
    let Some(reply) = reply else {
        tracing::info!(
            kind,
            outcome = outcome.as_str(),
            encrypted,
            "attempt abandoned"
        );
        return Ok(abandoned());
    };
    metrics::counter!(m::REPLIES, "kind" => reply_label(&reply)).increment(1);
    tracing::info!(kind, outcome = outcome.as_str(), encrypted, "answered");

    let to = Addressing {
        reader: &reader,
        account: &account,
        now: now_unix(),
    };
    let response = tracing::debug_span!("render").in_scope(|| {
        let rendered = outbound::render(Some(&reply), &to).unwrap_or_else(|error| {
            tracing::error!(%error, "reply dropped");
            Rendered::Success
        });
        Ok::<_, Refusal>(match rendered {
            Rendered::Xml(xml) if encrypted => xml_response(state.seal(&xml, &signed)?),
            Rendered::Xml(xml) => xml_response(xml),
            Rendered::Success => (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "success",
            )
                .into_response(),
        })
    })?;
    metrics::histogram!(m::ATTEMPT_LATENCY).record(arrived.elapsed().as_secs_f64());
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

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
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
