//! Shorthands for the typed replies the bot sends back.

use doumi_proto::bot::v1::{Article, NewsReply, NoReply, Reply, TextReply, reply};

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

/// A news reply with one article (all a passive reply may carry).
pub fn news(article: Article) -> Reply {
    Reply {
        kind: Some(reply::Kind::News(NewsReply {
            articles: vec![article],
        })),
    }
}
