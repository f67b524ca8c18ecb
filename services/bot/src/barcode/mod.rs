//! Reading a book's ISBN from a photo of its barcode: a reader who sends the
//! back cover instead of typing thirteen digits gets the same answer.
//!
//! The photo's `PicUrl` comes from the message, so whoever can send the bot a
//! message chooses the URL: it is fetched only from the image hosts the
//! operator allows (`DOUMI_BOT_IMAGE_HOSTS`, WeChat's CDN by default), with a
//! size cap and a timeout, and never by following a redirect. Decoding is CPU
//! work, so it runs on the blocking pool, a bounded number at once, after the
//! image's header has shown its dimensions are sane.
//!
//! Inside: `hosts` (the allow-list), `photo` (decoding, CPU-bound), `error`.

mod error;
mod hosts;
mod photo;

use std::{net::IpAddr, sync::Arc, time::Duration};

use doumi_runtime::throttle::LogThrottle;
use reqwest::Url;
use tokio::sync::Semaphore;

pub use error::{BarcodeError, FetchError};
pub use hosts::parse_hosts;

use hosts::normalize_host;
use photo::decode;

/// Bytes a photo may have. A phone photo WeChat has recompressed is far
/// smaller; an original 12-megapixel JPEG still fits.
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
/// The whole fetch, connect to last byte: WeChat waits five seconds for the
/// reply, and a slow image host must not hold a lookup for longer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Decodes at once: one per core of the machine the bot is sized for. More
/// would only make each reader wait longer for the CPU.
pub const DECODES_AT_ONCE: usize = 2;
/// How long a photo waits for a decoding slot before the reader is told the
/// bot is busy.
pub const BUSY_WAIT: Duration = Duration::from_secs(2);

/// Reads the ISBN in a photo message's `PicUrl`. Cheap to clone: clones share
/// one HTTP client and one set of decoding slots.
#[derive(Debug, Clone)]
pub struct BarcodeReader {
    client: reqwest::Client,
    hosts: Arc<[String]>,
    /// Bounds the decodes running at once, across clones: decoding a photo
    /// takes a core for a while, and the gRPC handlers must keep theirs.
    decoding: Arc<Semaphore>,
    /// An image host that is down fails every photo: one line a minute.
    failures: Arc<LogThrottle>,
}

impl BarcodeReader {
    /// A reader fetching only from `hosts` (as [`parse_hosts`] returns them;
    /// other spellings are normalised, unusable entries ignored).
    pub fn new(hosts: Vec<String>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // A redirect could lead anywhere, including inside the cluster.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("doumi-bot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let hosts = hosts
            .iter()
            .filter_map(|h| normalize_host(h.trim()))
            .collect();
        Ok(Self {
            client,
            hosts,
            decoding: Arc::new(Semaphore::new(DECODES_AT_ONCE)),
            failures: Arc::new(LogThrottle::default()),
        })
    }

    /// The 13 digits of the ISBN barcode in the image at `pic_url`.
    pub async fn read(&self, pic_url: &str) -> Result<String, BarcodeError> {
        let result = self.fetch_and_decode(pic_url).await;
        let outcome = match &result {
            Ok(_) => "isbn",
            Err(e) => e.outcome(),
        };
        metrics::counter!(crate::metrics::BARCODE_READS, "outcome" => outcome).increment(1);
        match &result {
            Err(BarcodeError::Fetch(cause)) => {
                if let Some(held_back) = self.failures.admit("fetch") {
                    tracing::warn!(error = %doumi_runtime::causes(cause), held_back, "fetching a barcode photo failed");
                }
            }
            _ => tracing::debug!(outcome, "barcode photo read"),
        }
        result
    }

    async fn fetch_and_decode(&self, pic_url: &str) -> Result<String, BarcodeError> {
        let url = self.allowed(pic_url).ok_or(BarcodeError::HostNotAllowed)?;
        let bytes = self.fetch(url).await?;
        self.decode_off_thread(bytes).await
    }

    /// Decodes `bytes` on the blocking pool once a decoding slot is free,
    /// or gives up after [`BUSY_WAIT`].
    async fn decode_off_thread(&self, bytes: Vec<u8>) -> Result<String, BarcodeError> {
        let permit = tokio::time::timeout(BUSY_WAIT, self.decoding.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(BarcodeError::Busy)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _span = span.enter();
            decode(&bytes)
        })
        .await
        .unwrap_or_else(|e| {
            // A decoder bug on a strange image must cost this photo, not the bot.
            tracing::warn!(error = %e, "barcode decoding failed unexpectedly");
            Err(BarcodeError::NoBarcode)
        })
    }

    /// `pic_url` parsed, if it is an `http(s)` URL without credentials on an
    /// allowed host. The parsed URL is what is fetched, so what was checked
    /// is exactly what is requested.
    fn allowed(&self, pic_url: &str) -> Option<Url> {
        let url = Url::parse(pic_url.trim()).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        // The URL parser has already lowercased names and turned every
        // spelling of an IPv4 address into dotted decimal.
        let host = normalize_host(url.host_str()?)?;
        let is_ip = host.parse::<IpAddr>().is_ok();
        let listed = self.hosts.iter().any(|allowed| {
            host == *allowed
                || (!is_ip
                    && host
                        .strip_suffix(allowed.as_str())
                        .is_some_and(|sub| sub.ends_with('.')))
        });
        listed.then_some(url)
    }

    /// The body, at most [`MAX_IMAGE_BYTES`], refused as early as the size
    /// is known: from `Content-Length` if sent, else while it streams.
    async fn fetch(&self, url: Url) -> Result<Vec<u8>, BarcodeError> {
        let fetch_failed = |e: reqwest::Error| BarcodeError::Fetch(FetchError::Http(e));
        let mut response = self.client.get(url).send().await.map_err(fetch_failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(BarcodeError::Fetch(FetchError::Status(status)));
        }
        let announced = response.content_length().unwrap_or(0);
        if announced > MAX_IMAGE_BYTES as u64 {
            return Err(BarcodeError::TooLarge);
        }
        let mut body = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(fetch_failed)? {
            if body.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(BarcodeError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(hosts: &[&str]) -> BarcodeReader {
        let hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
        match BarcodeReader::new(hosts) {
            Ok(reader) => reader,
            Err(e) => panic!("building the reader: {e}"),
        }
    }

    fn allows(reader: &BarcodeReader, url: &str) -> bool {
        reader.allowed(url).is_some()
    }

    #[test]
    fn allows_the_listed_host_and_its_subdomains() {
        let r = reader(&["mmbiz.qpic.cn"]);
        assert!(allows(&r, "http://mmbiz.qpic.cn/mmbiz_jpg/abc/0"));
        assert!(allows(
            &r,
            "https://mmbiz.qpic.cn/mmbiz_jpg/abc/0?wx_fmt=jpeg"
        ));
        assert!(allows(&r, "https://MMBIZ.QPIC.CN/a"));
        assert!(allows(&r, "https://mmbiz.qpic.cn./a"));
        assert!(
            allows(&r, "https://mmbiz.qpic.cn:8443/a"),
            "the port does not matter"
        );
        assert!(allows(&r, "http://img.mmbiz.qpic.cn/a"));
        assert!(allows(&r, "http://a.b.mmbiz.qpic.cn/a"));
    }

    #[test]
    fn refuses_look_alike_hosts() {
        let r = reader(&["mmbiz.qpic.cn"]);
        assert!(!allows(&r, "http://mmbiz.qpic.cn.evil.com/a"));
        assert!(!allows(&r, "http://evilmmbiz.qpic.cn/a"));
        assert!(!allows(&r, "http://qpic.cn/a"));
        assert!(!allows(&r, "http://mmbiz-qpic.cn/a"));
        assert!(!allows(&r, "http://evil.com/mmbiz.qpic.cn/a"));
        assert!(!allows(&r, "http://evil.com/?u=http://mmbiz.qpic.cn/a"));
        assert!(!allows(&r, "http://evil.com#mmbiz.qpic.cn"));
    }

    #[test]
    fn refuses_userinfo_tricks() {
        let r = reader(&["mmbiz.qpic.cn"]);
        assert!(!allows(&r, "http://mmbiz.qpic.cn@evil.com/a"));
        assert!(!allows(&r, "http://mmbiz.qpic.cn:443@evil.com/a"));
        assert!(!allows(&r, "http://user@evil/a"));
        assert!(!allows(&r, "http://evil.com\\@mmbiz.qpic.cn/a"));
        // Credentials to the right host are refused too: WeChat never sends them.
        assert!(!allows(&r, "http://user:pass@mmbiz.qpic.cn/a"));
    }

    #[test]
    fn refuses_other_schemes_and_non_urls() {
        let r = reader(&["mmbiz.qpic.cn"]);
        for url in [
            "ftp://mmbiz.qpic.cn/a",
            "file://mmbiz.qpic.cn/etc/passwd",
            "file:///etc/passwd",
            "gopher://mmbiz.qpic.cn/a",
            "data:image/png;base64,AAAA",
            "//mmbiz.qpic.cn/a",
            "mmbiz.qpic.cn/a",
            "",
            "http://",
        ] {
            assert!(!allows(&r, url), "{url:?} was allowed");
        }
    }

    #[test]
    fn ip_addresses_match_exactly() {
        let r = reader(&["127.0.0.1", "::1"]);
        assert!(allows(&r, "http://127.0.0.1:8080/a.jpg"));
        assert!(allows(&r, "http://[::1]:8080/a.jpg"));
        assert!(!allows(&r, "http://127.0.0.2/a.jpg"));
        assert!(!allows(&r, "http://localhost/a.jpg"));
        assert!(!allows(&r, "http://1.127.0.0.1/a.jpg"));
        // Other spellings of an address are parsed, not compared as text.
        assert!(allows(&r, "http://2130706433/a.jpg"));
    }

    #[tokio::test(start_paused = true)]
    async fn says_busy_when_every_decoding_slot_stays_taken() {
        let reader = reader(&["mmbiz.qpic.cn"]);
        let held = reader
            .decoding
            .clone()
            .acquire_many_owned(DECODES_AT_ONCE as u32)
            .await;

        // A clone shares the slots.
        let busy = reader.clone().decode_off_thread(b"GIF89a".to_vec()).await;
        drop(held);
        let decoded = reader.decode_off_thread(b"GIF89a".to_vec()).await;

        assert!(matches!(busy, Err(BarcodeError::Busy)), "{busy:?}");
        assert!(
            matches!(decoded, Err(BarcodeError::NotAnImage)),
            "{decoded:?}"
        );
    }
}
