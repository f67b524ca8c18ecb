//! The gateway's side of the gRPC hop to the bot: one call per message, cut
//! off at the reply budget, and a reader-facing sentence whenever the bot
//! cannot answer in time, so WeChat never shows its own error.

use std::time::Duration;

use doumi_proto::bot::v1::{
    InboundMessage, Reply, ReplyRequest, TextReply, bot_client::BotClient, reply,
};
use tonic::transport::Channel;

/// What the reader sees when the bot is down or too slow.
pub const BOT_UNAVAILABLE: &str = "抱歉，豆米暂时有点忙，请稍后再发一次。";

/// A lazily connected client for the bot.
#[derive(Clone)]
pub struct BotLink {
    client: BotClient<Channel>,
    budget: Duration,
}

impl BotLink {
    pub fn new(channel: Channel, budget: Duration) -> Self {
        Self {
            client: BotClient::new(channel),
            budget,
        }
    }

    /// The bot's reply to `message`, or an apology when it fails or is late.
    pub async fn reply(&self, message: InboundMessage) -> Reply {
        let mut request = tonic::Request::new(ReplyRequest {
            message: Some(message),
        });
        // The deadline travels with the call (grpc-timeout), and is enforced here too.
        request.set_timeout(self.budget);
        match tokio::time::timeout(self.budget, self.client.clone().reply(request)).await {
            Ok(Ok(response)) => response.into_inner().reply.unwrap_or_default(),
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "bot call failed");
                apology()
            }
            Err(_elapsed) => {
                tracing::warn!(budget = ?self.budget, "bot did not answer within the reply budget");
                apology()
            }
        }
    }
}

fn apology() -> Reply {
    Reply {
        kind: Some(reply::Kind::Text(TextReply {
            content: BOT_UNAVAILABLE.to_owned(),
        })),
    }
}
