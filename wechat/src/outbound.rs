//! The bot's typed reply rendered as WeChat's passive-reply XML.
//!
//! Written directly rather than through a serializer: the shapes are few and
//! fixed, and every message passes here (serde's path cost about 10,000
//! instructions a reply, more than the rest of the gateway's own work).
//! Strings go in CDATA (a `]]>` inside them is split so the XML stays valid),
//! characters XML forbids are dropped, and WeChat's limits are applied here,
//! before sending, because WeChat answers a violation with "该公众号暂时
//! 无法提供服务" rather than an error we could see.

use std::{borrow::Cow, fmt::Write as _};

use doumi_proto::bot::v1::{Reply, reply::Kind};

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

/// Renders `reply` for `to`; a missing or empty reply is `success`.
pub fn render(reply: Option<&Reply>, to: &Addressing<'_>) -> Rendered {
    let kind = match reply.and_then(|r| r.kind.as_ref()) {
        None | Some(Kind::None(_)) => return Rendered::Success,
        Some(kind) => kind,
    };
    // A text reply's words, cleaned once here for the blank check and the XML.
    let content = match kind {
        Kind::Text(text) => strip_illegal_chars(&text.content),
        _ => Cow::Borrowed(""),
    };
    let msg_type = match kind {
        // Cutting keeps a prefix and marks the cut: blank only when blank whole.
        Kind::Text(_) if content.trim().is_empty() => return Rendered::Success,
        Kind::Text(_) => "text",
        Kind::News(news) if news.articles.is_empty() => return Rendered::Success,
        Kind::News(_) => "news",
        Kind::Image(_) => "image",
        Kind::Voice(_) => "voice",
        Kind::Video(_) => "video",
        Kind::Music(_) => "music",
        Kind::Transfer(_) => "transfer_customer_service",
        Kind::None(_) => return Rendered::Success,
    };
    let mut xml = Xml::new();
    xml.text("ToUserName", to.reader);
    xml.text("FromUserName", to.account);
    xml.number("CreateTime", to.now);
    xml.text("MsgType", msg_type);
    match kind {
        Kind::Text(_) => xml.clean_text("Content", &truncate_utf8(&content, MAX_TEXT_BYTES)),
        Kind::News(news) => {
            let articles = &news.articles[..news.articles.len().min(MAX_ARTICLES)];
            xml.number("ArticleCount", articles.len());
            xml.open("Articles");
            for article in articles {
                xml.open("item");
                xml.text("Title", &article.title);
                xml.text("Description", &article.description);
                xml.text("PicUrl", &article.pic_url);
                xml.text("Url", &article.url);
                xml.close("item");
            }
            xml.close("Articles");
        }
        Kind::Image(image) => xml.media("Image", &image.media_id),
        Kind::Voice(voice) => xml.media("Voice", &voice.media_id),
        Kind::Video(video) => {
            xml.open("Video");
            xml.text("MediaId", &video.media_id);
            xml.text_unless_empty("Title", &video.title);
            xml.text_unless_empty("Description", &video.description);
            xml.close("Video");
        }
        Kind::Music(music) => {
            xml.open("Music");
            xml.text_unless_empty("Title", &music.title);
            xml.text_unless_empty("Description", &music.description);
            xml.text_unless_empty("MusicUrl", &music.music_url);
            xml.text_unless_empty("HQMusicUrl", &music.hq_music_url);
            xml.text("ThumbMediaId", &music.thumb_media_id);
            xml.close("Music");
        }
        Kind::Transfer(transfer) => {
            let account = transfer.kf_account.trim();
            if !account.is_empty() {
                xml.open("TransInfo");
                xml.text("KfAccount", account);
                xml.close("TransInfo");
            }
        }
        Kind::None(_) => {}
    }
    Rendered::Xml(xml.finish())
}

/// The safe-mode reply around `xml`: encrypted, and signed over the
/// request's timestamp and nonce as WeChat's own messages are.
pub fn seal(
    crypto: &MessageCrypto,
    token: &str,
    timestamp: &str,
    nonce: &str,
    xml: &str,
) -> String {
    let encrypt = crypto.encrypt(xml);
    let msg_signature = signature::compute(&[token, timestamp, nonce, &encrypt]);
    let mut envelope = Xml::new();
    envelope.text("Encrypt", &encrypt);
    envelope.text("MsgSignature", &msg_signature);
    envelope.number(
        "TimeStamp",
        timestamp.trim().parse::<i64>().unwrap_or_default(),
    );
    envelope.text("Nonce", nonce);
    envelope.finish()
}

/// A `<xml>` document being written: elements whose text is CDATA (numbers
/// bare), with the characters XML forbids dropped.
struct Xml(String);

impl Xml {
    fn new() -> Self {
        let mut out = String::with_capacity(512);
        out.push_str("<xml>");
        Self(out)
    }

    fn open(&mut self, name: &str) {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
    }

    fn close(&mut self, name: &str) {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
    }

    /// `<name><![CDATA[text]]></name>`; a `]]>` in `text` ends one CDATA
    /// section and starts the next between its `]]` and `>`.
    fn text(&mut self, name: &str, text: &str) {
        self.clean_text(name, &strip_illegal_chars(text));
    }

    /// [`Self::text`] for a `text` already stripped of what XML forbids.
    fn clean_text(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str("<![CDATA[");
        let mut rest = text;
        while let Some(at) = cdata_end(rest) {
            self.0.push_str(&rest[..at + 2]);
            self.0.push_str("]]><![CDATA[");
            rest = &rest[at + 2..];
        }
        self.0.push_str(rest);
        self.0.push_str("]]>");
        self.close(name);
    }

    fn text_unless_empty(&mut self, name: &str, text: &str) {
        if !text.is_empty() {
            self.text(name, text);
        }
    }

    fn number(&mut self, name: &str, value: impl std::fmt::Display) {
        self.open(name);
        let _infallible = write!(self.0, "{value}");
        self.close(name);
    }

    fn media(&mut self, name: &str, media_id: &str) {
        self.open(name);
        self.text("MediaId", media_id);
        self.close(name);
    }

    fn finish(mut self) -> String {
        self.0.push_str("</xml>");
        self.0
    }
}

/// Where the first `]]>` in `text` starts. A byte search for `]` (rare in
/// replies) rather than `str::find`, whose substring searcher is set up anew
/// for every field of every reply.
fn cdata_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b']', bytes).find(|&at| bytes.get(at + 1..at + 3) == Some(&b"]>"[..]))
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
    fn a_cdata_end_is_found_where_str_find_finds_it() {
        for text in [
            "",
            "]",
            "]]",
            "]]>",
            "]]]>",
            "a]b]]>c]]>",
            "《书》]",
            "]>]]",
        ] {
            assert_eq!(cdata_end(text), text.find("]]>"), "{text:?}");
        }
    }

    #[test]
    fn text_reply_swaps_users_and_uses_cdata() {
        let out = xml(render(Some(&text("《浪潮之巅》")), &TO));
        assert_eq!(
            out,
            "<xml><ToUserName><![CDATA[reader-openid]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[《浪潮之巅》]]></Content></xml>"
        );
    }

    #[test]
    fn cdata_terminator_and_control_chars_stay_valid_xml() {
        let out = xml(render(Some(&text("a]]>b\u{1}c")), &TO));
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
        let out = xml(render(Some(&text(&long)), &TO));
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
        let out = xml(render(Some(&news), &TO));
        assert!(
            out.contains("<ArticleCount>1</ArticleCount>") && out.matches("<item>").count() == 1,
            "{out}"
        );
        let none = Reply {
            kind: Some(Kind::None(NoReply {})),
        };
        assert_eq!(render(Some(&none), &TO), Rendered::Success);
        assert_eq!(render(None, &TO), Rendered::Success);
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
        match render(Some(&reply), &to) {
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
