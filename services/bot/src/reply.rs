//! Shorthands for the typed replies the bot sends back.

use doumi_proto::bot::v1::{NoReply, Reply, TextReply, reply};

pub fn text(content: String) -> Reply {
    Reply {
        kind: Some(reply::Kind::Text(TextReply { content })),
    }
}

pub fn none() -> Reply {
    Reply {
        kind: Some(reply::Kind::None(NoReply {})),
    }
}
