//! Reading a book's ISBN from a photo of its barcode: a reader who sends the
//! back cover instead of typing thirteen digits gets the same answer.
//!
//! The photo's `PicUrl` comes from the message, so whoever can send the bot a
//! message chooses the URL: it is fetched only from the image hosts the
//! operator allows (`DOUMI_BOT_IMAGE_HOSTS`, WeChat's CDN by default), with a
//! size cap and a timeout, and never by following a redirect. Decoding is CPU
//! work, so it runs on the blocking pool, a bounded number at once, after the
//! image's header has shown its dimensions are sane.

use std::{borrow::Cow, io::Cursor, net::IpAddr, sync::Arc, time::Duration};

use doumi_runtime::throttle::LogThrottle;
use image::{GrayImage, ImageError, ImageReader, Limits, imageops};
use reqwest::{StatusCode, Url};
use rxing::{BarcodeFormat, DecodeHints, RXingResult};
use tokio::sync::Semaphore;

/// Bytes a photo may have. A phone photo WeChat has recompressed is far
/// smaller; an original 12-megapixel JPEG still fits.
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
/// The whole fetch, connect to last byte: WeChat waits five seconds for the
/// reply, and a slow image host must not hold a lookup for longer.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Pixels a photo may have (a 12-megapixel phone photo, with some margin),
/// checked from the header before anything is decoded, so a small file that
/// claims to be huge (a decompression bomb) is refused without allocating.
pub const MAX_IMAGE_PIXELS: u64 = 13_000_000;
/// Longest side a photo may have, whatever its area.
pub const MAX_IMAGE_SIDE: u32 = 8_192;
/// Decodes at once: one per core of the machine the bot is sized for. More
/// would only make each reader wait longer for the CPU.
pub const DECODES_AT_ONCE: usize = 2;
/// How long a photo waits for a decoding slot before the reader is told the
/// bot is busy.
pub const BUSY_WAIT: Duration = Duration::from_secs(2);

/// Memory the image decoder may allocate: the largest allowed photo as 16-bit
/// RGBA, the widest format the decoders produce.
const MAX_DECODE_ALLOC: u64 = MAX_IMAGE_PIXELS * 8;
/// Photos are scanned at most this large: more pixels only add sensor noise
/// to the bars and time to every pass.
const WORKING_SIDE: u32 = 2_048;
/// The half-size pass is skipped when it would leave the longest side
/// shorter than this: too few pixels per bar would be left to read.
const MIN_HALF_SIDE: u32 = 400;

/// Why no ISBN came out of a photo; the bot answers each differently.
#[derive(Debug, thiserror::Error)]
pub enum BarcodeError {
    /// The URL is not an `http(s)` URL on a host in `DOUMI_BOT_IMAGE_HOSTS`
    /// (or carries credentials); nothing was requested.
    #[error("the image URL is not on an allowed image host")]
    HostNotAllowed,
    /// The image host failed, answered with an error or a redirect, or took
    /// longer than [`FETCH_TIMEOUT`].
    #[error("fetching the image failed")]
    Fetch(#[source] FetchError),
    /// More than [`MAX_IMAGE_BYTES`], or more pixels than the caps allow.
    #[error("the image is too large")]
    TooLarge,
    /// The bytes are no image the bot can decode (JPEG, PNG, GIF, WebP).
    #[error("the file is not an image the bot can read")]
    NotAnImage,
    /// No barcode could be read in the photo.
    #[error("no barcode found in the image")]
    NoBarcode,
    /// A code was read, but it is no book's: an EAN-13 outside 978/979 (a
    /// grocery barcode) or another symbology. Carries the symbology's name
    /// (`"EAN-13"`, `"QR code"`, …), never the code's content, which could be
    /// anything the sender chose.
    #[error("found a {0}, which is not a book's ISBN barcode")]
    NotAnIsbn(String),
    /// Every decoding slot stayed taken for [`BUSY_WAIT`].
    #[error("too many photos are being read right now")]
    Busy,
}

impl BarcodeError {
    /// A bounded label for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::HostNotAllowed => "host_not_allowed",
            Self::Fetch(_) => "fetch_failed",
            Self::TooLarge => "too_large",
            Self::NotAnImage => "not_an_image",
            Self::NoBarcode => "no_barcode",
            Self::NotAnIsbn(_) => "not_an_isbn",
            Self::Busy => "busy",
        }
    }
}

/// What went wrong talking to the image host.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connecting, the request, reading the body, or the timeout.
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// Anything but a 2xx; redirects included, since they are not followed.
    #[error("the image host answered {0}")]
    Status(StatusCode),
}

/// Why `DOUMI_BOT_IMAGE_HOSTS` was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostListError {
    #[error("lists no host (give host names such as mmbiz.qpic.cn, comma-separated)")]
    Empty,
    #[error(
        "{0:?} is not a host name (give bare names such as mmbiz.qpic.cn, without scheme, port or path)"
    )]
    Invalid(String),
}

/// Parses a comma-separated list of image hosts (names or IP addresses) into
/// the lowercase form [`BarcodeReader`] compares against.
pub fn parse_hosts(value: &str) -> Result<Vec<String>, HostListError> {
    let mut hosts = Vec::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let host = normalize_host(entry).ok_or_else(|| HostListError::Invalid(entry.to_owned()))?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return Err(HostListError::Empty);
    }
    Ok(hosts)
}

/// A host name in canonical form (lowercase, no trailing dot), or an IP
/// address as `IpAddr` prints it; `None` for anything else.
fn normalize_host(entry: &str) -> Option<String> {
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let name = entry
        .strip_suffix('.')
        .unwrap_or(entry)
        .to_ascii_lowercase();
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(name)
}

// === impl BarcodeReader ===

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
                    tracing::warn!(error = %with_causes(cause), held_back, "fetching a barcode photo failed");
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

/// `error` and its causes on one line (reqwest's own message leaves out
/// whether it was a timeout, a refused connection or a reset).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

// === decoding ===

/// The ISBN in an encoded image. Blocking and CPU-bound: call it off the
/// async threads.
fn decode(bytes: &[u8]) -> Result<String, BarcodeError> {
    let photo = load_gray(bytes)?;
    match scan(&photo) {
        Some(found) => isbn_of(&found),
        None => Err(BarcodeError::NoBarcode),
    }
}

/// Decodes the image to greyscale, after checking from its header alone that
/// it is not too large to decode.
fn load_gray(bytes: &[u8]) -> Result<GrayImage, BarcodeError> {
    let reader = || {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|_| BarcodeError::NotAnImage)?;
        match reader.format() {
            Some(_) => Ok(reader),
            None => Err(BarcodeError::NotAnImage),
        }
    };
    let (width, height) = reader()?
        .into_dimensions()
        .map_err(|_| BarcodeError::NotAnImage)?;
    if width == 0 || height == 0 {
        return Err(BarcodeError::NotAnImage);
    }
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS || width.max(height) > MAX_IMAGE_SIDE
    {
        return Err(BarcodeError::TooLarge);
    }
    let mut reader = reader()?;
    // The header may lie about what follows (an animation's later frames, a
    // corrupt stream): the decoder is held to the same caps.
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    match reader.decode() {
        Ok(image) => Ok(image.into_luma8()),
        Err(ImageError::Limits(_)) => Err(BarcodeError::TooLarge),
        Err(_) => Err(BarcodeError::NotAnImage),
    }
}

/// The first code found, trying a few views of the photo, cheapest and most
/// likely first:
///
/// 1. the photo (scaled down to [`WORKING_SIDE`]), with ZXing's TRY_HARDER:
///    more rows scanned, both directions, and the image turned 90° if no row
///    reads (a barcode photographed sideways);
/// 2. the same at half size, which averages away the noise and JPEG blocks
///    that break the bars of a close-up;
/// 3. the photo turned 45° (and, by TRY_HARDER, 135°), for a barcode held
///    diagonally, which neither rows nor columns cross whole.
///
/// Only then is a QR code looked for, so that a back cover with both a QR
/// code and the ISBN barcode reads as the book.
fn scan(photo: &GrayImage) -> Option<RXingResult> {
    const LINEAR: [BarcodeFormat; 4] = [
        BarcodeFormat::EAN_13,
        BarcodeFormat::UPC_A,
        BarcodeFormat::EAN_8,
        BarcodeFormat::UPC_E,
    ];
    let working = fit(photo, WORKING_SIDE);
    let half_side = working.width().max(working.height()) / 2;
    detect(&working, &LINEAR)
        .or_else(|| {
            (half_side >= MIN_HALF_SIDE)
                .then(|| fit(&working, half_side))
                .and_then(|half| detect(&half, &LINEAR))
        })
        .or_else(|| detect(&rotate(&working, std::f32::consts::FRAC_PI_4), &LINEAR))
        .or_else(|| detect(&working, &[BarcodeFormat::QR_CODE]))
}

/// `image` scaled down so its longest side is at most `side`.
fn fit(image: &GrayImage, side: u32) -> Cow<'_, GrayImage> {
    let longest = image.width().max(image.height());
    if longest <= side || side == 0 {
        return Cow::Borrowed(image);
    }
    let scale = f64::from(side) / f64::from(longest);
    let width = ((f64::from(image.width()) * scale).round() as u32).max(1);
    let height = ((f64::from(image.height()) * scale).round() as u32).max(1);
    Cow::Owned(imageops::resize(
        image,
        width,
        height,
        imageops::FilterType::Triangle,
    ))
}

/// `image` turned by `angle` radians about its centre onto a canvas that
/// holds all of it, bilinearly sampled; the corners are filled white, like
/// the quiet zone a barcode needs.
fn rotate(image: &GrayImage, angle: f32) -> GrayImage {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (sin, cos) = angle.sin_cos();
    let out_w = (w * cos.abs() + h * sin.abs()).ceil() as u32;
    let out_h = (w * sin.abs() + h * cos.abs()).ceil() as u32;
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (ox, oy) = (out_w as f32 / 2.0, out_h as f32 / 2.0);
    let sample = |x: f32, y: f32| -> Option<f32> {
        if x < 0.0 || y < 0.0 || x > w - 1.0 || y > h - 1.0 {
            return None;
        }
        let (x0, y0) = (x.floor() as u32, y.floor() as u32);
        let (x1, y1) = (
            (x0 + 1).min(image.width() - 1),
            (y0 + 1).min(image.height() - 1),
        );
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let p = |x, y| f32::from(image.get_pixel(x, y).0[0]);
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    };
    GrayImage::from_fn(out_w, out_h, |x, y| {
        // The source point that lands on (x, y): the inverse rotation.
        let (dx, dy) = (x as f32 + 0.5 - ox, y as f32 + 0.5 - oy);
        let sx = cos * dx + sin * dy + cx - 0.5;
        let sy = -sin * dx + cos * dy + cy - 0.5;
        image::Luma([sample(sx, sy).map_or(255, |v| v.round().clamp(0.0, 255.0) as u8)])
    })
}

/// One decoding pass over `view` for `formats`.
fn detect(view: &GrayImage, formats: &[BarcodeFormat]) -> Option<RXingResult> {
    let mut hints = DecodeHints {
        TryHarder: Some(true),
        PossibleFormats: Some(formats.iter().copied().collect()),
        ..DecodeHints::default()
    };
    rxing::helpers::detect_in_luma_slice_with_hints(
        view.as_raw(),
        view.width(),
        view.height(),
        None,
        &mut hints,
    )
    .ok()
}

/// The ISBN in a decoded code, or which kind of code it was instead.
fn isbn_of(found: &RXingResult) -> Result<String, BarcodeError> {
    let format = *found.getBarcodeFormat();
    let text = found.getText();
    // An ISBN barcode is an EAN-13 the ISBN rules accept (978/979, its check digit).
    if format == BarcodeFormat::EAN_13
        && text.len() == 13
        && let Ok(isbn) = doumi_isbn::Isbn13::parse(text)
    {
        return Ok(isbn.as_str().to_owned());
    }
    let name = match format {
        BarcodeFormat::EAN_13 => "EAN-13".to_owned(),
        BarcodeFormat::EAN_8 => "EAN-8".to_owned(),
        BarcodeFormat::UPC_A => "UPC-A".to_owned(),
        BarcodeFormat::UPC_E => "UPC-E".to_owned(),
        BarcodeFormat::QR_CODE => "QR code".to_owned(),
        other => other.to_string(),
    };
    Err(BarcodeError::NotAnIsbn(name))
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

    #[test]
    fn parses_the_host_list() {
        let parsed = |v: &str| parse_hosts(v).map_err(|e| e.to_string());
        assert_eq!(
            parsed("mmbiz.qpic.cn"),
            Ok(vec!["mmbiz.qpic.cn".to_owned()])
        );
        assert_eq!(
            parsed(" MMBIZ.qpic.cn. , 127.0.0.1,[::1],mmbiz.qpic.cn"),
            Ok(vec![
                "mmbiz.qpic.cn".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned()
            ])
        );
        assert!(parsed("").is_err());
        assert!(parsed(" , ").is_err());
        for bad in [
            "https://mmbiz.qpic.cn",
            "mmbiz.qpic.cn:443",
            "mmbiz.qpic.cn/a",
            "*.qpic.cn",
            "-a.cn",
            "a..cn",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// A PNG claiming `width` × `height`, with almost no pixel data.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        fn crc32(bytes: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &b in bytes {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 == 1 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 0, 0, 0, 0]); // 8-bit greyscale, deflate, no filter, no interlace
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(13u32.to_be_bytes());
        png.extend(&ihdr);
        png.extend(crc32(&ihdr).to_be_bytes());
        // The start of a pixel stream: the header is read up to here.
        let idat = b"IDAT\x78\x9c\x01\x02".to_vec();
        png.extend(4u32.to_be_bytes());
        png.extend(&idat);
        png.extend(crc32(&idat).to_be_bytes());
        png
    }

    #[test]
    fn refuses_a_decompression_bomb_from_its_header() {
        assert!(matches!(
            decode(&png_header(30_000, 30_000)),
            Err(BarcodeError::TooLarge)
        ));
        assert!(matches!(
            decode(&png_header(10_000, 10)),
            Err(BarcodeError::TooLarge)
        ));
        // Within the caps, the same header is an image that fails to decode.
        assert!(matches!(
            decode(&png_header(100, 100)),
            Err(BarcodeError::NotAnImage)
        ));
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert!(matches!(
            decode(b"<html>not found</html>"),
            Err(BarcodeError::NotAnImage)
        ));
        assert!(matches!(decode(b""), Err(BarcodeError::NotAnImage)));
    }

    #[test]
    fn a_plain_image_has_no_barcode() {
        let grey = GrayImage::from_pixel(400, 300, image::Luma([128]));
        let mut png = Vec::new();
        let encoded = image::DynamicImage::ImageLuma8(grey)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png);
        assert!(encoded.is_ok());
        assert!(matches!(decode(&png), Err(BarcodeError::NoBarcode)));
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

    #[test]
    fn the_default_hosts_parse() {
        assert!(parse_hosts(crate::config::DEFAULT_IMAGE_HOSTS).is_ok());
    }
}
