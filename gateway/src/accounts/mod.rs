//! The official accounts a gateway serves. `settings` reads them (the
//! single-account variables or the accounts file); here each is live: its
//! Token checks signatures, its keys open and seal messages, its reply window
//! and its courier answer them. `routes` finds a request's account by its
//! path, and nothing one account holds serves another.

mod settings;

use std::{collections::HashMap, fmt::Write, sync::Arc};

use doumi_wechat::{
    crypto::{CryptoError, KeyRing, KeyUsed, MessageCrypto},
    inbound, outbound, signature,
};

pub use settings::{
    ACCOUNTS_FILE_VAR, AccountSettings, Accounts, Origin, RawAccount, SINGLE_ACCOUNT, WechatToken,
    load_file,
};

use crate::{delivery::Courier, error::Refusal, metrics as m, window::ReplyWindow};

/// One account, live.
pub struct Account {
    name: Arc<str>,
    token: WechatToken,
    keys: Option<KeyRing>,
    require_encryption: bool,
    window: ReplyWindow,
    courier: Option<Courier>,
}

/// The signed parts of a request, once checked.
pub struct Signed<'a> {
    pub timestamp: &'a str,
    pub nonce: &'a str,
}

/// A message's XML and how it came: plaintext, or opened with one of the
/// account's keys (its reply is sealed with the same one).
pub struct Opened {
    pub xml: Vec<u8>,
    pub key: Option<KeyUsed>,
}

impl Account {
    pub fn new(settings: AccountSettings, window: ReplyWindow, courier: Option<Courier>) -> Self {
        Self {
            name: settings.name.into(),
            token: settings.token,
            keys: settings.keys,
            require_encryption: settings.require_encryption,
            window,
            courier,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn window(&self) -> &ReplyWindow {
        &self.window
    }

    /// Checks a signature over this account's Token, `timestamp` and `nonce`
    /// (constant-time): a request signed with another account's Token fails.
    pub fn signed_by_us(&self, signature: &str, timestamp: &str, nonce: &str) -> bool {
        signature::verify(signature, &[self.token.expose(), timestamp, nonce])
    }

    /// The message XML: the body itself in plaintext mode, the decrypted
    /// `Encrypt` in safe and compatible mode (whose plaintext copy is
    /// ignored), opened with the current key or, during a rotation, the
    /// previous one.
    pub fn open(
        &self,
        encrypted: bool,
        msg_signature: Option<&str>,
        signed: &Signed<'_>,
        body: &[u8],
    ) -> Result<Opened, Refusal> {
        if !encrypted {
            if self.require_encryption {
                return Err(Refusal::PlaintextRefused);
            }
            return Ok(Opened {
                xml: body.to_vec(),
                key: None,
            });
        }
        let keys = self.keys.as_ref().ok_or(Refusal::EncryptionNotConfigured)?;
        // Without msg_signature nothing vouches for the payload: never fall back to plaintext.
        let msg_signature = msg_signature.ok_or(CryptoError::ValidateSignature)?;
        let payload = inbound::parse_encrypted(body).map_err(|e| match e {
            inbound::ParseError::Missing(_) | inbound::ParseError::Xml(_) => {
                Refusal::Crypto(CryptoError::ParseXml)
            }
            other => Refusal::BadMessage(other),
        })?;
        MessageCrypto::verify(
            self.token.expose(),
            signed.timestamp,
            signed.nonce,
            &payload,
            msg_signature,
        )?;
        let (xml, key) = keys.open(&payload)?;
        if key == KeyUsed::Previous {
            metrics::counter!(m::PREVIOUS_KEY, "account" => self.name.clone()).increment(1);
        }
        Ok(Opened {
            xml: xml.into_bytes(),
            key: Some(key),
        })
    }

    /// The safe-mode reply envelope around `xml`, sealed with the key that
    /// opened the message and signed like WeChat's own.
    pub fn seal(&self, xml: &str, key: KeyUsed, signed: &Signed<'_>) -> Result<String, Refusal> {
        let keys = self.keys.as_ref().ok_or(Refusal::EncryptionNotConfigured)?;
        Ok(outbound::seal(
            keys.key(key),
            self.token.expose(),
            signed.timestamp,
            signed.nonce,
            xml,
        ))
    }

    /// One line for `/readyz`: whether replies that miss WeChat's window
    /// reach the reader, and if not, why.
    fn standing(&self) -> String {
        match &self.courier {
            Some(courier) => courier.standing().to_string(),
            None => "no AppSecret: readers whose reply misses the window are asked to send again"
                .to_owned(),
        }
    }
}

/// Every account of the gateway, by where WeChat posts to it.
pub struct Directory {
    /// The single account, at `/wechat`.
    root: Option<Arc<Account>>,
    /// The accounts of an accounts file, at `/wechat/NAME`.
    named: HashMap<String, Arc<Account>>,
}

impl Directory {
    pub fn single(account: Account) -> Self {
        Self {
            root: Some(Arc::new(account)),
            named: HashMap::new(),
        }
    }

    pub fn named(accounts: impl IntoIterator<Item = Account>) -> Self {
        Self {
            root: None,
            named: accounts
                .into_iter()
                .map(|account| (account.name.to_string(), Arc::new(account)))
                .collect(),
        }
    }

    /// The account served at `/wechat`.
    pub fn root(&self) -> Option<&Arc<Account>> {
        self.root.as_ref()
    }

    /// The account served at `/wechat/NAME`.
    pub fn get(&self, name: &str) -> Option<&Arc<Account>> {
        self.named.get(name)
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.root.iter().chain(self.named.values())
    }

    /// Each account's standing with WeChat, a line each, sorted by name.
    pub fn standing(&self) -> String {
        let mut accounts: Vec<_> = self.all().collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        let mut text = String::new();
        for account in accounts {
            let _ = writeln!(text, "account {}: {}", account.name, account.standing());
        }
        text
    }
}
