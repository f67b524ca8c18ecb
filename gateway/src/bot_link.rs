//! The gateway's side of the gRPC hop to the bot: one call per message, cut
//! off at a deadline, and a reader-facing sentence whenever the bot cannot
//! answer in time, so WeChat never shows its own error.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use doumi_proto::bot::v1::{InboundMessage, REPLY, Reply, ReplyRequest};
use doumi_runtime::{grpc::Channel, metrics::Histograms, throttle::LogThrottle};

/// What the reader sees when the bot is down or too slow.
pub const BOT_UNAVAILABLE: &str = "抱歉，豆米暂时有点忙，请稍后再发一次。";

/// A lazily connected client for the bot.
#[derive(Clone)]
pub struct BotLink {
    channel: Channel,
    /// A bot outage fails every message: its lines are summarised.
    failures: Arc<LogThrottle>,
    latency: Arc<Histograms<0>>,
}

impl BotLink {
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            failures: Arc::new(LogThrottle::default()),
            latency: Arc::new(Histograms::new(crate::metrics::BOT_LATENCY, [], Vec::new())),
        }
    }

    /// The bot's reply to `message`, or an apology when it fails or misses `deadline`.
    pub async fn reply(&self, message: InboundMessage, deadline: Duration) -> Reply {
        let started = Instant::now();
        let request = ReplyRequest {
            message: Some(message),
        };
        // The deadline travels with the call (grpc-timeout) so the bot and the
        // catalog behind it can plan for it, and is enforced here too.
        let result = self.channel.unary(&REPLY, &request, deadline).await;
        self.latency.record([], started.elapsed().as_secs_f64());
        match result {
            Ok(answer) => answer.reply.unwrap_or_default(),
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
                metrics::counter!(crate::metrics::DEADLINE_HITS).increment(1);
                if let Some(held_back) = self.failures.admit("deadline") {
                    tracing::warn!(?deadline, held_back, "bot did not answer in time");
                }
                busy()
            }
            Err(status) => {
                metrics::counter!(crate::metrics::BOT_ERRORS).increment(1);
                if let Some(held_back) = self.failures.admit(status.code().description()) {
                    tracing::warn!(
                        code = ?status.code(),
                        message = status.message(),
                        held_back,
                        "bot call failed"
                    );
                }
                busy()
            }
        }
    }
}

/// The reader-facing sentence for a bot that cannot answer now.
pub fn busy() -> Reply {
    Reply::text(BOT_UNAVAILABLE)
}
