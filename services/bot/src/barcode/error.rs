//! Why no ISBN came out of a photo.

use reqwest::StatusCode;

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
