//! WeChat's inbound XML turned into the typed `InboundMessage` the bot speaks.
//!
//! Every body is hostile until parsed: DTDs are refused (no entity tricks),
//! XML-1.0-illegal control characters that real payloads contain are dropped
//! instead of failing the message, and a kind we do not model reaches the bot
//! as "unknown" rather than being refused.

use doumi_proto::bot::v1::{
    Event, Image, InboundMessage, Link, Location, MenuClick, MenuView, Scan, ScanCode, Subscribe,
    Text, Unknown, Unsubscribe, Video, Voice, event, inbound_message::Kind,
};
use serde::Deserialize;

/// Why a body is not a WeChat message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is empty")]
    Empty,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("document type declarations are not accepted")]
    Doctype,
    #[error("malformed XML: {0}")]
    Xml(String),
    #[error("required field {0} is missing")]
    Missing(&'static str),
}

/// The union of every field WeChat sends, flat: quick-xml cannot drive
/// serde's tagged enums, so the kind is decided after parsing.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawMessage {
    to_user_name: Option<String>,
    from_user_name: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    msg_id: Option<String>,
    content: String,
    pic_url: String,
    media_id: String,
    format: String,
    recognition: String,
    thumb_media_id: String,
    #[serde(rename = "Location_X")]
    location_x: String,
    #[serde(rename = "Location_Y")]
    location_y: String,
    scale: String,
    label: String,
    title: String,
    description: String,
    url: String,
    event: String,
    event_key: String,
    scan_code_info: Option<RawScanCodeInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawScanCodeInfo {
    scan_type: String,
    scan_result: String,
}

/// Parses a plaintext WeChat message body.
pub fn parse(body: &[u8]) -> Result<InboundMessage, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let text = strip_illegal_chars(text);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    if text.to_ascii_uppercase().contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(ParseError::Doctype);
    }
    let raw: RawMessage =
        quick_xml::de::from_str(&text).map_err(|e| ParseError::Xml(e.to_string()))?;
    into_message(raw)
}

/// Removes characters XML 1.0 forbids (C0 controls except tab, LF, CR).
pub fn strip_illegal_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let illegal = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if text.contains(illegal) {
        text.replace(illegal, "").into()
    } else {
        text.into()
    }
}

fn into_message(raw: RawMessage) -> Result<InboundMessage, ParseError> {
    let from_user = raw
        .from_user_name
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::Missing("FromUserName"))?;
    let to_account = raw
        .to_user_name
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::Missing("ToUserName"))?;
    let msg_type = raw
        .msg_type
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::Missing("MsgType"))?;
    let create_time = raw
        .create_time
        .as_deref()
        .and_then(|t| t.trim().parse().ok())
        .ok_or(ParseError::Missing("CreateTime"))?;
    let msg_id = raw
        .msg_id
        .as_deref()
        .and_then(|id| id.trim().parse().ok())
        .unwrap_or(0);
    let kind = match msg_type.as_str() {
        "text" => Kind::Text(Text {
            content: raw.content,
        }),
        "image" => Kind::Image(Image {
            pic_url: raw.pic_url,
            media_id: raw.media_id,
        }),
        "voice" => Kind::Voice(Voice {
            media_id: raw.media_id,
            format: raw.format,
            recognition: raw.recognition,
        }),
        "video" | "shortvideo" => Kind::Video(Video {
            media_id: raw.media_id,
            thumb_media_id: raw.thumb_media_id,
            short: msg_type == "shortvideo",
        }),
        "location" => Kind::Location(Location {
            latitude: raw.location_x.trim().parse().unwrap_or_default(),
            longitude: raw.location_y.trim().parse().unwrap_or_default(),
            scale: raw.scale.trim().parse().unwrap_or_default(),
            label: raw.label,
        }),
        "link" => Kind::Link(Link {
            title: raw.title,
            description: raw.description,
            url: raw.url,
        }),
        "event" => event_kind(raw.event, raw.event_key, raw.scan_code_info),
        other => Kind::Unknown(Unknown {
            raw_type: other.to_owned(),
        }),
    };
    Ok(InboundMessage {
        from_user,
        to_account,
        create_time,
        msg_id,
        kind: Some(kind),
    })
}

fn event_kind(name: String, key: String, scan: Option<RawScanCodeInfo>) -> Kind {
    let kind = match name.as_str() {
        "subscribe" => event::Kind::Subscribe(Subscribe {
            scene: key.strip_prefix("qrscene_").unwrap_or_default().to_owned(),
        }),
        "unsubscribe" => event::Kind::Unsubscribe(Unsubscribe {}),
        "SCAN" => event::Kind::Scan(Scan { scene: key }),
        "CLICK" => event::Kind::Click(MenuClick { key }),
        "VIEW" => event::Kind::View(MenuView { url: key }),
        "scancode_push" | "scancode_waitmsg" => {
            let scan = scan.unwrap_or_default();
            event::Kind::ScanCode(ScanCode {
                menu_key: key,
                scan_type: scan.scan_type,
                scan_result: scan.scan_result,
            })
        }
        _ => {
            return Kind::Unknown(Unknown {
                raw_type: format!("event:{name}"),
            });
        }
    };
    Kind::Event(Event { kind: Some(kind) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_message(content: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\
             <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\
             <CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[{content}]]></Content><MsgId>6054768590064713728</MsgId></xml>"
        )
    }

    #[test]
    fn text_message_with_cdata() {
        let message = parse(text_message("abcdteT").as_bytes()).unwrap();
        assert_eq!(message.from_user, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
        assert_eq!(message.to_account, "gh_10f6c3c3ac5a");
        assert_eq!(message.create_time, 1409735668);
        assert_eq!(message.msg_id, 6054768590064713728);
        assert_eq!(
            message.kind,
            Some(Kind::Text(Text {
                content: "abcdteT".to_owned()
            }))
        );
    }

    #[test]
    fn plain_text_fields_without_cdata() {
        let body = "<xml><ToUserName>gh_1</ToUserName><FromUserName>u1</FromUserName>\
                    <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>三体 &amp; 球状闪电</Content></xml>";
        let message = parse(body.as_bytes()).unwrap();
        assert_eq!(
            message.kind,
            Some(Kind::Text(Text {
                content: "三体 & 球状闪电".to_owned()
            }))
        );
    }

    #[test]
    fn control_characters_are_dropped_not_fatal() {
        let message = parse(text_message("浪潮\u{1d}之巅\u{2}").as_bytes()).unwrap();
        assert_eq!(
            message.kind,
            Some(Kind::Text(Text {
                content: "浪潮之巅".to_owned()
            }))
        );
    }

    #[test]
    fn subscribe_with_qr_scene_and_plain() {
        let body = "<xml><ToUserName>gh_1</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>\
                    <MsgType>event</MsgType><Event>subscribe</Event><EventKey>qrscene_shelf42</EventKey><Ticket>T</Ticket></xml>";
        let Some(Kind::Event(Event {
            kind: Some(event::Kind::Subscribe(sub)),
        })) = parse(body.as_bytes()).unwrap().kind
        else {
            panic!("not a subscribe event");
        };
        assert_eq!(sub.scene, "shelf42");
        let plain = body.replace("<EventKey>qrscene_shelf42</EventKey>", "");
        assert!(matches!(
            parse(plain.as_bytes()).unwrap().kind,
            Some(Kind::Event(Event {
                kind: Some(event::Kind::Subscribe(_))
            }))
        ));
    }

    #[test]
    fn barcode_scan_event() {
        let body = "<xml><ToUserName>gh_1</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>\
                    <MsgType>event</MsgType><Event>scancode_waitmsg</Event><EventKey>scan</EventKey>\
                    <ScanCodeInfo><ScanType>barcode</ScanType><ScanResult>EAN_13,9787540438845</ScanResult></ScanCodeInfo></xml>";
        let Some(Kind::Event(Event {
            kind: Some(event::Kind::ScanCode(scan)),
        })) = parse(body.as_bytes()).unwrap().kind
        else {
            panic!("not a scan event");
        };
        assert_eq!(
            (scan.scan_type.as_str(), scan.scan_result.as_str()),
            ("barcode", "EAN_13,9787540438845")
        );
    }

    #[test]
    fn unknown_kinds_reach_the_bot_as_unknown() {
        let body = "<xml><ToUserName>gh_1</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>\
                    <MsgType>miniprogrampage</MsgType></xml>";
        assert_eq!(
            parse(body.as_bytes()).unwrap().kind,
            Some(Kind::Unknown(Unknown {
                raw_type: "miniprogrampage".to_owned()
            }))
        );
    }

    #[test]
    fn hostile_or_broken_bodies_are_refused() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::NotUtf8));
        assert!(matches!(
            parse(b"<xml><ToUserName>"),
            Err(ParseError::Xml(_) | ParseError::Missing(_))
        ));
        assert!(matches!(
            parse(b"not xml at all"),
            Err(ParseError::Xml(_) | ParseError::Missing(_))
        ));
        let dtd = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><xml><Content>&lol;</Content></xml>";
        assert_eq!(parse(dtd.as_bytes()), Err(ParseError::Doctype));
        assert_eq!(
            parse(b"<xml><FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>"),
            Err(ParseError::Missing("ToUserName"))
        );
    }
}
