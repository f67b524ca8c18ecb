//! A reply sent after WeChat's window, as a customer-service message
//! (`/cgi-bin/message/custom/send`): the same reply the reader would have had
//! passively, in the JSON shape the API takes, within the same limits.

use doumi_proto::bot::v1::{Reply, reply::Kind};
use serde::Serialize;

use crate::{
    inbound::strip_illegal_chars,
    outbound::{MAX_ARTICLES, MAX_TEXT_BYTES, truncate_utf8},
};

/// One customer-service message to one reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomMessage {
    touser: String,
    #[serde(flatten)]
    body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
enum Body {
    Text { text: Text },
    News { news: News },
    Image { image: Media },
    Voice { voice: Media },
    Video { video: Video },
    Music { music: Music },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Text {
    content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct News {
    articles: Vec<Article>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Article {
    title: String,
    description: String,
    url: String,
    picurl: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Media {
    media_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Video {
    media_id: String,
    title: String,
    description: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Music {
    title: String,
    description: String,
    musicurl: String,
    hqmusicurl: String,
    thumb_media_id: String,
}

fn clean(text: &str) -> String {
    strip_illegal_chars(text).into_owned()
}

impl CustomMessage {
    /// `reply` for `reader`; `None` when there is nothing a customer-service
    /// message can carry (no reply, a hand-over to an agent).
    pub fn new(reader: &str, reply: &Reply) -> Option<Self> {
        let body = match reply.kind.as_ref()? {
            Kind::Text(text) => Body::Text {
                text: Text {
                    content: truncate_utf8(&clean(&text.content), MAX_TEXT_BYTES).into_owned(),
                },
            },
            Kind::News(news) if !news.articles.is_empty() => Body::News {
                news: News {
                    articles: news
                        .articles
                        .iter()
                        .take(MAX_ARTICLES)
                        .map(|a| Article {
                            title: clean(&a.title),
                            description: clean(&a.description),
                            url: a.url.clone(),
                            picurl: a.pic_url.clone(),
                        })
                        .collect(),
                },
            },
            Kind::Image(image) => Body::Image {
                image: Media {
                    media_id: image.media_id.clone(),
                },
            },
            Kind::Voice(voice) => Body::Voice {
                voice: Media {
                    media_id: voice.media_id.clone(),
                },
            },
            Kind::Video(video) => Body::Video {
                video: Video {
                    media_id: video.media_id.clone(),
                    title: clean(&video.title),
                    description: clean(&video.description),
                },
            },
            Kind::Music(music) => Body::Music {
                music: Music {
                    title: clean(&music.title),
                    description: clean(&music.description),
                    musicurl: music.music_url.clone(),
                    hqmusicurl: music.hq_music_url.clone(),
                    thumb_media_id: music.thumb_media_id.clone(),
                },
            },
            Kind::News(_) | Kind::None(_) | Kind::Transfer(_) => return None,
        };
        Some(Self {
            touser: reader.to_owned(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use doumi_proto::bot::v1::{Article as ProtoArticle, NewsReply, NoReply, TextReply};
    use serde_json::json;

    use super::*;

    fn text(content: &str) -> Reply {
        Reply {
            kind: Some(Kind::Text(TextReply {
                content: content.to_owned(),
            })),
        }
    }

    #[test]
    fn text_and_news_have_the_shape_the_api_takes() {
        let message = CustomMessage::new("oReader", &text("《浪潮之巅》")).unwrap();
        assert_eq!(
            serde_json::to_value(&message).unwrap(),
            json!({"touser": "oReader", "msgtype": "text", "text": {"content": "《浪潮之巅》"}})
        );
        let article = ProtoArticle {
            title: "浪潮之巅".into(),
            description: "吴军".into(),
            pic_url: "https://img/1.jpg".into(),
            url: "https://book/1".into(),
        };
        let news = Reply {
            kind: Some(Kind::News(NewsReply {
                articles: vec![article.clone(), article],
            })),
        };
        assert_eq!(
            serde_json::to_value(CustomMessage::new("oReader", &news).unwrap()).unwrap(),
            json!({"touser": "oReader", "msgtype": "news", "news": {"articles": [
                {"title": "浪潮之巅", "description": "吴军", "url": "https://book/1", "picurl": "https://img/1.jpg"}
            ]}})
        );
    }

    #[test]
    fn long_text_is_cut_and_nothing_is_not_sent() {
        let message = CustomMessage::new("o", &text(&"书".repeat(2000))).unwrap();
        let Body::Text { text } = &message.body else {
            panic!("{message:?}")
        };
        assert!(text.content.len() <= MAX_TEXT_BYTES);
        let none = Reply {
            kind: Some(Kind::None(NoReply {})),
        };
        assert_eq!(CustomMessage::new("o", &none), None);
    }
}
