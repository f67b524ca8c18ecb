//! The ISBN in an encoded photo: its size checked from the header, decoded
//! to greyscale, scanned at a working size and turned, the barcode read.
//! Blocking and CPU-bound: the reader runs it off the async threads.

use std::{borrow::Cow, io::Cursor};

use image::{GrayImage, ImageError, ImageReader, Limits, imageops};
use rxing::{BarcodeFormat, DecodeHints, RXingResult};

use super::error::BarcodeError;

/// Pixels a photo may have (a 12-megapixel phone photo, with some margin),
/// checked from the header before anything is decoded, so a small file that
/// claims to be huge (a decompression bomb) is refused without allocating.
pub const MAX_IMAGE_PIXELS: u64 = 13_000_000;
/// Longest side a photo may have, whatever its area.
pub const MAX_IMAGE_SIDE: u32 = 8_192;

/// Memory the image decoder may allocate: the largest allowed photo as 16-bit
/// RGBA, the widest format the decoders produce.
const MAX_DECODE_ALLOC: u64 = MAX_IMAGE_PIXELS * 8;
/// Photos are scanned at most this large: more pixels only add sensor noise
/// to the bars and time to every pass.
const WORKING_SIDE: u32 = 2_048;
/// The half-size pass is skipped when it would leave the longest side
/// shorter than this: too few pixels per bar would be left to read.
const MIN_HALF_SIDE: u32 = 400;

// === decoding ===

/// The ISBN in an encoded image. Blocking and CPU-bound: call it off the
/// async threads.
pub(super) fn decode(bytes: &[u8]) -> Result<String, BarcodeError> {
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
    GrayImage::from_fn(out_w, out_h, |x, y| {
        // The source point that lands on (x, y): the inverse rotation.
        let (dx, dy) = (x as f32 + 0.5 - ox, y as f32 + 0.5 - oy);
        let sx = cos * dx + sin * dy + cx - 0.5;
        let sy = -sin * dx + cos * dy + cy - 0.5;
        imageops::interpolate_bilinear(image, sx, sy).unwrap_or(image::Luma([255]))
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
}
