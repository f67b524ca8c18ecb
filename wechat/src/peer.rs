//! WeChat's side of the protocol: the signed query and XML WeChat's servers
//! send, and how they read our replies. `doumi chat` and the end-to-end tests
//! use it to talk to the gateway exactly as WeChat does.

use serde::Deserialize;

use crate::{
    crypto::{CryptoError, MessageCrypto},
    signature,
};

/// The query string WeChat signs a POST with.
pub fn signed_query(token: &str, timestamp: i64, nonce: &str) -> String {
    let timestamp = timestamp.to_string();
    let signature = signature::compute(&[token, &timestamp, nonce]);
    format!("signature={signature}&timestamp={timestamp}&nonce={nonce}")
}

/// A safe-mode request as WeChat sends it: the query (with `encrypt_type=aes`
/// and `msg_signature`) and the envelope body around the encrypted `xml`.
pub fn sealed_message(
    crypto: &MessageCrypto,
    token: &str,
    timestamp: i64,
    nonce: &str,
    account: &str,
    xml: &str,
) -> (String, String) {
    let encrypt = crypto.encrypt(xml);
    let msg_signature = signature::compute(&[token, &timestamp.to_string(), nonce, &encrypt]);
    let query = format!(
        "{}&encrypt_type=aes&msg_signature={msg_signature}",
        signed_query(token, timestamp, nonce)
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[{account}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    (query, body)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawEnvelope {
    encrypt: String,
    msg_signature: String,
    time_stamp: String,
    nonce: String,
}

/// Opens a safe-mode reply as WeChat does: checks its `MsgSignature`, then
/// decrypts `Encrypt`. A plain `success` passes through unchanged.
pub fn open_reply(crypto: &MessageCrypto, token: &str, body: &str) -> Result<String, CryptoError> {
    if body.trim() == "success" || body.trim().is_empty() {
        return Ok(body.to_owned());
    }
    let envelope: RawEnvelope = quick_xml::de::from_str(body).map_err(|_| CryptoError::ParseXml)?;
    MessageCrypto::verify(
        token,
        &envelope.time_stamp,
        &envelope.nonce,
        &envelope.encrypt,
        &envelope.msg_signature,
    )?;
    crypto.decrypt(&envelope.encrypt)
}

/// A text message from `reader` to `account`, as WeChat posts it.
pub fn text_message(
    reader: &str,
    account: &str,
    create_time: i64,
    msg_id: i64,
    content: &str,
) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{reader}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[{}]]></Content><MsgId>{msg_id}</MsgId></xml>",
        content.replace("]]>", "]]]]><![CDATA[>")
    )
}

/// A photo from `reader`, as WeChat posts it: `pic_url` is where WeChat's
/// image CDN serves it.
pub fn image_message(
    reader: &str,
    account: &str,
    create_time: i64,
    msg_id: i64,
    pic_url: &str,
) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{reader}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[image]]></MsgType>\
         <PicUrl><![CDATA[{}]]></PicUrl><MediaId><![CDATA[media-{msg_id}]]></MediaId><MsgId>{msg_id}</MsgId></xml>",
        pic_url.replace("]]>", "]]]]><![CDATA[>")
    )
}

/// An event (`subscribe`, `CLICK`, ...) from `reader`, as WeChat posts it.
pub fn event_message(
    reader: &str,
    account: &str,
    create_time: i64,
    event: &str,
    key: &str,
) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{reader}]]></FromUserName>\
         <CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>"
    )
}

/// A passive reply as WeChat reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedReply {
    /// The body `success` (or empty): nothing is shown to the reader.
    Nothing,
    Text {
        to: String,
        from: String,
        content: String,
    },
    News {
        to: String,
        from: String,
        articles: Vec<ParsedArticle>,
    },
    Other {
        msg_type: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawReply {
    to_user_name: String,
    from_user_name: String,
    msg_type: String,
    content: String,
    articles: RawArticles,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawArticles {
    item: Vec<ParsedArticle>,
}

/// One article of a news reply: a card with a picture, opening `url`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ParsedArticle {
    pub title: String,
    pub description: String,
    pub pic_url: String,
    pub url: String,
}

/// Reads a reply body the way WeChat would; `None` when WeChat could not.
pub fn parse_reply(body: &str) -> Option<ParsedReply> {
    let body = body.trim();
    if body.is_empty() || body == "success" {
        return Some(ParsedReply::Nothing);
    }
    let raw: RawReply = quick_xml::de::from_str(body).ok()?;
    let (to, from) = (raw.to_user_name, raw.from_user_name);
    Some(match raw.msg_type.as_str() {
        "text" => ParsedReply::Text {
            to,
            from,
            content: raw.content,
        },
        "news" => ParsedReply::News {
            to,
            from,
            articles: raw.articles.item,
        },
        other => ParsedReply::Other {
            msg_type: other.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound;

    #[test]
    fn what_the_client_sends_the_gateway_reads() {
        let body = text_message("u1", "gh_1", 1_700_000_000, 42, "a]]>b");
        let message = inbound::parse(body.as_bytes()).unwrap();
        assert_eq!(message.msg_id, 42);
        let Some(doumi_proto::bot::v1::inbound_message::Kind::Text(text)) = message.kind else {
            panic!()
        };
        assert_eq!(text.content, "a]]>b");
    }

    #[test]
    fn signed_query_verifies() {
        let query = signed_query("tok123", 1409735669, "1320562132");
        let signature = query
            .split('&')
            .next()
            .unwrap()
            .trim_start_matches("signature=");
        assert!(signature::verify(
            signature,
            &["tok123", "1409735669", "1320562132"]
        ));
    }
}
