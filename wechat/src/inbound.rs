//! WeChat's inbound XML turned into the typed `InboundMessage` the bot speaks.
//!
//! Every body is hostile until parsed: DTDs are refused (no entity tricks),
//! XML-1.0-illegal control characters that real payloads contain are dropped
//! instead of failing the message, and a kind we do not model reaches the bot
//! as "unknown" rather than being refused.

use doumi_proto::bot::v1::{
    Event, File, Image, InboundMessage, Link, Location, LocationReport, LocationSelect,
    MassSendFinished, MenuClick, MenuView, MiniProgramView, PicturesSent, Scan, ScanCode,
    Subscribe, TemplateSendFinished, Text, Unknown, Unsubscribe, Video, Voice, event,
    inbound_message::Kind,
};
use serde::Deserialize;

/// Deeper than WeChat ever nests (`xml > SendPicsInfo > PicList > item > PicMd5Sum`).
const MAX_DEPTH: usize = 6;
/// Longest text in one element; WeChat's own texts stay far below.
const MAX_FIELD_BYTES: usize = 16 * 1024;
/// The safe-mode payload is the one field that may be as large as the body.
const MAX_ENCRYPT_BYTES: usize = 64 * 1024;

/// Why a body is not a WeChat message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is empty")]
    Empty,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("document type declarations are not accepted")]
    Doctype,
    #[error("elements nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("an element's text is longer than allowed")]
    FieldTooLong,
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
    /// Events spell it with a capital D.
    #[serde(rename = "MsgID")]
    msg_id_event: Option<String>,
    msg_data_id: Option<String>,
    idx: Option<String>,
    content: String,
    pic_url: String,
    media_id: String,
    #[serde(rename = "MediaId16K")]
    media_id_16k: String,
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
    file_key: String,
    file_md5: String,
    file_total_len: String,
    event: String,
    event_key: String,
    ticket: String,
    menu_id: String,
    latitude: String,
    longitude: String,
    precision: String,
    status: String,
    total_count: String,
    filter_count: String,
    sent_count: String,
    error_count: String,
    scan_code_info: Option<RawScanCodeInfo>,
    send_pics_info: Option<RawSendPicsInfo>,
    send_location_info: Option<RawSendLocationInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawScanCodeInfo {
    scan_type: String,
    scan_result: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawSendPicsInfo {
    count: String,
    /// Usually one `<PicList>` of `<item>`s; some clients send several
    /// `<PicList>` siblings instead. Both shapes land here.
    pic_list: Vec<RawPicList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPicList {
    item: Vec<RawPicItem>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawPicItem {
    pic_md5_sum: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawSendLocationInfo {
    #[serde(rename = "Location_X")]
    location_x: String,
    #[serde(rename = "Location_Y")]
    location_y: String,
    scale: String,
    label: String,
    poiname: String,
}

/// The safe-mode envelope: who it is for and the encrypted message.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawEnvelope {
    encrypt: Option<String>,
}

/// Parses a plaintext WeChat message body.
pub fn parse(body: &[u8]) -> Result<InboundMessage, ParseError> {
    let raw: RawMessage = deserialize_checked(body)?;
    into_message(raw)
}

/// The `Encrypt` payload of a safe- or compatible-mode body.
pub fn parse_encrypted(body: &[u8]) -> Result<String, ParseError> {
    let envelope: RawEnvelope = deserialize_checked(body)?;
    envelope
        .encrypt
        .filter(|e| !e.trim().is_empty())
        .ok_or(ParseError::Missing("Encrypt"))
}

fn deserialize_checked<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let text = strip_illegal_chars(text);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    check_shape(&text)?;
    quick_xml::de::from_str(&text).map_err(|e| ParseError::Xml(e.to_string()))
}

/// One pass over the document before serde sees it: no DTD, bounded nesting,
/// bounded field sizes.
fn check_shape(text: &str) -> Result<(), ParseError> {
    use quick_xml::events::Event as Xml;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut current_is_encrypt = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| ParseError::Xml(e.to_string()))?;
        let field_len = match &event {
            Xml::DocType(_) => return Err(ParseError::Doctype),
            Xml::Start(start) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ParseError::TooDeep);
                }
                current_is_encrypt = start.name().0 == "Encrypt";
                0
            }
            Xml::End(_) => {
                depth = depth.saturating_sub(1);
                0
            }
            Xml::Text(t) => t.len(),
            Xml::CData(t) => t.len(),
            Xml::Eof => return Ok(()),
            _ => 0,
        };
        let limit = if current_is_encrypt {
            MAX_ENCRYPT_BYTES
        } else {
            MAX_FIELD_BYTES
        };
        if field_len > limit {
            return Err(ParseError::FieldTooLong);
        }
    }
}

/// Removes characters XML 1.0 forbids (C0 controls except tab, LF, CR).
pub fn strip_illegal_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let illegal = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    // Every message passes here: a byte scan and two substring searches
    // settle the usual case without decoding a character.
    let control = text
        .bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
    if !control && !text.contains('\u{fffe}') && !text.contains('\u{ffff}') {
        return text.into();
    }
    if text.contains(illegal) {
        text.replace(illegal, "").into()
    } else {
        text.into()
    }
}

fn number<T: std::str::FromStr + Default>(text: &str) -> T {
    text.trim().parse().unwrap_or_default()
}

fn required(value: Option<String>, name: &'static str) -> Result<String, ParseError> {
    value
        .filter(|s| !s.trim().is_empty())
        .ok_or(ParseError::Missing(name))
}

fn into_message(raw: RawMessage) -> Result<InboundMessage, ParseError> {
    let from_user = required(raw.from_user_name, "FromUserName")?;
    let to_account = required(raw.to_user_name, "ToUserName")?;
    let msg_type = required(raw.msg_type, "MsgType")?;
    let create_time = raw
        .create_time
        .as_deref()
        .and_then(|t| t.trim().parse().ok())
        .ok_or(ParseError::Missing("CreateTime"))?;
    let msg_id = raw.msg_id.as_deref().map(number).unwrap_or(0);
    let msg_data_id = raw.msg_data_id.as_deref().map(number).unwrap_or(0);
    let idx = raw.idx.as_deref().map(number).unwrap_or(0);
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
            media_id_16k: raw.media_id_16k,
        }),
        "video" | "shortvideo" => Kind::Video(Video {
            media_id: raw.media_id,
            thumb_media_id: raw.thumb_media_id,
            short: msg_type == "shortvideo",
        }),
        "location" => Kind::Location(Location {
            latitude: number(&raw.location_x),
            longitude: number(&raw.location_y),
            scale: number(&raw.scale),
            label: raw.label,
        }),
        "link" => Kind::Link(Link {
            title: raw.title,
            description: raw.description,
            url: raw.url,
        }),
        "file" => Kind::File(File {
            title: raw.title,
            description: raw.description,
            file_key: raw.file_key,
            file_md5: raw.file_md5,
            file_total_len: number(&raw.file_total_len),
        }),
        "event" => event_kind(RawEvent {
            name: raw.event,
            key: raw.event_key,
            ticket: raw.ticket,
            menu_id: raw.menu_id,
            latitude: raw.latitude,
            longitude: raw.longitude,
            precision: raw.precision,
            job_msg_id: raw.msg_id_event.unwrap_or_default(),
            status: raw.status,
            counts: [
                raw.total_count,
                raw.filter_count,
                raw.sent_count,
                raw.error_count,
            ],
            scan: raw.scan_code_info,
            pics: raw.send_pics_info,
            location: raw.send_location_info,
        }),
        other => Kind::Unknown(Unknown {
            raw_type: other.to_owned(),
        }),
    };
    Ok(InboundMessage {
        from_user,
        to_account,
        create_time,
        msg_id,
        msg_data_id,
        idx,
        // Which of the gateway's accounts it came to: set by the gateway,
        // which knows the route it arrived on.
        account: String::new(),
        kind: Some(kind),
    })
}

/// The event-specific fields, taken out of the flat message.
struct RawEvent {
    name: String,
    key: String,
    ticket: String,
    menu_id: String,
    latitude: String,
    longitude: String,
    precision: String,
    job_msg_id: String,
    status: String,
    counts: [String; 4],
    scan: Option<RawScanCodeInfo>,
    pics: Option<RawSendPicsInfo>,
    location: Option<RawSendLocationInfo>,
}

fn event_kind(raw: RawEvent) -> Kind {
    let RawEvent {
        name,
        key,
        ticket,
        menu_id,
        ..
    } = raw;
    let kind = match name.as_str() {
        "subscribe" => event::Kind::Subscribe(Subscribe {
            scene: key.strip_prefix("qrscene_").unwrap_or_default().to_owned(),
            ticket,
        }),
        "unsubscribe" => event::Kind::Unsubscribe(Unsubscribe {}),
        "SCAN" => event::Kind::Scan(Scan { scene: key, ticket }),
        "LOCATION" => event::Kind::Location(LocationReport {
            latitude: number(&raw.latitude),
            longitude: number(&raw.longitude),
            precision: number(&raw.precision),
        }),
        "CLICK" => event::Kind::Click(MenuClick { key }),
        "VIEW" => event::Kind::View(MenuView { url: key, menu_id }),
        "scancode_push" | "scancode_waitmsg" => {
            let scan = raw.scan.unwrap_or_default();
            event::Kind::ScanCode(ScanCode {
                menu_key: key,
                scan_type: scan.scan_type,
                scan_result: scan.scan_result,
            })
        }
        "pic_sysphoto" | "pic_photo_or_album" | "pic_weixin" => {
            let pics = raw.pics.unwrap_or_default();
            event::Kind::Pictures(PicturesSent {
                menu_key: key,
                count: number(&pics.count),
                pic_md5_sums: pics
                    .pic_list
                    .into_iter()
                    .flat_map(|list| list.item)
                    .map(|i| i.pic_md5_sum)
                    .collect(),
                source: name,
            })
        }
        "location_select" => {
            let place = raw.location.unwrap_or_default();
            event::Kind::LocationSelect(LocationSelect {
                menu_key: key,
                latitude: number(&place.location_x),
                longitude: number(&place.location_y),
                scale: number(&place.scale),
                label: place.label,
                poiname: place.poiname,
            })
        }
        "view_miniprogram" => event::Kind::ViewMiniprogram(MiniProgramView {
            page_path: key,
            menu_id,
        }),
        "TEMPLATESENDJOBFINISH" => event::Kind::TemplateSendFinished(TemplateSendFinished {
            msg_id: number(&raw.job_msg_id),
            status: raw.status.trim().to_owned(),
        }),
        "MASSSENDJOBFINISH" => {
            let [total, filter, sent, error] = &raw.counts;
            event::Kind::MassSendFinished(MassSendFinished {
                msg_id: number(&raw.job_msg_id),
                status: raw.status.trim().to_owned(),
                total_count: number(total),
                filter_count: number(filter),
                sent_count: number(sent),
                error_count: number(error),
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

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&body);
            let _ = parse_encrypted(&body);
        }

        #[test]
        fn any_text_inside_a_message_parses_or_fails_cleanly(content in ".{0,300}") {
            let body = format!(
                "<xml><ToUserName>gh</ToUserName><FromUserName>u</FromUserName><CreateTime>1</CreateTime>\
                 <MsgType>text</MsgType><Content>{content}</Content></xml>"
            );
            let _ = parse(body.as_bytes());
        }
    }
}
