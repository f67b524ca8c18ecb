//! The frame every doumi gRPC server runs in: standard health checking,
//! reflection for grpcurl, traces and metrics on every call (`observe`), a
//! graceful drain on shutdown, each service's unary methods answered directly
//! (`answer`); and the one way doumi's services dial each other.

mod answer;
mod balance;
mod hop;
mod link;
mod message;
pub mod observe;
mod server;
mod target;
mod unary;

pub use answer::{Answer, Answering, Answers, Call, answer, unimplemented};
pub use balance::{DialSettings, MAX_RETRIES};

use hop::{GRPC_TIMEOUT, parse_grpc_timeout};
pub use server::{HealthReporter, ServeError, serve};
pub use target::{Target, TargetError};

use crate::deadline::Deadline;

/// A channel to every replica of another doumi service, every call traced
/// and counted.
pub type Channel = observe::Client<balance::Replicas>;

/// A channel to every replica `target` names, each call to the next replica
/// in turn and moved to another when its replica never started it.
/// Connections are made as calls need them: the service starts (and answers
/// with an apology) while the other is still starting or down. Needs a tokio
/// runtime (a name is resolved in the background).
pub fn channel(target: &Target, settings: DialSettings) -> Channel {
    observe::Client::new(balance::Replicas::new(target, settings))
}

/// The caller's deadline, counted from now: the `grpc-timeout` header tonic
/// and every other gRPC client send (`"14500m"` = 14.5 s), read where a call
/// arrives and where the balancer sends it on. [`Deadline::NONE`] when the
/// caller set none (or sent one that does not parse).
pub fn caller_deadline(headers: &http::HeaderMap) -> Deadline {
    headers
        .get(&GRPC_TIMEOUT)
        .and_then(|value| parse_grpc_timeout(value.to_str().ok()?))
        .map_or(Deadline::NONE, Deadline::after)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grpc_timeout_header_in_every_unit() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(caller_deadline(&headers), Deadline::NONE);
        for (value, want) in [
            ("14500m", Duration::from_millis(14500)),
            ("3S", Duration::from_secs(3)),
            ("2M", Duration::from_secs(120)),
            ("1H", Duration::from_secs(3600)),
            ("250u", Duration::from_micros(250)),
            ("7n", Duration::from_nanos(7)),
        ] {
            headers.insert("grpc-timeout", value.parse().unwrap());
            assert_eq!(caller_deadline(&headers).remaining(), Some(want), "{value}");
        }
        headers.insert("grpc-timeout", "soon".parse().unwrap());
        assert_eq!(caller_deadline(&headers), Deadline::NONE);
    }
}
