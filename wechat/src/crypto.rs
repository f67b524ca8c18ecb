//! WeChat's safe-mode message crypto (WXBizMsgCrypt): AES-256-CBC with the
//! IV taken from the key, PKCS#7 padding to **32-byte** blocks, and a
//! plaintext framed as `random(16) ‖ len(u32 BE) ‖ message ‖ AppID`.
//!
//! Standard PKCS#7 unpadding rejects pad values 17..=32, about half of all
//! messages, so the padding is checked and stripped here by hand — every pad
//! byte, not only the last one.

use aes::Aes256;
use base64::{
    Engine, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use rand::RngCore;

use crate::signature;

/// WeChat pads to 32-byte blocks, not AES's 16.
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
/// Encrypted payloads beyond this are not messages (the body limit is lower anyway).
const MAX_CIPHERTEXT: usize = 1 << 20;

/// EncodingAESKeys carry 43 base64 characters whose last one has spare bits,
/// which the strict standard engine rejects even for WeChat's own sample key.
const WECHAT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// WeChat's own error codes, reported in logs and metrics for each failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("-40001 msg_signature check failed")]
    ValidateSignature,
    #[error("-40002 envelope XML could not be parsed")]
    ParseXml,
    #[error("-40004 EncodingAESKey is invalid")]
    IllegalAesKey,
    #[error("-40005 AppID in the message is not ours")]
    ValidateAppId,
    #[error("-40007 AES decryption failed")]
    DecryptAes,
    #[error("-40008 decrypted buffer is malformed")]
    IllegalBuffer,
    #[error("-40010 base64 decoding failed")]
    DecodeBase64,
}

impl CryptoError {
    /// The numeric code from Tencent's WXBizMsgCrypt samples.
    pub fn code(self) -> i32 {
        match self {
            Self::ValidateSignature => -40001,
            Self::ParseXml => -40002,
            Self::IllegalAesKey => -40004,
            Self::ValidateAppId => -40005,
            Self::DecryptAes => -40007,
            Self::IllegalBuffer => -40008,
            Self::DecodeBase64 => -40010,
        }
    }
}

/// The 32-byte AES key decoded from a 43-character EncodingAESKey.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl AesKey {
    pub fn parse(encoding_aes_key: &str) -> Result<Self, CryptoError> {
        let text = encoding_aes_key.trim();
        if text.len() != 43 || !text.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(CryptoError::IllegalAesKey);
        }
        let bytes = WECHAT_BASE64
            .decode(format!("{text}="))
            .map_err(|_| CryptoError::IllegalAesKey)?;
        Ok(Self(
            bytes.try_into().map_err(|_| CryptoError::IllegalAesKey)?,
        ))
    }

    fn iv(&self) -> &[u8] {
        &self.0[..16]
    }
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(***)")
    }
}

/// An account's safe-mode credentials.
#[derive(Debug, Clone)]
pub struct MessageCrypto {
    key: AesKey,
    app_id: String,
}

impl MessageCrypto {
    pub fn new(key: AesKey, app_id: String) -> Self {
        Self { key, app_id }
    }

    /// Checks `msg_signature` over token, timestamp, nonce and the payload.
    pub fn verify(
        token: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
        msg_signature: &str,
    ) -> Result<(), CryptoError> {
        if signature::verify(msg_signature, &[token, timestamp, nonce, encrypted]) {
            Ok(())
        } else {
            Err(CryptoError::ValidateSignature)
        }
    }

    /// Decrypts an `Encrypt` payload to the inner XML, checking padding,
    /// length field and AppID.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        let encrypted = encrypted.trim();
        if encrypted.len() > MAX_CIPHERTEXT * 4 / 3 + 4 {
            return Err(CryptoError::IllegalBuffer);
        }
        let mut buf = WECHAT_BASE64
            .decode(encrypted)
            .map_err(|_| CryptoError::DecodeBase64)?;
        if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
            return Err(CryptoError::DecryptAes);
        }
        let decryptor = cbc::Decryptor::<Aes256>::new_from_slices(&self.key.0, self.key.iv())
            .map_err(|_| CryptoError::IllegalAesKey)?;
        let plain = decryptor
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::DecryptAes)?;
        let plain = unpad(plain)?;
        let rest = plain.get(RANDOM_LEN..).ok_or(CryptoError::IllegalBuffer)?;
        let (len, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(CryptoError::IllegalBuffer)?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err(CryptoError::IllegalBuffer);
        }
        let (message, app_id) = rest.split_at(len);
        if app_id != self.app_id.as_bytes() {
            return Err(CryptoError::ValidateAppId);
        }
        String::from_utf8(message.to_vec()).map_err(|_| CryptoError::IllegalBuffer)
    }

    /// Encrypts `message` with fresh randomness.
    pub fn encrypt(&self, message: &str) -> String {
        let mut random = [0u8; RANDOM_LEN];
        rand::rng().fill_bytes(&mut random);
        self.encrypt_with(message, &random)
    }

    /// Encrypts `message` with the given 16 random bytes (deterministic, for
    /// the published test vectors).
    pub fn encrypt_with(&self, message: &str, random: &[u8; RANDOM_LEN]) -> String {
        let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
        let mut plain =
            Vec::with_capacity(RANDOM_LEN + 4 + message.len() + self.app_id.len() + PAD_BLOCK);
        plain.extend_from_slice(random);
        plain.extend_from_slice(&len.to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.app_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let plain_len = plain.len();
        let encrypted = cbc::Encryptor::<Aes256>::new_from_slices(&self.key.0, self.key.iv())
            .ok()
            .and_then(|encryptor| {
                encryptor
                    .encrypt_padded::<NoPadding>(&mut plain, plain_len)
                    .ok()
                    .map(<[u8]>::to_vec)
            })
            .unwrap_or_default();
        WECHAT_BASE64.encode(encrypted)
    }
}

/// Which of an account's keys opened a message: its reply is sealed with
/// the same one, so that the side that sent it can open it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Previous,
}

/// An account's safe-mode keys through a rotation. Messages sealed with the
/// EncodingAESKey just replaced may still arrive (WeChat's retries, the
/// minutes a console change takes to spread), so the previous key is tried
/// when the current one cannot open a message, as WeChat's own SDK does.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: MessageCrypto,
    previous: Option<MessageCrypto>,
}

impl KeyRing {
    pub fn new(current: MessageCrypto, previous: Option<MessageCrypto>) -> Self {
        Self { current, previous }
    }

    /// Decrypts with the current key, then with the previous one; the
    /// current key's error when neither opens it.
    pub fn open(&self, encrypted: &str) -> Result<(String, KeyUsed), CryptoError> {
        let error = match self.current.decrypt(encrypted) {
            Ok(xml) => return Ok((xml, KeyUsed::Current)),
            Err(error) => error,
        };
        match &self.previous {
            Some(previous) => previous
                .decrypt(encrypted)
                .map(|xml| (xml, KeyUsed::Previous))
                .map_err(|_| error),
            None => Err(error),
        }
    }

    /// The key a reply to a message opened with `used` is sealed with.
    pub fn key(&self, used: KeyUsed) -> &MessageCrypto {
        match (used, &self.previous) {
            (KeyUsed::Previous, Some(previous)) => previous,
            _ => &self.current,
        }
    }
}

/// Strips PKCS#7 padding over 32-byte blocks, checking every pad byte.
fn unpad(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let &pad = plain.last().ok_or(CryptoError::IllegalBuffer)?;
    let pad = usize::from(pad);
    if !(1..=PAD_BLOCK).contains(&pad) || pad > plain.len() {
        return Err(CryptoError::IllegalBuffer);
    }
    let (body, padding) = plain.split_at(plain.len() - pad);
    if padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(CryptoError::IllegalBuffer);
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn crypto(app_id: &str) -> MessageCrypto {
        MessageCrypto::new(AesKey::parse(SAMPLE_KEY).unwrap(), app_id.to_owned())
    }

    // §7.1: Tencent's official MP sample.
    pub(crate) const TENCENT_ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    #[test]
    fn tencent_sample_verifies_and_decrypts() {
        MessageCrypto::verify(
            "spamtest",
            "1409735669",
            "1320562132",
            TENCENT_ENCRYPT,
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
        )
        .unwrap();
        let xml = crypto("wx2c2769f8efd9abc2")
            .decrypt(TENCENT_ENCRYPT)
            .unwrap();
        assert!(
            xml.contains("<Content><![CDATA[abcdteT]]></Content>"),
            "{xml}"
        );
        assert!(xml.contains("<MsgId>6054768590064713728</MsgId>"));
    }

    #[test]
    fn a_message_sealed_with_the_previous_key_opens_and_is_answered_with_it() {
        let old = crypto("wx2c2769f8efd9abc2");
        let new = MessageCrypto::new(
            AesKey::parse("ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut").unwrap(),
            "wx2c2769f8efd9abc2".to_owned(),
        );
        let ring = KeyRing::new(new.clone(), Some(old.clone()));
        let (xml, used) = ring.open(&old.encrypt("<xml>old</xml>")).unwrap();
        assert_eq!((xml.as_str(), used), ("<xml>old</xml>", KeyUsed::Previous));
        let sealed = ring.key(used).encrypt("<xml>reply</xml>");
        assert_eq!(old.decrypt(&sealed).unwrap(), "<xml>reply</xml>");
        let (_, used) = ring.open(&new.encrypt("<xml>new</xml>")).unwrap();
        assert_eq!(used, KeyUsed::Current);
        // Without the previous key, the old one's messages stay shut.
        let alone = KeyRing::new(new, None);
        assert!(alone.open(&old.encrypt("<xml>old</xml>")).is_err());
    }

    #[test]
    fn someone_elses_app_id_is_refused() {
        assert_eq!(
            crypto("wx0000000000000000").decrypt(TENCENT_ENCRYPT),
            Err(CryptoError::ValidateAppId)
        );
    }

    // §7.2: WxJava's deterministic vectors, including the pad = 32 edge case.
    const RANDOM: &[u8; 16] = b"aaaabbbbccccdddd";
    const WXJAVA_APP: &str = "wxb11529c136998cb6";

    #[test]
    fn wxjava_vectors_encrypt_exactly() {
        let c = crypto(WXJAVA_APP);
        assert_eq!(
            c.encrypt_with("我是中文abcd123", RANDOM),
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        let pad32 = "jn1L23DB+6ELqJ+6bruv24kfnRA9CJ8qXRQfcTjuspbcu/BSVDHix6RSI3nK3z+fMd03dqZ5HIPCrQNNDa2xYd47apRHAo9FEf57/GQVWffqnF3WzheksoIGmk00BgBc";
        assert_eq!(c.encrypt_with("abcdefghijklmnopqrstuvwxyz", RANDOM), pad32);
        assert_eq!(c.decrypt(pad32).unwrap(), "abcdefghijklmnopqrstuvwxyz");
        MessageCrypto::verify(
            "pamtest",
            "1409304348",
            "xxxxxx",
            pad32,
            "2b07674cc11d69d1eb5a852d4d239f5190949b19",
        )
        .unwrap();
        MessageCrypto::verify(
            "pamtest",
            "1409304348",
            "xxxxxx",
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg==",
            "82c962d39941aa48552f90ef55aa323dc620cc10",
        )
        .unwrap();
        assert_eq!(
            MessageCrypto::verify("pamtest", "1409304348", "xxxxxx", pad32, "12345"),
            Err(CryptoError::ValidateSignature)
        );
    }

    // §7.3: wechatpy's vectors (same wire algorithm), pad = 1.
    #[test]
    fn wechatpy_vectors() {
        let c = MessageCrypto::new(
            AesKey::parse("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR").unwrap(),
            "wx49f0ab532d5d035a".to_owned(),
        );
        let encrypted = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
        MessageCrypto::verify(
            "123456",
            "1411525903",
            "461056294",
            encrypted,
            "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        )
        .unwrap();
        let xml = c.decrypt(encrypted).unwrap();
        assert!(
            xml.contains("<Content><![CDATA[test]]></Content>") && xml.contains("messense"),
            "{xml}"
        );
        let echo = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";
        assert_eq!(c.decrypt(echo).unwrap(), "5927782489442352469");
        let plaintext = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>";
        let reply = c.encrypt_with(plaintext, b"1234567890123456");
        assert_eq!(
            reply,
            "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
        );
        assert_eq!(
            signature::compute(&["123456", "1411525903", "461056294", &reply]),
            "407518b7649e86ef23978113f92d27afa9296533"
        );
    }

    #[test]
    fn every_pad_length_round_trips() {
        let c = crypto(WXJAVA_APP);
        for len in 0..=64 {
            let message = "x".repeat(len);
            assert_eq!(
                c.decrypt(&c.encrypt(&message)).unwrap(),
                message,
                "length {len}"
            );
        }
    }

    #[test]
    fn tampered_payloads_are_refused_with_wechat_codes() {
        let c = crypto(WXJAVA_APP);
        let good = c.encrypt_with("abcdefghijklmnopqrstuvwxyz", RANDOM);
        assert_eq!(c.decrypt("not base64!!"), Err(CryptoError::DecodeBase64));
        // Truncated ciphertext: not a whole number of blocks.
        let bytes = WECHAT_BASE64.decode(&good).unwrap();
        assert_eq!(
            c.decrypt(&WECHAT_BASE64.encode(&bytes[..bytes.len() - 5])),
            Err(CryptoError::DecryptAes)
        );
        assert_eq!(c.decrypt(""), Err(CryptoError::DecryptAes));
        // A wrong key decrypts to garbage whose padding or framing fails.
        let other = MessageCrypto::new(
            AesKey::parse("kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR").unwrap(),
            WXJAVA_APP.to_owned(),
        );
        assert!(matches!(
            other.decrypt(&good),
            Err(CryptoError::IllegalBuffer | CryptoError::ValidateAppId)
        ));
    }

    #[test]
    fn bad_padding_bytes_are_refused() {
        assert_eq!(unpad(&[1, 2, 3, 0]), Err(CryptoError::IllegalBuffer));
        assert_eq!(unpad(&[1, 2, 33]), Err(CryptoError::IllegalBuffer));
        assert_eq!(
            unpad(&[9, 3, 2, 3]),
            Err(CryptoError::IllegalBuffer),
            "a pad byte differs"
        );
        assert_eq!(unpad(&[9, 3, 3, 3]).unwrap(), &[9]);
        assert_eq!(
            unpad(&[32u8; 32]).unwrap(),
            &[] as &[u8],
            "a whole block of padding"
        );
    }

    #[test]
    fn keys_must_be_43_base64_characters() {
        assert!(AesKey::parse(SAMPLE_KEY).is_ok());
        assert_eq!(
            AesKey::parse("short").err(),
            Some(CryptoError::IllegalAesKey)
        );
        assert_eq!(
            AesKey::parse(&format!("{}!", &SAMPLE_KEY[..42])).err(),
            Some(CryptoError::IllegalAesKey)
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn crypto() -> MessageCrypto {
        MessageCrypto::new(
            AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap(),
            "wxb11529c136998cb6".into(),
        )
    }

    proptest! {
        #[test]
        fn any_payload_decrypts_or_fails_cleanly(payload in ".{0,600}") {
            let _ = crypto().decrypt(&payload);
        }

        #[test]
        fn any_ciphertext_bytes_decrypt_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = crypto().decrypt(&WECHAT_BASE64.encode(bytes));
        }

        #[test]
        fn every_message_round_trips(message in "\\PC{0,400}") {
            let c = crypto();
            prop_assert_eq!(c.decrypt(&c.encrypt(&message)).unwrap(), message);
        }
    }
}
