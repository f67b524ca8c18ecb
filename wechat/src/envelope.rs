//! WeChat's envelope around a callback: the signed query, the Token it is
//! signed with, and, per account, the checks and keys that turn a request
//! into message XML and a reply back into what WeChat accepts. What a
//! refusal looks like on the wire (statuses, metrics) is the server's part.

use std::{borrow::Cow, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    crypto::{CryptoError, KeyRing, KeyUsed, MessageCrypto},
    inbound::{self, ParseError},
    outbound, signature,
};

/// The query WeChat signs every callback with. Raw strings: nothing in it is
/// trusted until [`Endpoint::check`] or [`Endpoint::verify_url`] says so.
#[derive(Debug, Default, Clone)]
pub struct SignedQuery {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    /// URL verification only.
    pub echostr: Option<String>,
    /// `aes` in safe and compatible mode.
    pub encrypt_type: Option<String>,
    /// Safe mode: the signature over the `Encrypt` payload as well.
    pub msg_signature: Option<String>,
}

impl SignedQuery {
    /// Reads a callback's query string. Only the parameters the envelope
    /// uses are kept (the reader's `openid` is not one), and a pair is
    /// decoded (`%XX`, `+`) only when it is encoded, which WeChat's never
    /// are: a general form decoder decoded (and copied) every pair of every
    /// message. A parameter given twice is refused: which one was signed?
    pub fn parse(query: &str) -> Result<Self, EnvelopeError> {
        let mut parsed = Self::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value): (Cow<'_, str>, Cow<'_, str>) =
                if memchr::memchr2(b'%', b'+', pair.as_bytes()).is_some() {
                    match url::form_urlencoded::parse(pair.as_bytes()).next() {
                        Some(decoded) => decoded,
                        None => continue,
                    }
                } else {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (name.into(), value.into())
                };
            let field = match &*name {
                "signature" => &mut parsed.signature,
                "timestamp" => &mut parsed.timestamp,
                "nonce" => &mut parsed.nonce,
                "echostr" => &mut parsed.echostr,
                "encrypt_type" => &mut parsed.encrypt_type,
                "msg_signature" => &mut parsed.msg_signature,
                _ => continue,
            };
            if field.replace(value.into_owned()).is_some() {
                return Err(EnvelopeError::RepeatedParameter);
            }
        }
        Ok(parsed)
    }

    /// Whether WeChat says the body is sealed. Compatible mode also sends a
    /// plaintext copy beside it, which is never read.
    pub fn encrypted(&self) -> bool {
        self.encrypt_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("aes"))
    }
}

/// The Token shared with WeChat: 3 to 32 letters and digits, as WeChat's
/// console requires. It never appears in logs.
#[derive(Clone)]
pub struct WechatToken(SecretString);

impl WechatToken {
    pub fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim();
        if !(3..=32).contains(&value.len()) || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("must be 3 to 32 letters and digits, as in WeChat's console");
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for WechatToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WechatToken(***)")
    }
}

/// Why a callback was refused. Each variant is a distinct answer for the
/// server (who is at fault, what to count), so none is folded into another.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("missing signature, timestamp or nonce")]
    Unsigned,
    #[error("a query parameter is given twice")]
    RepeatedParameter,
    #[error("signature mismatch")]
    BadSignature,
    #[error("timestamp outside the accepted window")]
    StaleTimestamp,
    #[error("plaintext messages are refused: this account is in safe mode")]
    PlaintextRefused,
    #[error("encrypted message, but no EncodingAESKey is configured")]
    EncryptionNotConfigured,
    #[error("safe-mode message refused: {0}")]
    Crypto(#[from] CryptoError),
    #[error("not a WeChat message: {0}")]
    BadMessage(#[from] ParseError),
}

/// A callback whose signature and timestamp were checked. Only these open,
/// and a reply is sealed over the same timestamp and nonce.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'q> {
    query: &'q SignedQuery,
    timestamp: &'q str,
    nonce: &'q str,
}

impl Signed<'_> {
    /// Whether the body is sealed (and the reply will be).
    pub fn encrypted(&self) -> bool {
        self.query.encrypted()
    }
}

/// A message's XML and how it came: plaintext, or opened with one of the
/// account's keys (its reply is sealed with the same one).
#[derive(Debug)]
pub struct Opened {
    pub xml: Vec<u8>,
    pub key: Option<KeyUsed>,
}

/// One account's callback URL as WeChat sees it: its Token signs every
/// request, its keys (if any) seal the messages. A request signed with
/// another account's Token or keys fails here.
#[derive(Debug, Clone)]
pub struct Endpoint {
    token: WechatToken,
    keys: Option<KeyRing>,
    /// Safe mode only: nothing reaches the server that a key did not vouch for.
    require_encryption: bool,
}

impl Endpoint {
    pub fn new(token: WechatToken, keys: Option<KeyRing>, require_encryption: bool) -> Self {
        Self {
            token,
            keys,
            require_encryption,
        }
    }

    /// Checks the plain signature over Token, timestamp and nonce, then that
    /// the timestamp is within `tolerance` of `now` (unix seconds) either
    /// way, so a captured request cannot be replayed later. WeChat's retries
    /// reuse all three, and pass.
    pub fn check<'q>(
        &self,
        query: &'q SignedQuery,
        now: i64,
        tolerance: Duration,
    ) -> Result<Signed<'q>, EnvelopeError> {
        let (Some(signature), Some(timestamp), Some(nonce)) =
            (&query.signature, &query.timestamp, &query.nonce)
        else {
            return Err(EnvelopeError::Unsigned);
        };
        self.check_signature(signature, timestamp, nonce)?;
        let sent: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| EnvelopeError::StaleTimestamp)?;
        if now.abs_diff(sent) > tolerance.as_secs() {
            return Err(EnvelopeError::StaleTimestamp);
        }
        Ok(Signed {
            query,
            timestamp,
            nonce,
        })
    }

    /// WeChat's server verification: the `echostr` to echo when the
    /// signature holds. It is signed the same way in every encryption mode.
    pub fn verify_url(&self, query: SignedQuery) -> Result<String, EnvelopeError> {
        let (Some(signature), Some(timestamp), Some(nonce), Some(echostr)) = (
            &query.signature,
            &query.timestamp,
            &query.nonce,
            query.echostr,
        ) else {
            return Err(EnvelopeError::Unsigned);
        };
        self.check_signature(signature, timestamp, nonce)?;
        Ok(echostr)
    }

    /// The message XML: the body itself in plaintext mode, the decrypted
    /// `Encrypt` in safe and compatible mode, opened with the current key or,
    /// during a rotation, the previous one.
    pub fn open(&self, signed: &Signed<'_>, body: &[u8]) -> Result<Opened, EnvelopeError> {
        if !signed.encrypted() {
            if self.require_encryption {
                return Err(EnvelopeError::PlaintextRefused);
            }
            return Ok(Opened {
                xml: body.to_vec(),
                key: None,
            });
        }
        let keys = self
            .keys
            .as_ref()
            .ok_or(EnvelopeError::EncryptionNotConfigured)?;
        // Without msg_signature nothing vouches for the payload: never fall back to plaintext.
        let msg_signature = signed
            .query
            .msg_signature
            .as_deref()
            .ok_or(CryptoError::ValidateSignature)?;
        // An envelope that is not XML is WeChat's -40002; a hostile one (a
        // DTD, too deep, too long) is refused as any bad message is.
        let payload = inbound::parse_encrypted(body).map_err(|e| match e {
            ParseError::Missing(_) | ParseError::Xml(_) => {
                EnvelopeError::Crypto(CryptoError::ParseXml)
            }
            other => EnvelopeError::BadMessage(other),
        })?;
        MessageCrypto::verify(
            self.token.expose(),
            signed.timestamp,
            signed.nonce,
            &payload,
            msg_signature,
        )?;
        let (xml, key) = keys.open(&payload)?;
        Ok(Opened {
            xml: xml.into_bytes(),
            key: Some(key),
        })
    }

    /// The safe-mode reply envelope around `xml`, sealed with the key that
    /// opened the message (the sender may hold only that one) and signed
    /// like WeChat's own.
    pub fn seal(
        &self,
        xml: &str,
        key: KeyUsed,
        signed: &Signed<'_>,
    ) -> Result<String, EnvelopeError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or(EnvelopeError::EncryptionNotConfigured)?;
        Ok(outbound::seal(
            keys.key(key),
            self.token.expose(),
            signed.timestamp,
            signed.nonce,
            xml,
        ))
    }

    /// Constant-time, over this account's Token only.
    fn check_signature(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<(), EnvelopeError> {
        if signature::verify(signature, &[self.token.expose(), timestamp, nonce]) {
            Ok(())
        } else {
            Err(EnvelopeError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crypto::{
            AesKey,
            tests::{SAMPLE_KEY, TENCENT_ENCRYPT},
        },
        peer,
    };

    const TOKEN: &str = "tok123";
    const APP_ID: &str = "wx2c2769f8efd9abc2";
    const NOW: i64 = 1_700_000_000;
    const TOLERANCE: Duration = Duration::from_secs(300);

    fn token(value: &str) -> WechatToken {
        WechatToken::parse(value).unwrap()
    }

    fn crypto(key: &str) -> MessageCrypto {
        MessageCrypto::new(AesKey::parse(key).unwrap(), APP_ID.to_owned())
    }

    fn plaintext() -> Endpoint {
        Endpoint::new(token(TOKEN), None, false)
    }

    fn safe_mode(keys: KeyRing) -> Endpoint {
        Endpoint::new(token(TOKEN), Some(keys), true)
    }

    /// A query string as `peer` writes it (WeChat's side), read back.
    fn query(text: &str) -> SignedQuery {
        SignedQuery::parse(text).unwrap()
    }

    #[test]
    fn a_query_keeps_what_the_envelope_uses_decoded() {
        let query = SignedQuery::parse(
            "signature=ab12&timestamp=1700000000&nonce=42&openid=o_Reader-1&&\
             encrypt_type=aes&msg_signature=cd34&echostr=a%2Bb%3D+c",
        )
        .unwrap();
        assert_eq!(query.signature.as_deref(), Some("ab12"));
        assert_eq!(query.timestamp.as_deref(), Some("1700000000"));
        assert_eq!(query.nonce.as_deref(), Some("42"));
        assert_eq!(query.msg_signature.as_deref(), Some("cd34"));
        assert!(query.encrypted());
        // Form encoding: %XX is the byte, `+` a space.
        assert_eq!(query.echostr.as_deref(), Some("a+b= c"));
        assert_eq!(
            SignedQuery::parse("nonce").unwrap().nonce.as_deref(),
            Some("")
        );
        assert!(SignedQuery::parse("").unwrap().signature.is_none());
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        for query in ["nonce=1&nonce=1", "signature=a&sign%61ture=b"] {
            assert_eq!(
                SignedQuery::parse(query).unwrap_err(),
                EnvelopeError::RepeatedParameter,
                "{query}"
            );
        }
    }

    fn signed_at(timestamp: i64) -> SignedQuery {
        query(&peer::signed_query(TOKEN, timestamp, "n1"))
    }

    fn text(content: &str) -> String {
        peer::text_message("reader", "gh_account", NOW, 42, content)
    }

    #[test]
    fn a_signed_fresh_plaintext_message_opens_as_itself() {
        let endpoint = plaintext();
        let query = signed_at(NOW);
        let signed = endpoint.check(&query, NOW, TOLERANCE).unwrap();
        assert!(!signed.encrypted());
        let body = text("9787121139512");
        let opened = endpoint.open(&signed, body.as_bytes()).unwrap();
        assert_eq!((opened.xml, opened.key), (body.into_bytes(), None));
    }

    #[test]
    fn a_query_missing_any_signed_part_is_unsigned() {
        let full = signed_at(NOW);
        let strips: [fn(&mut SignedQuery); 3] = [
            |q| q.signature = None,
            |q| q.timestamp = None,
            |q| q.nonce = None,
        ];
        for strip in strips {
            let mut query = full.clone();
            strip(&mut query);
            assert_eq!(
                plaintext().check(&query, NOW, TOLERANCE).err(),
                Some(EnvelopeError::Unsigned)
            );
        }
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let mut forged = signed_at(NOW);
        forged.signature = Some("0".repeat(40));
        assert_eq!(
            plaintext().check(&forged, NOW, TOLERANCE).err(),
            Some(EnvelopeError::BadSignature)
        );
        // Signed with another account's Token.
        let other = query(&peer::signed_query("otherToken", NOW, "n1"));
        assert_eq!(
            plaintext().check(&other, NOW, TOLERANCE).err(),
            Some(EnvelopeError::BadSignature)
        );
        // The signature covers the timestamp: moving it breaks the signature,
        // not only the freshness.
        let mut moved = signed_at(NOW - 3600);
        moved.timestamp = Some(NOW.to_string());
        assert_eq!(
            plaintext().check(&moved, NOW, TOLERANCE).err(),
            Some(EnvelopeError::BadSignature)
        );
    }

    #[test]
    fn a_stale_or_unreadable_timestamp_is_refused() {
        let endpoint = plaintext();
        let edge = TOLERANCE.as_secs() as i64;
        for sent in [NOW - edge, NOW + edge] {
            assert!(endpoint.check(&signed_at(sent), NOW, TOLERANCE).is_ok());
        }
        for sent in [NOW - edge - 1, NOW + edge + 1, 0, i64::MIN, i64::MAX] {
            assert_eq!(
                endpoint.check(&signed_at(sent), NOW, TOLERANCE).err(),
                Some(EnvelopeError::StaleTimestamp),
                "sent at {sent}"
            );
        }
        // Signed, but not a number.
        let signature = signature::compute(&[TOKEN, "soon", "n1"]);
        let query = query(&format!("signature={signature}&timestamp=soon&nonce=n1"));
        assert_eq!(
            endpoint.check(&query, NOW, TOLERANCE).err(),
            Some(EnvelopeError::StaleTimestamp)
        );
    }

    #[test]
    fn url_verification_echoes_only_when_signed() {
        let endpoint = plaintext();
        let mut query = signed_at(NOW);
        query.echostr = Some("5927782489442352469".to_owned());
        assert_eq!(
            endpoint.verify_url(query.clone()).unwrap(),
            "5927782489442352469"
        );
        let mut forged = query.clone();
        forged.nonce = Some("n2".to_owned());
        assert_eq!(
            endpoint.verify_url(forged).err(),
            Some(EnvelopeError::BadSignature)
        );
        query.echostr = None;
        assert_eq!(
            endpoint.verify_url(query).err(),
            Some(EnvelopeError::Unsigned)
        );
    }

    #[test]
    fn plaintext_is_refused_in_safe_mode_only() {
        let query = signed_at(NOW);
        let body = text("hello");
        let required = safe_mode(KeyRing::new(crypto(SAMPLE_KEY), None));
        let signed = required.check(&query, NOW, TOLERANCE).unwrap();
        assert_eq!(
            required.open(&signed, body.as_bytes()).err(),
            Some(EnvelopeError::PlaintextRefused)
        );
        let compatible = Endpoint::new(
            token(TOKEN),
            Some(KeyRing::new(crypto(SAMPLE_KEY), None)),
            false,
        );
        let signed = compatible.check(&query, NOW, TOLERANCE).unwrap();
        assert!(compatible.open(&signed, body.as_bytes()).is_ok());
    }

    #[test]
    fn a_sealed_message_without_msg_signature_is_refused_not_downgraded() {
        let current = crypto(SAMPLE_KEY);
        let endpoint = safe_mode(KeyRing::new(current.clone(), None));
        let (text_query, body) =
            peer::sealed_message(&current, TOKEN, NOW, "n1", "gh_account", &text("hi"));
        let mut missing = query(&text_query);
        missing.msg_signature = None;
        let signed = endpoint.check(&missing, NOW, TOLERANCE).unwrap();
        assert_eq!(
            endpoint.open(&signed, body.as_bytes()).err(),
            Some(EnvelopeError::Crypto(CryptoError::ValidateSignature))
        );
        let mut forged = query(&text_query);
        forged.msg_signature = Some("0".repeat(40));
        let signed = endpoint.check(&forged, NOW, TOLERANCE).unwrap();
        assert_eq!(
            endpoint.open(&signed, body.as_bytes()).err(),
            Some(EnvelopeError::Crypto(CryptoError::ValidateSignature))
        );
    }

    #[test]
    fn a_sealed_message_without_keys_or_envelope_is_refused() {
        let current = crypto(SAMPLE_KEY);
        let (text_query, body) =
            peer::sealed_message(&current, TOKEN, NOW, "n1", "gh_account", &text("hi"));
        let query = query(&text_query);
        let endpoint = plaintext();
        let signed = endpoint.check(&query, NOW, TOLERANCE).unwrap();
        assert_eq!(
            endpoint.open(&signed, body.as_bytes()).err(),
            Some(EnvelopeError::EncryptionNotConfigured)
        );

        let endpoint = safe_mode(KeyRing::new(current, None));
        let signed = endpoint.check(&query, NOW, TOLERANCE).unwrap();
        assert_eq!(
            endpoint.open(&signed, text("hi").as_bytes()).err(),
            Some(EnvelopeError::Crypto(CryptoError::ParseXml)),
            "no <Encrypt>"
        );
        let dtd = "<!DOCTYPE x><xml><Encrypt>abc</Encrypt></xml>";
        assert_eq!(
            endpoint.open(&signed, dtd.as_bytes()).err(),
            Some(EnvelopeError::BadMessage(ParseError::Doctype))
        );
    }

    #[test]
    fn seal_and_open_round_trip_with_the_current_and_previous_key() {
        let current = crypto(SAMPLE_KEY);
        let previous = crypto("ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut");
        let endpoint = safe_mode(KeyRing::new(current.clone(), Some(previous.clone())));
        for (sender, used) in [(current, KeyUsed::Current), (previous, KeyUsed::Previous)] {
            let message = text("9787121139512");
            let (text_query, body) =
                peer::sealed_message(&sender, TOKEN, NOW, "n1", "gh_account", &message);
            let query = query(&text_query);
            let signed = endpoint.check(&query, NOW, TOLERANCE).unwrap();
            assert!(signed.encrypted());
            let opened = endpoint.open(&signed, body.as_bytes()).unwrap();
            assert_eq!((opened.xml, opened.key), (message.into_bytes(), Some(used)));

            // The sender opens the reply with its key alone, as WeChat does.
            let sealed = endpoint.seal("<xml>reply</xml>", used, &signed).unwrap();
            assert_eq!(
                peer::open_reply(&sender, TOKEN, &sealed).unwrap(),
                "<xml>reply</xml>"
            );
        }
        // Neither key.
        let stranger = crypto("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR");
        let (text_query, body) =
            peer::sealed_message(&stranger, TOKEN, NOW, "n1", "gh_account", &text("hi"));
        let query = query(&text_query);
        let signed = endpoint.check(&query, NOW, TOLERANCE).unwrap();
        assert!(matches!(
            endpoint.open(&signed, body.as_bytes()),
            Err(EnvelopeError::Crypto(_))
        ));
    }

    // §7.1: Tencent's official MP sample, through the whole envelope.
    #[test]
    fn tencent_sample_checks_and_opens() {
        let endpoint = Endpoint::new(
            token("spamtest"),
            Some(KeyRing::new(crypto(SAMPLE_KEY), None)),
            true,
        );
        let query = query(
            "signature=16120ec1b8dbb870f510d87ce6bc2463eae6ca1a&timestamp=1409735669&nonce=1320562132\
             &encrypt_type=aes&msg_signature=5d197aaffba7e9b25a30732f161a50dee96bd5fa",
        );
        let body = format!(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><Encrypt><![CDATA[{TENCENT_ENCRYPT}]]></Encrypt></xml>"
        );
        let signed = endpoint.check(&query, 1409735669, TOLERANCE).unwrap();
        let opened = endpoint.open(&signed, body.as_bytes()).unwrap();
        let xml = String::from_utf8(opened.xml).unwrap();
        assert!(
            xml.contains("<Content><![CDATA[abcdteT]]></Content>"),
            "{xml}"
        );
        assert_eq!(opened.key, Some(KeyUsed::Current));
    }

    #[test]
    fn tokens_follow_the_console_rules_and_never_print() {
        assert_eq!(token(" abc123 ").expose(), "abc123");
        for bad in ["ab", "has space", "токен", &"a".repeat(33)] {
            assert!(WechatToken::parse(bad).is_err(), "{bad:?}");
        }
        let endpoint = plaintext();
        assert!(!format!("{endpoint:?}").contains(TOKEN));
    }
}
