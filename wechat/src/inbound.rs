//! WeChat's inbound XML turned into the typed `InboundMessage` the bot speaks.
//!
//! Every body is hostile until parsed: DTDs are refused (no entity tricks),
//! XML-1.0-illegal control characters that real payloads contain are dropped
//! instead of failing the message, and a kind we do not model reaches the bot
//! as "unknown" rather than being refused.
//!
//! (Past 600 lines: every field WeChat sends is named once here, in the
//! message's shape and in the one-pass reader that fills it; half the file
//! is their tests.)

use doumi_proto::bot::v1::{
    Event, File, Image, InboundMessage, Link, Location, LocationReport, LocationSelect,
    MassSendFinished, MenuClick, MenuView, MiniProgramView, PicturesSent, Scan, ScanCode,
    Subscribe, TemplateSendFinished, Text, Unknown, Unsubscribe, Video, Voice, event,
    inbound_message::Kind,
};
use quick_xml::events::Event as Xml;

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

/// The union of every field WeChat sends, flat: the kind is decided after
/// reading, from `MsgType` and `Event`.
#[derive(Debug, Default)]
struct RawMessage {
    to_user_name: Option<String>,
    from_user_name: Option<String>,
    create_time: Option<String>,
    msg_type: Option<String>,
    msg_id: Option<String>,
    /// Events spell it with a capital D.
    msg_id_event: Option<String>,
    msg_data_id: Option<String>,
    idx: Option<String>,
    /// The safe-mode payload (in the envelope, not the message).
    encrypt: Option<String>,
    content: String,
    pic_url: String,
    media_id: String,
    media_id_16k: String,
    format: String,
    recognition: String,
    thumb_media_id: String,
    location_x: String,
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

#[derive(Debug, Default)]
struct RawScanCodeInfo {
    scan_type: String,
    scan_result: String,
}

#[derive(Debug, Default)]
struct RawSendPicsInfo {
    count: String,
    /// Every `<item>` of every `<PicList>`: usually one list, but some
    /// clients send several `<PicList>` siblings instead.
    pic_md5_sums: Vec<String>,
}

#[derive(Debug, Default)]
struct RawSendLocationInfo {
    location_x: String,
    location_y: String,
    scale: String,
    label: String,
    poiname: String,
}

/// Parses a plaintext WeChat message body.
pub fn parse(body: &[u8]) -> Result<InboundMessage, ParseError> {
    into_message(read(body)?)
}

/// The `Encrypt` payload of a safe- or compatible-mode body.
pub fn parse_encrypted(body: &[u8]) -> Result<String, ParseError> {
    read(body)?
        .encrypt
        .filter(|e| !e.trim().is_empty())
        .ok_or(ParseError::Missing("Encrypt"))
}

/// What an element is, known when it opens from its name and its parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// The document's root (`<xml>`, whatever its name).
    Root,
    /// An element whose text is a field.
    Field(Field),
    ScanCodeInfo,
    SendPicsInfo,
    PicList,
    PicItem,
    SendLocationInfo,
    /// An element WeChat does not send (or we do not read), with all inside it.
    Skipped,
}

/// Every field with text, wherever it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ToUserName,
    FromUserName,
    CreateTime,
    MsgType,
    MsgId,
    MsgIdEvent,
    MsgDataId,
    Idx,
    Encrypt,
    Content,
    PicUrl,
    MediaId,
    MediaId16K,
    Format,
    Recognition,
    ThumbMediaId,
    LocationX,
    LocationY,
    Scale,
    Label,
    Title,
    Description,
    Url,
    FileKey,
    FileMd5,
    FileTotalLen,
    Event,
    EventKey,
    Ticket,
    MenuId,
    Latitude,
    Longitude,
    Precision,
    Status,
    TotalCount,
    FilterCount,
    SentCount,
    ErrorCount,
    ScanType,
    ScanResult,
    PicsCount,
    PicMd5Sum,
    PlaceX,
    PlaceY,
    PlaceScale,
    PlaceLabel,
    PlacePoiname,
}

impl Node {
    /// The element `name` opened inside `self`.
    fn child(self, name: &str) -> Result<Self, ParseError> {
        use Field as F;
        let field = match (self, name) {
            (Self::Root, "ScanCodeInfo") => return Ok(Self::ScanCodeInfo),
            (Self::Root, "SendPicsInfo") => return Ok(Self::SendPicsInfo),
            (Self::Root, "SendLocationInfo") => return Ok(Self::SendLocationInfo),
            (Self::Root, name) => match name {
                "ToUserName" => F::ToUserName,
                "FromUserName" => F::FromUserName,
                "CreateTime" => F::CreateTime,
                "MsgType" => F::MsgType,
                "MsgId" => F::MsgId,
                "MsgID" => F::MsgIdEvent,
                "MsgDataId" => F::MsgDataId,
                "Idx" => F::Idx,
                "Encrypt" => F::Encrypt,
                "Content" => F::Content,
                "PicUrl" => F::PicUrl,
                "MediaId" => F::MediaId,
                "MediaId16K" => F::MediaId16K,
                "Format" => F::Format,
                "Recognition" => F::Recognition,
                "ThumbMediaId" => F::ThumbMediaId,
                "Location_X" => F::LocationX,
                "Location_Y" => F::LocationY,
                "Scale" => F::Scale,
                "Label" => F::Label,
                "Title" => F::Title,
                "Description" => F::Description,
                "Url" => F::Url,
                "FileKey" => F::FileKey,
                "FileMd5" => F::FileMd5,
                "FileTotalLen" => F::FileTotalLen,
                "Event" => F::Event,
                "EventKey" => F::EventKey,
                "Ticket" => F::Ticket,
                "MenuId" => F::MenuId,
                "Latitude" => F::Latitude,
                "Longitude" => F::Longitude,
                "Precision" => F::Precision,
                "Status" => F::Status,
                "TotalCount" => F::TotalCount,
                "FilterCount" => F::FilterCount,
                "SentCount" => F::SentCount,
                "ErrorCount" => F::ErrorCount,
                _ => return Ok(Self::Skipped),
            },
            (Self::ScanCodeInfo, "ScanType") => F::ScanType,
            (Self::ScanCodeInfo, "ScanResult") => F::ScanResult,
            (Self::SendPicsInfo, "Count") => F::PicsCount,
            (Self::SendPicsInfo, "PicList") => return Ok(Self::PicList),
            (Self::PicList, "item") => return Ok(Self::PicItem),
            (Self::PicItem, "PicMd5Sum") => F::PicMd5Sum,
            (Self::SendLocationInfo, "Location_X") => F::PlaceX,
            (Self::SendLocationInfo, "Location_Y") => F::PlaceY,
            (Self::SendLocationInfo, "Scale") => F::PlaceScale,
            (Self::SendLocationInfo, "Label") => F::PlaceLabel,
            (Self::SendLocationInfo, "Poiname") => F::PlacePoiname,
            (Self::Field(_), _) => {
                return Err(ParseError::Xml("a field holds an element".to_owned()));
            }
            _ => return Ok(Self::Skipped),
        };
        Ok(Self::Field(field))
    }
}

impl RawMessage {
    /// Where `field`'s text goes; a container is made when its first field
    /// arrives. `None` for the fields that repeat.
    fn slot(&mut self, field: Field) -> Option<&mut String> {
        use Field as F;
        fn optional(value: &mut Option<String>) -> &mut String {
            value.insert(String::new())
        }
        Some(match field {
            F::ToUserName => optional(&mut self.to_user_name),
            F::FromUserName => optional(&mut self.from_user_name),
            F::CreateTime => optional(&mut self.create_time),
            F::MsgType => optional(&mut self.msg_type),
            F::MsgId => optional(&mut self.msg_id),
            F::MsgIdEvent => optional(&mut self.msg_id_event),
            F::MsgDataId => optional(&mut self.msg_data_id),
            F::Idx => optional(&mut self.idx),
            F::Encrypt => optional(&mut self.encrypt),
            F::Content => &mut self.content,
            F::PicUrl => &mut self.pic_url,
            F::MediaId => &mut self.media_id,
            F::MediaId16K => &mut self.media_id_16k,
            F::Format => &mut self.format,
            F::Recognition => &mut self.recognition,
            F::ThumbMediaId => &mut self.thumb_media_id,
            F::LocationX => &mut self.location_x,
            F::LocationY => &mut self.location_y,
            F::Scale => &mut self.scale,
            F::Label => &mut self.label,
            F::Title => &mut self.title,
            F::Description => &mut self.description,
            F::Url => &mut self.url,
            F::FileKey => &mut self.file_key,
            F::FileMd5 => &mut self.file_md5,
            F::FileTotalLen => &mut self.file_total_len,
            F::Event => &mut self.event,
            F::EventKey => &mut self.event_key,
            F::Ticket => &mut self.ticket,
            F::MenuId => &mut self.menu_id,
            F::Latitude => &mut self.latitude,
            F::Longitude => &mut self.longitude,
            F::Precision => &mut self.precision,
            F::Status => &mut self.status,
            F::TotalCount => &mut self.total_count,
            F::FilterCount => &mut self.filter_count,
            F::SentCount => &mut self.sent_count,
            F::ErrorCount => &mut self.error_count,
            F::ScanType => &mut self.scan_code_info.get_or_insert_default().scan_type,
            F::ScanResult => &mut self.scan_code_info.get_or_insert_default().scan_result,
            F::PicsCount => &mut self.send_pics_info.get_or_insert_default().count,
            F::PicMd5Sum => return None,
            F::PlaceX => &mut self.send_location_info.get_or_insert_default().location_x,
            F::PlaceY => &mut self.send_location_info.get_or_insert_default().location_y,
            F::PlaceScale => &mut self.send_location_info.get_or_insert_default().scale,
            F::PlaceLabel => &mut self.send_location_info.get_or_insert_default().label,
            F::PlacePoiname => &mut self.send_location_info.get_or_insert_default().poiname,
        })
    }

    /// Stores a field's text; a field given twice makes the message malformed.
    fn set(&mut self, field: Field, seen: &mut u64, text: String) -> Result<(), ParseError> {
        let Some(slot) = self.slot(field) else {
            let pics = self.send_pics_info.get_or_insert_default();
            pics.pic_md5_sums.push(text);
            return Ok(());
        };
        let bit = 1u64 << (field as u32);
        if *seen & bit != 0 {
            return Err(ParseError::Xml(format!("{field:?} is given twice")));
        }
        *seen |= bit;
        *slot = text;
        Ok(())
    }
}

/// Reads a body in one pass over its XML events, checking as it goes: UTF-8,
/// no DTD (no entity tricks), bounded nesting, bounded field sizes. A
/// field's text is its text, CDATA and character references joined; text
/// (not CDATA) at either end is trimmed of XML whitespace.
fn read(body: &[u8]) -> Result<RawMessage, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let text = strip_illegal_chars(text);
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let mut reader = quick_xml::Reader::from_str(&text);
    let malformed = |e: quick_xml::Error| ParseError::Xml(e.to_string());
    let mut raw = RawMessage::default();
    let mut seen = 0u64;
    let mut open: Vec<Node> = Vec::with_capacity(MAX_DEPTH);
    // The text of the field being read, and where its last plain-text piece
    // began (`None` when the last piece was CDATA or a reference).
    let mut field_text = String::new();
    let mut trailing_text: Option<usize> = None;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        let (start, end) = match &event {
            Xml::DocType(_) => return Err(ParseError::Doctype),
            Xml::Start(_) => (true, false),
            Xml::Empty(_) => (true, true),
            Xml::End(_) => (false, true),
            Xml::Text(piece) => {
                let piece = piece.xml10_content();
                let piece = if field_text.is_empty() && trailing_text.is_none() {
                    piece.trim_start_matches(is_xml_space)
                } else {
                    &piece
                };
                trailing_text = Some(field_text.len());
                field_text.push_str(piece);
                (false, false)
            }
            Xml::CData(piece) => {
                field_text.push_str(&piece.xml10_content());
                trailing_text = None;
                (false, false)
            }
            Xml::GeneralRef(reference) => {
                match reference.resolve_char_ref().map_err(malformed)? {
                    Some(c) => field_text.push(c),
                    None => field_text.push_str(
                        quick_xml::escape::resolve_predefined_entity(reference).ok_or_else(
                            || ParseError::Xml(format!("unknown entity &{};", &**reference)),
                        )?,
                    ),
                }
                trailing_text = None;
                (false, false)
            }
            Xml::Eof => {
                return if open.is_empty() {
                    Ok(raw)
                } else {
                    Err(ParseError::Xml(
                        "the document ends inside an element".to_owned(),
                    ))
                };
            }
            Xml::Decl(_) | Xml::PI(_) | Xml::Comment(_) => (false, false),
        };
        let limit = if open.last() == Some(&Node::Field(Field::Encrypt)) {
            MAX_ENCRYPT_BYTES
        } else {
            MAX_FIELD_BYTES
        };
        if field_text.len() > limit {
            return Err(ParseError::FieldTooLong);
        }
        if start {
            let node = match (&event, open.last()) {
                (Xml::Start(element) | Xml::Empty(element), Some(parent)) => {
                    parent.child(element.name().as_ref())?
                }
                _ => Node::Root,
            };
            if open.len() == MAX_DEPTH {
                return Err(ParseError::TooDeep);
            }
            open.push(node);
            field_text.clear();
            trailing_text = None;
        }
        if end {
            if let Some(mark) = trailing_text {
                let kept = mark + field_text[mark..].trim_end_matches(is_xml_space).len();
                field_text.truncate(kept);
            }
            if let Some(Node::Field(field)) = open.pop() {
                raw.set(field, &mut seen, std::mem::take(&mut field_text))?;
            }
            field_text.clear();
            trailing_text = None;
            if open.is_empty() {
                // One document: whatever follows its root is not read.
                return Ok(raw);
            }
        }
    }
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Removes characters XML 1.0 forbids (C0 controls except tab, LF, CR).
pub fn strip_illegal_chars(text: &str) -> std::borrow::Cow<'_, str> {
    let illegal = |c: char| matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    // Every message (and every field of every reply) passes here, so the
    // usual case is settled without decoding a character: one scan for C0
    // controls without early exit (the compiler vectorises it), and a
    // byte search for the lead of U+FFFE/U+FFFF (EF BF BE/BF), which only
    // the few full-width forms (EF BC/BD xx) share in Chinese text.
    let bytes = text.as_bytes();
    let control = bytes.iter().fold(false, |found, &b| {
        found | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
    });
    let noncharacter = memchr::memchr_iter(0xEF, bytes)
        .any(|at| matches!(bytes.get(at + 1..at + 3), Some([0xBF, 0xBE | 0xBF])));
    if !control && !noncharacter {
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
                pic_md5_sums: pics.pic_md5_sums,
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
        let message =
            parse(text_message("浪潮\u{1d}之\u{fffe}巅\u{2}\u{ffff}").as_bytes()).unwrap();
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
    fn pretty_printed_bodies_read_like_compact_ones() {
        let body = "<xml>\n  <ToUserName><![CDATA[gh_1]]></ToUserName>\n  <FromUserName> u1 </FromUserName>\n\
                    <CreateTime>1</CreateTime>\n  <MsgType>text</MsgType>\n\
                    <Content>\n  a &lt;b&gt; &#x4e09;体 <![CDATA[ kept ]]>\n</Content>\n  <MsgId/>\n</xml>\n";
        let message = parse(body.as_bytes()).unwrap();
        assert_eq!(message.from_user, "u1");
        assert_eq!(message.msg_id, 0);
        assert_eq!(
            message.kind,
            Some(Kind::Text(Text {
                content: "a <b> 三体  kept ".to_owned()
            }))
        );
    }

    #[test]
    fn photos_from_several_pic_lists_and_a_chosen_place() {
        let head = "<xml><ToUserName>gh_1</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>\
                    <MsgType>event</MsgType><EventKey>k</EventKey>";
        let pics = format!(
            "{head}<Event>pic_weixin</Event><SendPicsInfo><Count>2</Count>\
             <PicList><item><PicMd5Sum>a1</PicMd5Sum></item></PicList>\
             <PicList><item><PicMd5Sum>b2</PicMd5Sum></item></PicList></SendPicsInfo></xml>"
        );
        let Some(Kind::Event(Event {
            kind: Some(event::Kind::Pictures(sent)),
        })) = parse(pics.as_bytes()).unwrap().kind
        else {
            panic!("not a pictures event");
        };
        assert_eq!(
            (sent.count, sent.pic_md5_sums),
            (2, vec!["a1".to_owned(), "b2".to_owned()])
        );
        let place = format!(
            "{head}<Event>location_select</Event><SendLocationInfo><Location_X>23.1</Location_X>\
             <Location_Y>113.3</Location_Y><Scale>15</Scale><Label><![CDATA[广州]]></Label>\
             <Poiname><![CDATA[图书馆]]></Poiname></SendLocationInfo></xml>"
        );
        let Some(Kind::Event(Event {
            kind: Some(event::Kind::LocationSelect(chosen)),
        })) = parse(place.as_bytes()).unwrap().kind
        else {
            panic!("not a location_select event");
        };
        assert_eq!(
            (
                chosen.latitude,
                chosen.label.as_str(),
                chosen.poiname.as_str()
            ),
            (23.1, "广州", "图书馆")
        );
    }

    #[test]
    fn fields_given_twice_or_holding_elements_are_malformed() {
        let twice = text_message("a").replace("</xml>", "<Content>b</Content></xml>");
        assert!(matches!(parse(twice.as_bytes()), Err(ParseError::Xml(_))));
        let nested = text_message("a").replace("<Content><![CDATA[a]]>", "<Content><b>a</b>");
        assert!(matches!(parse(nested.as_bytes()), Err(ParseError::Xml(_))));
        let unknown = text_message("a").replace("</xml>", "<Extra><Deep>x</Deep></Extra></xml>");
        assert!(parse(unknown.as_bytes()).is_ok());
        let entity = text_message("a").replace("<![CDATA[a]]>", "&nbsp;");
        assert!(matches!(parse(entity.as_bytes()), Err(ParseError::Xml(_))));
        let deep = "<xml><a><b><c><d><e><f><g>x</g></f></e></d></c></b></a></xml>";
        assert_eq!(parse(deep.as_bytes()), Err(ParseError::TooDeep));
        let long = text_message(&"长".repeat(MAX_FIELD_BYTES));
        assert_eq!(parse(long.as_bytes()), Err(ParseError::FieldTooLong));
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
