//! The HTTP surface WeChat and Kubernetes see: `/wechat` (GET verification,
//! POST messages), `/healthz`, `/readyz`.

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
use serde::Deserialize;
use tower_http::{timeout::TimeoutLayer, trace::TraceLayer};

use crate::{
    bot_link::BotLink,
    config::WechatToken,
    error::Refusal,
    inbound,
    outbound::{self, Addressing, Rendered},
    signature,
};

/// WeChat's messages are a few KiB; anything past this is not from WeChat.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Outer bound on any request, slow clients included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub token: WechatToken,
    pub bot: BotLink,
    pub timestamp_tolerance: Duration,
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
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/wechat", get(verify_url).post(receive))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

impl AppState {
    /// Checks the plain signature over token, timestamp and nonce, and that
    /// the timestamp is recent. WeChat's retries reuse all three, and pass.
    fn check_signed(&self, query: &SignedQuery) -> Result<(), Refusal> {
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
        Ok(())
    }
}

/// WeChat's server verification: echo `echostr` when the signature holds.
async fn verify_url(
    State(state): State<AppState>,
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
    // Verification signs the same three parts in every encryption mode, and
    // WeChat does not require a fresh timestamp here.
    if !signature::verify(signature, &[state.token.expose(), timestamp, nonce]) {
        return Err(Refusal::BadSignature);
    }
    tracing::info!("url verification succeeded");
    Ok(echostr.clone())
}

/// A message or event: verify, parse, ask the bot, render its reply.
async fn receive(
    State(state): State<AppState>,
    Query(query): Query<SignedQuery>,
    body: Bytes,
) -> Result<Response, Refusal> {
    state.check_signed(&query)?;
    let message = inbound::parse(&body)?;
    let reply = state.bot.reply(message.clone()).await;
    let to = Addressing {
        reader: &message.from_user,
        account: &message.to_account,
        now: now_unix(),
    };
    let rendered = outbound::render(Some(&reply), &to).unwrap_or_else(|error| {
        tracing::error!(%error, "reply dropped");
        Rendered::Success
    });
    Ok(match rendered {
        Rendered::Xml(xml) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            xml,
        )
            .into_response(),
        Rendered::Success => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "success",
        )
            .into_response(),
    })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
