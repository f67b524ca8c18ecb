//! What every fake upstream shares: counting requests per path, answering
//! with a canned failure or after a delay when told to ([`Behaviour`]), and
//! serving on a loopback port until dropped ([`Running`]). Each fake is a
//! `Running<ItsState>` with the few methods only it has.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio_util::sync::CancellationToken;

/// How a fake behaves, and what it has seen.
#[derive(Debug, Default)]
pub struct Behaviour {
    calls: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
    /// Status and body to answer every request with, instead of the real answer.
    canned: Mutex<Option<(u16, String)>>,
    delay_ms: AtomicU64,
}

impl Behaviour {
    /// Counts a request to `path`, waits any delay, and returns the canned
    /// failure if one is set.
    pub async fn enter(&self, path: String) -> Option<Response> {
        self.total.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(path).or_default() += 1;
        }
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let canned = self.canned.lock().ok().and_then(|c| c.clone());
        canned.map(|(status, body)| {
            let content_type = if body.trim_start().starts_with('{') {
                "application/json"
            } else {
                "text/html"
            };
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [(header::CONTENT_TYPE, content_type)],
                body,
            )
                .into_response()
        })
    }

    pub fn calls(&self, path: &str) -> u64 {
        self.calls
            .lock()
            .map(|c| c.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    /// Answer every request with `status` and `body` until reset with `None`.
    pub fn answer_with(&self, canned: Option<(u16, &str)>) {
        if let Ok(mut slot) = self.canned.lock() {
            *slot = canned.map(|(status, body)| (status, body.to_owned()));
        }
    }

    /// Answer every request with `status` and an HTML error page (what a
    /// proxy in front of a dead upstream sends) until reset with `None`.
    pub fn fail_with(&self, status: Option<u16>) {
        self.answer_with(status.map(|status| (status, "<html>upstream trouble</html>")));
    }

    /// Delay every answer by `delay`.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

/// The state of a fake whose requests go through a [`Behaviour`].
pub trait Behaves: Send + Sync + 'static {
    fn behaviour(&self) -> &Behaviour;
}

/// A fake upstream serving on a loopback port: its base URL and its state;
/// stops when dropped.
pub struct Running<S> {
    url: String,
    state: Arc<S>,
    stop: CancellationToken,
}

impl<S: Send + Sync + 'static> Running<S> {
    /// Serves the router `app` builds over the shared `state`.
    pub async fn serve(state: S, app: impl FnOnce(Arc<S>) -> Router) -> anyhow::Result<Self> {
        let state = Arc::new(state);
        let (url, stop) = serve(app(state.clone())).await?;
        Ok(Self { url, state, stop })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn state(&self) -> &S {
        &self.state
    }
}

/// Every fake's knobs, in one place.
impl<S: Behaves> Running<S> {
    pub fn behaviour(&self) -> &Behaviour {
        self.state.behaviour()
    }

    /// Requests seen in all.
    pub fn total_calls(&self) -> u64 {
        self.behaviour().total_calls()
    }

    /// See [`Behaviour::answer_with`].
    pub fn answer_with(&self, canned: Option<(u16, &str)>) {
        self.behaviour().answer_with(canned);
    }

    /// See [`Behaviour::fail_with`].
    pub fn fail_with(&self, status: Option<u16>) {
        self.behaviour().fail_with(status);
    }

    /// See [`Behaviour::delay`].
    pub fn delay(&self, delay: Duration) {
        self.behaviour().delay(delay);
    }
}

impl<S> Drop for Running<S> {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves `app` on a free loopback port; returns its base URL and the token
/// that stops it.
pub(crate) async fn serve(app: Router) -> anyhow::Result<(String, CancellationToken)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((url, stop))
}
