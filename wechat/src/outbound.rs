//! The bot's typed reply rendered as WeChat's passive-reply XML.
//!
//! Strings go in CDATA (quick-xml splits a `]]>` inside them so the XML stays
//! valid), characters XML forbids are dropped, and WeChat's limits are applied
//! here, before sending, because WeChat answers a violation with "该公众号暂时
//! 无法提供服务" rather than an error we could see.

use doumi_proto::bot::v1::{Reply, reply::Kind};
use quick_xml::se::{Serializer, TextFormat};
use serde::Serialize;

use crate::{crypto::MessageCrypto, inbound::strip_illegal_chars, signature};

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

/// Every passive-reply shape in one struct: the kind-specific parts are
/// optional and only the one that applies is written.
#[derive(Serialize, Default)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct ReplyXml {
    to_user_name: String,
    from_user_name: String,
    create_time: i64,
    msg_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<MediaXml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    voice: Option<MediaXml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<VideoXml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    music: Option<MusicXml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    article_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    articles: Option<ArticlesXml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trans_info: Option<TransInfoXml>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MediaXml {
    media_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct VideoXml {
    media_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MusicXml {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    music_url: String,
    #[serde(rename = "HQMusicUrl", skip_serializing_if = "String::is_empty")]
    hq_music_url: String,
    thumb_media_id: String,
}

#[derive(Serialize)]
struct ArticlesXml {
    item: Vec<ArticleXml>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ArticleXml {
    title: String,
    description: String,
    pic_url: String,
    url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TransInfoXml {
    kf_account: String,
}

/// Why a reply could not be rendered (never expected; logged and answered
/// with `success` so WeChat shows nothing rather than an error).
#[derive(Debug, thiserror::Error)]
#[error("rendering the reply XML failed: {0}")]
pub struct RenderError(#[from] quick_xml::se::SeError);

/// Renders `reply` for `to`; a missing or empty reply is `success`.
pub fn render(reply: Option<&Reply>, to: &Addressing<'_>) -> Result<Rendered, RenderError> {
    let base = |msg_type| ReplyXml {
        to_user_name: clean(to.reader),
        from_user_name: clean(to.account),
        create_time: to.now,
        msg_type,
        ..ReplyXml::default()
    };
    let media = |id: &str| {
        Some(MediaXml {
            media_id: clean(id),
        })
    };
    let xml = match reply.and_then(|r| r.kind.as_ref()) {
        None | Some(Kind::None(_)) => return Ok(Rendered::Success),
        Some(Kind::Text(text)) => {
            let content = truncate_utf8(&clean(&text.content), MAX_TEXT_BYTES).into_owned();
            if content.trim().is_empty() {
                return Ok(Rendered::Success);
            }
            ReplyXml {
                content: Some(content),
                ..base("text")
            }
        }
        Some(Kind::News(news)) => {
            let item: Vec<ArticleXml> = news
                .articles
                .iter()
                .take(MAX_ARTICLES)
                .map(|a| ArticleXml {
                    title: clean(&a.title),
                    description: clean(&a.description),
                    pic_url: clean(&a.pic_url),
                    url: clean(&a.url),
                })
                .collect();
            if item.is_empty() {
                return Ok(Rendered::Success);
            }
            ReplyXml {
                article_count: Some(item.len()),
                articles: Some(ArticlesXml { item }),
                ..base("news")
            }
        }
        Some(Kind::Image(image)) => ReplyXml {
            image: media(&image.media_id),
            ..base("image")
        },
        Some(Kind::Voice(voice)) => ReplyXml {
            voice: media(&voice.media_id),
            ..base("voice")
        },
        Some(Kind::Video(video)) => ReplyXml {
            video: Some(VideoXml {
                media_id: clean(&video.media_id),
                title: clean(&video.title),
                description: clean(&video.description),
            }),
            ..base("video")
        },
        Some(Kind::Music(music)) => ReplyXml {
            music: Some(MusicXml {
                title: clean(&music.title),
                description: clean(&music.description),
                music_url: clean(&music.music_url),
                hq_music_url: clean(&music.hq_music_url),
                thumb_media_id: clean(&music.thumb_media_id),
            }),
            ..base("music")
        },
        Some(Kind::Transfer(transfer)) => ReplyXml {
            trans_info: Some(transfer.kf_account.trim())
                .filter(|account| !account.is_empty())
                .map(|account| TransInfoXml {
                    kf_account: clean(account),
                }),
            ..base("transfer_customer_service")
        },
    };
    Ok(Rendered::Xml(to_xml(&xml)?))
}

#[derive(Serialize)]
#[serde(rename = "xml", rename_all = "PascalCase")]
struct EnvelopeXml<'a> {
    encrypt: String,
    msg_signature: String,
    time_stamp: i64,
    nonce: &'a str,
}

/// The safe-mode reply around `xml`: encrypted, and signed over the
/// request's timestamp and nonce as WeChat's own messages are.
pub fn seal(
    crypto: &MessageCrypto,
    token: &str,
    timestamp: &str,
    nonce: &str,
    xml: &str,
) -> Result<String, RenderError> {
    let encrypt = crypto.encrypt(xml);
    let msg_signature = signature::compute(&[token, timestamp, nonce, &encrypt]);
    to_xml(&EnvelopeXml {
        encrypt,
        msg_signature,
        time_stamp: timestamp.trim().parse().unwrap_or_default(),
        nonce,
    })
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
    use doumi_proto::bot::v1::{Article, NewsReply, NoReply, TextReply};

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

#[cfg(test)]
mod properties {
    use doumi_proto::bot::v1::{
        Article, ImageReply, MusicReply, NewsReply, TextReply, TransferToCustomerService,
        VideoReply, VoiceReply,
    };
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// Every field any reply kind has, read back the way WeChat reads it.
    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Parsed {
        to_user_name: String,
        from_user_name: String,
        create_time: i64,
        msg_type: String,
        content: String,
        image: Media,
        voice: Media,
        video: Video,
        music: Music,
        article_count: usize,
        articles: Articles,
        trans_info: TransInfo,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Media {
        media_id: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Video {
        media_id: String,
        title: String,
        description: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Music {
        title: String,
        description: String,
        music_url: String,
        #[serde(rename = "HQMusicUrl")]
        hq_music_url: String,
        thumb_media_id: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default)]
    struct Articles {
        item: Vec<Item>,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct Item {
        title: String,
        description: String,
        pic_url: String,
        url: String,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, rename_all = "PascalCase")]
    struct TransInfo {
        kf_account: String,
    }

    fn round_trip(reply: Reply) -> Parsed {
        let to = Addressing {
            reader: "reader",
            account: "gh_account",
            now: 1_700_000_000,
        };
        match render(Some(&reply), &to).unwrap() {
            Rendered::Xml(xml) => {
                quick_xml::de::from_str(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
            }
            Rendered::Success => Parsed::default(),
        }
    }

    /// What an XML reader makes of `text`: line ends normalised to `\n`.
    fn as_read(text: &str) -> String {
        text.replace("\r\n", "\n").replace('\r', "\n")
    }

    /// Text WeChat can carry: XML-legal characters, no surrounding blanks
    /// (whitespace-only text renders as `success`).
    fn legal() -> impl Strategy<Value = String> {
        "[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\u{fffe}\\u{ffff}]{1,60}"
            .prop_filter("not blank", |s| !s.trim().is_empty())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn text_round_trips(content in legal()) {
            let parsed = round_trip(Reply { kind: Some(Kind::Text(TextReply { content: content.clone() })) });
            prop_assert_eq!((parsed.msg_type.as_str(), parsed.content), ("text", as_read(&content)));
            prop_assert_eq!((parsed.to_user_name.as_str(), parsed.from_user_name.as_str()), ("reader", "gh_account"));
            prop_assert_eq!(parsed.create_time, 1_700_000_000);
        }

        #[test]
        fn media_replies_round_trip(id in legal(), title in legal(), description in legal()) {
            let (id, title, description) = (as_read(&id), as_read(&title), as_read(&description));
            let image = round_trip(Reply { kind: Some(Kind::Image(ImageReply { media_id: id.clone() })) });
            prop_assert_eq!((image.msg_type.as_str(), image.image.media_id.as_str()), ("image", id.as_str()));
            let voice = round_trip(Reply { kind: Some(Kind::Voice(VoiceReply { media_id: id.clone() })) });
            prop_assert_eq!((voice.msg_type.as_str(), voice.voice.media_id.as_str()), ("voice", id.as_str()));
            let video = round_trip(Reply { kind: Some(Kind::Video(VideoReply {
                media_id: id.clone(), title: title.clone(), description: description.clone(),
            })) });
            prop_assert_eq!(video.video, Video { media_id: id.clone(), title: title.clone(), description: description.clone() });
            let music = round_trip(Reply { kind: Some(Kind::Music(MusicReply {
                title: title.clone(), description: description.clone(), music_url: id.clone(),
                hq_music_url: id.clone(), thumb_media_id: id.clone(),
            })) });
            prop_assert_eq!(music.music, Music {
                title, description, music_url: id.clone(), hq_music_url: id.clone(), thumb_media_id: id,
            });
        }

        #[test]
        fn news_and_transfer_round_trip(title in legal(), url in legal(), account in legal()) {
            let (title, url, account) = (as_read(&title), as_read(&url), as_read(&account));
            let article = Article { title: title.clone(), description: title.clone(), pic_url: url.clone(), url: url.clone() };
            let news = round_trip(Reply { kind: Some(Kind::News(NewsReply { articles: vec![article] })) });
            prop_assert_eq!(news.article_count, 1);
            prop_assert_eq!(&news.articles.item[0], &Item { title: title.clone(), description: title, pic_url: url.clone(), url });
            let transfer = round_trip(Reply { kind: Some(Kind::Transfer(TransferToCustomerService { kf_account: account.clone() })) });
            prop_assert_eq!(transfer.msg_type.as_str(), "transfer_customer_service");
            prop_assert_eq!(transfer.trans_info.kf_account, account.trim());
        }
    }
}
