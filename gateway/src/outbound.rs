//! The bot's typed reply rendered as WeChat's passive-reply XML.
//!
//! Strings go in CDATA (quick-xml splits a `]]>` inside them so the XML stays
//! valid), characters XML forbids are dropped, and WeChat's limits are applied
//! here, before sending, because WeChat answers a violation with "该公众号暂时
//! 无法提供服务" rather than an error we could see.

use doumi_proto::bot::v1::{Article, Reply, reply::Kind};
use quick_xml::se::{Serializer, TextFormat};
use serde::Serialize;

use crate::inbound::strip_illegal_chars;

/// WeChat drops text replies longer than about 2047 bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 2047;
/// A reply to a reader's message may carry one news article.
pub const MAX_ARTICLES: usize = 1;

/// What the gateway sends back to WeChat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    /// A passive reply.
    Xml(String),
    /// Nothing to say: WeChat wants the literal body `success`.
    Success,
}

impl Rendered {
    pub fn into_body(self) -> String {
        match self {
            Self::Xml(xml) => xml,
            Self::Success => "success".to_owned(),
        }
    }
}

/// Who the reply goes to and from: the inbound message's users, swapped.
#[derive(Debug, Clone)]
pub struct Addressing<'a> {
    /// The reader (the inbound FromUserName).
    pub reader: &'a str,
    /// The account (the inbound ToUserName).
    pub account: &'a str,
    /// Unix seconds.
    pub now: i64,
}

#[derive(Serialize)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct TextXml<'a> {
    to_user_name: &'a str,
    from_user_name: &'a str,
    create_time: i64,
    msg_type: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct NewsXml<'a> {
    to_user_name: &'a str,
    from_user_name: &'a str,
    create_time: i64,
    msg_type: &'static str,
    article_count: usize,
    articles: ArticlesXml<'a>,
}

#[derive(Serialize)]
struct ArticlesXml<'a> {
    item: Vec<ArticleXml<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArticleXml<'a> {
    title: &'a str,
    description: &'a str,
    pic_url: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct ImageXml<'a> {
    to_user_name: &'a str,
    from_user_name: &'a str,
    create_time: i64,
    msg_type: &'static str,
    image: MediaXml<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MediaXml<'a> {
    media_id: &'a str,
}

/// Why a reply could not be rendered (never expected; logged and answered
/// with `success` so WeChat shows nothing rather than an error).
#[derive(Debug, thiserror::Error)]
#[error("rendering the reply XML failed: {0}")]
pub struct RenderError(#[from] quick_xml::se::SeError);

/// Renders `reply` for `to`; a missing or empty reply is `success`.
pub fn render(reply: Option<&Reply>, to: &Addressing<'_>) -> Result<Rendered, RenderError> {
    let (reader, account, now) = (to.reader, to.account, to.now);
    let xml = match reply.and_then(|r| r.kind.as_ref()) {
        None | Some(Kind::None(_)) => return Ok(Rendered::Success),
        Some(Kind::Text(text)) => {
            let content = clean(&text.content);
            let content = truncate_utf8(&content, MAX_TEXT_BYTES);
            if content.trim().is_empty() {
                return Ok(Rendered::Success);
            }
            to_xml(&TextXml {
                to_user_name: reader,
                from_user_name: account,
                create_time: now,
                msg_type: "text",
                content: &content,
            })?
        }
        Some(Kind::News(news)) => {
            let articles: Vec<[String; 4]> = news
                .articles
                .iter()
                .take(MAX_ARTICLES)
                .map(clean_article)
                .collect();
            if articles.is_empty() {
                return Ok(Rendered::Success);
            }
            to_xml(&NewsXml {
                to_user_name: reader,
                from_user_name: account,
                create_time: now,
                msg_type: "news",
                article_count: articles.len(),
                articles: ArticlesXml {
                    item: articles
                        .iter()
                        .map(|[title, description, pic_url, url]| ArticleXml {
                            title,
                            description,
                            pic_url,
                            url,
                        })
                        .collect(),
                },
            })?
        }
        Some(Kind::Image(image)) => to_xml(&ImageXml {
            to_user_name: reader,
            from_user_name: account,
            create_time: now,
            msg_type: "image",
            image: MediaXml {
                media_id: &clean(&image.media_id),
            },
        })?,
    };
    Ok(Rendered::Xml(xml))
}

fn to_xml<T: Serialize>(value: &T) -> Result<String, RenderError> {
    let mut out = String::with_capacity(512);
    let mut serializer = Serializer::new(&mut out);
    serializer.text_format(TextFormat::CData);
    value.serialize(serializer)?;
    Ok(out)
}

fn clean(text: &str) -> String {
    strip_illegal_chars(text).into_owned()
}

fn clean_article(article: &Article) -> [String; 4] {
    [
        clean(&article.title),
        clean(&article.description),
        clean(&article.pic_url),
        clean(&article.url),
    ]
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut.
pub fn truncate_utf8(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    const ELLIPSIS: &str = "…";
    if text.len() <= max {
        return text.into();
    }
    let mut end = max - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end]).into()
}

#[cfg(test)]
mod tests {
    use doumi_proto::bot::v1::{NewsReply, NoReply, TextReply};

    use super::*;

    const TO: Addressing<'static> = Addressing {
        reader: "reader-openid",
        account: "gh_account",
        now: 1_700_000_000,
    };

    fn text(content: &str) -> Reply {
        Reply {
            kind: Some(Kind::Text(TextReply {
                content: content.to_owned(),
            })),
        }
    }

    fn xml(rendered: Rendered) -> String {
        match rendered {
            Rendered::Xml(xml) => xml,
            Rendered::Success => panic!("expected XML"),
        }
    }

    #[test]
    fn text_reply_swaps_users_and_uses_cdata() {
        let out = xml(render(Some(&text("《浪潮之巅》")), &TO).unwrap());
        assert_eq!(
            out,
            "<xml><ToUserName><![CDATA[reader-openid]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[《浪潮之巅》]]></Content></xml>"
        );
    }

    #[test]
    fn cdata_terminator_and_control_chars_stay_valid_xml() {
        let out = xml(render(Some(&text("a]]>b\u{1}c")), &TO).unwrap());
        assert!(!out.contains("a]]>b"), "{out}");
        let parsed = crate::inbound::parse(out.as_bytes()).unwrap();
        let Some(doumi_proto::bot::v1::inbound_message::Kind::Text(t)) = parsed.kind else {
            panic!()
        };
        assert_eq!(t.content, "a]]>bc");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "书".repeat(1000); // 3000 bytes
        let out = xml(render(Some(&text(&long)), &TO).unwrap());
        let content = out
            .split("<Content><![CDATA[")
            .nth(1)
            .unwrap()
            .split("]]>")
            .next()
            .unwrap();
        assert!(
            content.len() <= MAX_TEXT_BYTES && content.ends_with('…'),
            "{} bytes",
            content.len()
        );
    }

    #[test]
    fn only_one_article_and_none_means_success() {
        let article = Article {
            title: "t".into(),
            description: "d".into(),
            pic_url: "p".into(),
            url: "u".into(),
        };
        let news = Reply {
            kind: Some(Kind::News(NewsReply {
                articles: vec![article.clone(), article],
            })),
        };
        let out = xml(render(Some(&news), &TO).unwrap());
        assert!(
            out.contains("<ArticleCount>1</ArticleCount>") && out.matches("<item>").count() == 1,
            "{out}"
        );
        let none = Reply {
            kind: Some(Kind::None(NoReply {})),
        };
        assert_eq!(render(Some(&none), &TO).unwrap(), Rendered::Success);
        assert_eq!(render(None, &TO).unwrap(), Rendered::Success);
    }
}
