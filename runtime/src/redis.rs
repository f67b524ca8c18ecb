//! How every service reaches Redis, said once: the URL (`redis://`,
//! `rediss://` for TLS as managed Redis offerings sell it, `redis+unix://`),
//! the CA bundle a TLS server is verified against when it is not one of the
//! platform's roots, and a password kept apart from a URL that has none (so
//! the URL can sit in a ConfigMap and the password in a Secret).
//!
//! And how a service uses it ([`SharedRedis`]): Redis holds what replicas
//! share, never what a reader's answer needs, so every call has a short
//! timeout, and after [`FAILURES_TO_SKIP`] failures in a row Redis is skipped
//! at once for the cooldown (then one probe) — a Redis outage costs a message
//! nothing but the sharing, not a timeout per call.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    breaker::{BreakerSettings, BreakerState, CircuitBreaker},
    settings::{Problems, duration_text, non_empty},
    throttle::LogThrottle,
};

/// Failures in a row after which Redis is skipped for the cooldown.
pub const FAILURES_TO_SKIP: u32 = 3;

/// How long one Redis call may take, and how long Redis is skipped after
/// repeated failures (`DOUMI_REDIS_TIMEOUT`, `DOUMI_REDIS_COOLDOWN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisPolicy {
    /// Longest a request waits for one Redis command.
    pub timeout: Duration,
    /// How long Redis is skipped after repeated failures before a probe.
    pub cooldown: Duration,
}

impl RedisPolicy {
    /// What the services run with unless configured otherwise (their flags'
    /// defaults are these).
    pub const DEFAULT: Self = Self {
        timeout: Duration::from_millis(100),
        cooldown: Duration::from_secs(5),
    };
}

impl Default for RedisPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Redis as every binary is told of it: one set of flags and variables,
/// flattened once into each binary's command line (and `doumi up`'s, which
/// hands the same to all three services).
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis shared by the replicas of each service (the gateway's reply
    /// window and access_token, the bot's conversations and reader pace, the
    /// catalog's book cache): redis://, rediss:// (TLS) or redis+unix://;
    /// unset = each process alone.
    #[arg(long, env = "DOUMI_REDIS_URL")]
    pub redis_url: Option<String>,
    /// PEM roots a rediss:// server is verified against; unset = the platform's.
    #[arg(long, env = "DOUMI_REDIS_CA_FILE")]
    pub redis_ca_file: Option<String>,
    /// Redis's password, for a DOUMI_REDIS_URL that carries none.
    #[arg(long, env = "DOUMI_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// Longest any Redis call waits before the service goes on without it.
    #[arg(long, env = "DOUMI_REDIS_TIMEOUT", default_value_t = duration_text(RedisPolicy::DEFAULT.timeout))]
    pub redis_timeout: String,
    /// After repeated failures, how long Redis is skipped before a probe.
    #[arg(long, env = "DOUMI_REDIS_COOLDOWN", default_value_t = duration_text(RedisPolicy::DEFAULT.cooldown))]
    pub redis_cooldown: String,
}

/// Where Redis is (`None`: each process alone) and how it is treated.
#[derive(Debug, Clone, Default)]
pub struct RedisSettings {
    pub target: Option<RedisTarget>,
    pub policy: RedisPolicy,
}

impl RedisArgs {
    /// Validates every setting, recording each problem in `problems`.
    pub fn settings(&self, problems: &mut Problems) -> Option<RedisSettings> {
        let target = problems.redis(&self.redis_url, &self.redis_ca_file, &self.redis_password);
        let policy = problems.redis_policy(&self.redis_timeout, &self.redis_cooldown);
        Some(RedisSettings {
            target: target?,
            policy: policy?,
        })
    }
}

/// A service's Redis, guarded: one lazy connection and one breaker for
/// every use in the process; cheap to clone.
#[derive(Clone)]
pub struct SharedRedis {
    connection: ConnectionManager,
    guard: Arc<Guard>,
}

struct Guard {
    /// The service's name, for the series and the log.
    service: &'static str,
    policy: RedisPolicy,
    breaker: CircuitBreaker,
    /// An outage fails every call: its lines are summarised.
    throttle: LogThrottle,
}

impl SharedRedis {
    /// Connects lazily: the service starts (and answers) while Redis is away.
    pub fn connect(
        target: &RedisTarget,
        policy: RedisPolicy,
        service: &'static str,
    ) -> ::redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(policy.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(policy.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(target.client()?, config)?;
        // Dialled now, in the background: a call waits at most the timeout
        // (100 ms by default), and the first one would otherwise pay for the
        // connection and its TLS handshake too, and lose its state to a
        // slow start. A Redis that is away meanwhile costs nothing here.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let mut warm = connection.clone();
            runtime.spawn(async move {
                let _ = ::redis::cmd("PING").query_async::<String>(&mut warm).await;
            });
        }
        metrics::gauge!(crate::metrics::REDIS_IN_USE, "service" => service).set(1.0);
        Ok(Self {
            connection,
            guard: Arc::new(Guard {
                service,
                policy,
                breaker: CircuitBreaker::new(BreakerSettings {
                    failure_threshold: FAILURES_TO_SKIP,
                    cooldown: policy.cooldown,
                }),
                throttle: LogThrottle::default(),
            }),
        })
    }

    /// What `call` gives with a connection, within the timeout; `None` when
    /// Redis is being skipped, failed or was too slow (the caller goes on
    /// without it, as it would without Redis configured).
    ///
    /// Boxed: a Redis call's state is hundreds of bytes, and as part of the
    /// hot path's futures (the window's attempt, the bot's lookup) it was
    /// carried and copied on every message, Redis configured or not.
    pub fn call<'a, T, F, Fut>(&'a self, what: &'static str, call: F) -> BoxFuture<'a, Option<T>>
    where
        F: FnOnce(ConnectionManager) -> Fut + Send + 'a,
        Fut: Future<Output = ::redis::RedisResult<T>> + Send + 'a,
        T: Send + 'a,
    {
        Box::pin(async move {
            let guard = &self.guard;
            let probing = guard.breaker.state() != BreakerState::Closed;
            if !guard.breaker.allow() {
                metrics::counter!(crate::metrics::REDIS_SKIPPED, "service" => guard.service)
                    .increment(1);
                return None;
            }
            if probing && !self.answers_ping().await {
                guard.failed("Redis probe", &"no answer to PING");
                return None;
            }
            match tokio::time::timeout(guard.policy.timeout, call(self.connection.clone())).await {
                Ok(Ok(value)) => {
                    guard.succeeded();
                    Some(value)
                }
                Ok(Err(error)) => {
                    guard.failed(what, &error);
                    None
                }
                Err(_) => {
                    guard.failed(what, &"timed out");
                    None
                }
            }
        })
    }

    /// Whether Redis answers a PING. A connection that an outage broke is
    /// replaced once a command fails on it, so a second PING goes out on the
    /// new one: Redis back is found by the first probe after a cooldown,
    /// not the one after.
    async fn answers_ping(&self) -> bool {
        for _ in 0..2 {
            let mut connection = self.connection.clone();
            let command = ::redis::cmd("PING");
            let ping = command.query_async::<String>(&mut connection);
            if let Ok(Ok(_)) = tokio::time::timeout(self.guard.policy.timeout, ping).await {
                return true;
            }
        }
        false
    }

    /// The connection itself, with this service's timeouts, for a client
    /// that has its own answer to a failure and calls Redis rarely (the
    /// WeChat access_token share, which fetches in-process instead): one
    /// connection per process, not one per use.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Whether Redis is in use, skipped, or about to be probed.
    pub fn state(&self) -> BreakerState {
        self.guard.breaker.state()
    }

    /// How long Redis stays skipped.
    pub fn remaining_cooldown(&self) -> Duration {
        self.guard.breaker.remaining_cooldown()
    }
}

impl Guard {
    fn succeeded(&self) {
        let was = self.breaker.state();
        self.breaker.succeeded();
        if was != BreakerState::Closed {
            metrics::gauge!(crate::metrics::REDIS_IN_USE, "service" => self.service).set(1.0);
            tracing::info!("Redis answers again: shared state is in use again");
        }
    }

    fn failed(&self, what: &'static str, error: &dyn fmt::Display) {
        metrics::counter!(crate::metrics::REDIS_FAILURES, "service" => self.service).increment(1);
        let was = self.breaker.state();
        self.breaker.failed();
        if let Some(held_back) = self.throttle.admit(what) {
            tracing::warn!(%error, held_back, "{what}: Redis failed, going on without it");
        }
        if was != BreakerState::Open && self.breaker.state() == BreakerState::Open {
            metrics::gauge!(crate::metrics::REDIS_IN_USE, "service" => self.service).set(0.0);
            if self.throttle.admit("skipping").is_some() {
                tracing::warn!(
                    cooldown = ?self.policy.cooldown,
                    "Redis skipped after {FAILURES_TO_SKIP} failures in a row: shared state is \
                     kept in this process until a probe finds Redis again"
                );
            }
        }
    }
}

/// The schemes this build dials.
const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];

/// A validated way to Redis; cheap to clone. Its `Display` never shows a
/// password.
#[derive(Clone)]
pub struct RedisTarget {
    url: SecretString,
    /// PEM roots for `rediss://`; `None` = the platform's.
    ca: Option<Vec<u8>>,
    password: Option<SecretString>,
}

impl RedisTarget {
    /// A target from a URL alone: no CA file, no separate password (what
    /// [`Problems::redis`] checks before adding those).
    fn from_url(url: &str) -> Self {
        Self {
            url: SecretString::from(url.to_owned()),
            ca: None,
            password: None,
        }
    }

    /// A client for it: lazy, nothing is dialled until first used.
    pub fn client(&self) -> ::redis::RedisResult<::redis::Client> {
        use ::redis::IntoConnectionInfo;
        let mut info = self.url.expose_secret().into_connection_info()?;
        if let Some(password) = &self.password
            && info.redis_settings().password().is_none()
        {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose_secret());
            info = info.set_redis_settings(settings);
        }
        match &self.ca {
            Some(ca) => ::redis::Client::build_with_tls(
                info,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            None => ::redis::Client::open(info),
        }
    }

    /// Whether the connection is encrypted.
    fn tls(&self) -> bool {
        self.url.expose_secret().starts_with("rediss://")
    }
}

impl fmt::Display for RedisTarget {
    /// The URL with any password replaced, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.expose_secret();
        match url::Url::parse(url) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("***"));
                f.write_str(parsed.as_str())
            }
            _ => f.write_str(url),
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({self})")
    }
}

impl Problems {
    /// `DOUMI_REDIS_TIMEOUT` and `DOUMI_REDIS_COOLDOWN`.
    pub fn redis_policy(&mut self, timeout: &str, cooldown: &str) -> Option<RedisPolicy> {
        let timeout = self.duration("DOUMI_REDIS_TIMEOUT", timeout);
        let cooldown = self.duration("DOUMI_REDIS_COOLDOWN", cooldown);
        if timeout.is_some_and(|t| t.is_zero()) {
            self.add("DOUMI_REDIS_TIMEOUT", "must be above 0");
        }
        Some(RedisPolicy {
            timeout: timeout.filter(|t| !t.is_zero())?,
            cooldown: cooldown?,
        })
    }

    /// Redis, when a URL is given: `Some(None)` without one, `None` when
    /// any part is wrong (each named). `ca_file` is read now, so that a
    /// missing bundle stops start-up rather than the first lookup.
    pub fn redis(
        &mut self,
        url: &Option<String>,
        ca_file: &Option<String>,
        password: &Option<String>,
    ) -> Option<Option<RedisTarget>> {
        const URL: &str = "DOUMI_REDIS_URL";
        const CA_FILE: &str = "DOUMI_REDIS_CA_FILE";
        let Some(url) = non_empty(url) else {
            return Some(None);
        };
        if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            let scheme = url.split("://").next().unwrap_or_default();
            self.add(
                URL,
                format!(
                    "the scheme {scheme:?} cannot be dialled: redis://, rediss:// (TLS) or \
                     redis+unix:// (Sentinel and Cluster are not supported)"
                ),
            );
            return None;
        }
        let target = RedisTarget::from_url(url);
        if let Err(error) = target.client() {
            self.add(URL, format!("is not a Redis URL: {error}"));
            return None;
        }
        let ca = match non_empty(ca_file) {
            None => None,
            Some(path) => match std::fs::read(path) {
                Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
                Ok(_) => {
                    self.add(CA_FILE, format!("{path} holds no PEM certificate"));
                    return None;
                }
                Err(error) => {
                    self.add(CA_FILE, format!("cannot read {path}: {error}"));
                    return None;
                }
            },
        };
        if ca.is_some() && !target.tls() {
            self.add(CA_FILE, "is for TLS: DOUMI_REDIS_URL must be rediss://");
            return None;
        }
        Some(Some(RedisTarget {
            ca,
            password: non_empty(password).map(|p| SecretString::from(p.to_owned())),
            ..target
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, ca: Option<&str>, password: Option<&str>) -> Result<RedisTarget, String> {
        let mut problems = Problems::new();
        let target = problems.redis(
            &Some(url.to_owned()),
            &ca.map(str::to_owned),
            &password.map(str::to_owned),
        );
        problems.finish(target.flatten()).map_err(|e| e.to_string())
    }

    #[test]
    fn urls_the_build_dials_and_those_it_does_not() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://default:pw@redis.example:6380/0",
            "redis+unix:///tmp/redis.sock",
        ] {
            assert!(check(url, None, None).is_ok(), "{url}");
        }
        let error = check("redis+sentinel://host:26379/mymaster", None, None).unwrap_err();
        assert!(
            error.contains("DOUMI_REDIS_URL") && error.contains("Sentinel"),
            "{error}"
        );
        let error = check("http://nope", None, None).unwrap_err();
        assert!(error.contains("\"http\" cannot be dialled"), "{error}");
    }

    #[test]
    fn passwords_stay_out_of_logs_and_a_ca_needs_tls() {
        let target = check("rediss://user:s3cret@redis.example:6380", None, None).unwrap();
        assert!(!target.to_string().contains("s3cret"), "{target}");
        assert!(!format!("{target:?}").contains("s3cret"));
        let error = check("redis://127.0.0.1", Some("/nonexistent/ca.pem"), None).unwrap_err();
        assert!(error.contains("DOUMI_REDIS_CA_FILE"), "{error}");
        let separate = check("redis://127.0.0.1", None, Some("pw")).unwrap();
        let info = ::redis::IntoConnectionInfo::into_connection_info(
            separate.client().unwrap().get_connection_info().clone(),
        )
        .unwrap();
        assert_eq!(info.redis_settings().password(), Some("pw"));
    }
}
