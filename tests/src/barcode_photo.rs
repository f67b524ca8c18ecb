//! Photo-like JPEGs of barcodes, as a reader's phone would send them: a
//! label with an EAN-13 (or a QR code, or nothing) lying on a busy
//! background, turned a few degrees, softened, noisy and JPEG-compressed.
//! Drawn from rxing's own encoders, so the tests need no binary fixtures.
//! And a loopback image host to serve them from.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::Context;
use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use image::{GrayImage, Luma, Rgb, RgbImage, codecs::jpeg::JpegEncoder, imageops};
use rxing::{BarcodeFormat, Writer, oned::OneDimensionalCodeWriter};
use tokio_util::sync::CancellationToken;

/// 《浪潮之巅》's ISBN, a book in the bundled sample catalog.
pub const ISBN: &str = "9787121139512";

/// How the photo is taken.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The photo's size in pixels.
    pub width: u32,
    pub height: u32,
    /// How far the label is turned, clockwise.
    pub angle_degrees: f32,
    /// The label's width as a share of the photo's.
    pub label_share: f32,
    /// Gaussian blur of the whole photo (focus, hand shake).
    pub blur_sigma: f32,
    /// Sensor noise added after the blur, ± this many grey levels.
    pub noise: u8,
    pub jpeg_quality: u8,
    /// Seeds the background's texture and the noise.
    pub seed: u64,
}

impl Default for Scene {
    /// A 1200×900 phone photo of a back cover, the barcode label a third of
    /// its width and turned 4°.
    fn default() -> Self {
        Self {
            width: 1200,
            height: 900,
            angle_degrees: 4.0,
            label_share: 0.34,
            blur_sigma: 1.2,
            noise: 8,
            jpeg_quality: 60,
            seed: 7,
        }
    }
}

/// Pixels per module (the narrowest bar) on the label before it is
/// photographed; the scene's scale decides the final size.
const LABEL_MODULE: u32 = 4;
const PAPER: u8 = 238;
const INK: u8 = 32;

/// A photo of an EAN-13 for `digits` (12 digits, or 13 with a valid check digit).
pub fn ean13(digits: &str, scene: &Scene) -> anyhow::Result<Vec<u8>> {
    let modules = rxing::oned::EAN13Writer
        .encode_oned(digits)
        .map_err(|e| anyhow::anyhow!("encoding EAN-13 {digits:?}: {e}"))?;
    photograph(&ean13_label(&modules), scene)
}

/// A photo of a QR code holding `text`.
pub fn qr_code(text: &str, scene: &Scene) -> anyhow::Result<Vec<u8>> {
    let matrix = rxing::qrcode::QRCodeWriter
        .encode(text, &BarcodeFormat::QR_CODE, 0, 0)
        .map_err(|e| anyhow::anyhow!("encoding a QR code: {e}"))?;
    let module = LABEL_MODULE * 2;
    let label = GrayImage::from_fn(matrix.width() * module, matrix.height() * module, |x, y| {
        Luma([if matrix.get(x / module, y / module) {
            INK
        } else {
            PAPER
        }])
    });
    photograph(&label, scene)
}

/// A photo of the same kind of label with printed text but no code at all.
pub fn no_barcode(scene: &Scene) -> anyhow::Result<Vec<u8>> {
    let (width, height) = (113 * LABEL_MODULE, 90 * LABEL_MODULE);
    let mut label = GrayImage::from_pixel(width, height, Luma([PAPER]));
    print_digits(&mut label, 6, 10 * LABEL_MODULE, scene.seed);
    print_digits(&mut label, 6, 35 * LABEL_MODULE, scene.seed + 1);
    print_digits(&mut label, 6, 60 * LABEL_MODULE, scene.seed + 2);
    photograph(&label, scene)
}

/// The label of a book's barcode: the bars (guard bars longer) between quiet
/// zones of 11 and 7 modules, the digits printed underneath.
fn ean13_label(modules: &[bool]) -> GrayImage {
    let (left, right, top) = (11, 7, 6);
    let bars = 64 * LABEL_MODULE;
    let guard = 5 * LABEL_MODULE;
    let width = (left + modules.len() as u32 + right) * LABEL_MODULE;
    let height = top * LABEL_MODULE + bars + guard + 14 * LABEL_MODULE;
    let mut label = GrayImage::from_pixel(width, height, Luma([PAPER]));
    let is_guard = |i: usize| i < 3 || (45..50).contains(&i) || i >= modules.len() - 3;
    for (i, &dark) in modules.iter().enumerate() {
        if !dark {
            continue;
        }
        let x0 = (left + i as u32) * LABEL_MODULE;
        let length = if is_guard(i) { bars + guard } else { bars };
        for x in x0..x0 + LABEL_MODULE {
            for y in top * LABEL_MODULE..top * LABEL_MODULE + length {
                label.put_pixel(x, y, Luma([INK]));
            }
        }
    }
    print_digits(
        &mut label,
        13,
        top * LABEL_MODULE + bars + guard + 2 * LABEL_MODULE,
        1,
    );
    label
}

/// `count` digit-sized blobs in a row at `top`: printed text, as far as a
/// barcode reader can tell.
fn print_digits(label: &mut GrayImage, count: u32, top: u32, seed: u64) {
    let mut rng = SplitMix(seed);
    let (w, h) = (5 * LABEL_MODULE, 9 * LABEL_MODULE);
    let gap = 2 * LABEL_MODULE;
    let start = (label.width().saturating_sub(count * (w + gap))) / 2;
    for n in 0..count {
        let x0 = start + n * (w + gap);
        let holes = rng.next() % 3;
        for y in top..(top + h).min(label.height()) {
            for x in x0..(x0 + w).min(label.width()) {
                let (dx, dy) = (x - x0, y - top);
                let stroke = dx < LABEL_MODULE
                    || dx >= w - LABEL_MODULE
                    || dy < LABEL_MODULE
                    || dy >= h - LABEL_MODULE
                    || (holes > 0 && (dy / LABEL_MODULE) == 4);
                if stroke {
                    label.put_pixel(x, y, Luma([INK]));
                }
            }
        }
    }
}

/// Lays `label` on a textured cover, turned and scaled as `scene` says, then
/// blurs, adds noise and JPEG-compresses the result.
fn photograph(label: &GrayImage, scene: &Scene) -> anyhow::Result<Vec<u8>> {
    let scale = scene.width as f32 * scene.label_share / label.width() as f32;
    let (sin, cos) = scene.angle_degrees.to_radians().sin_cos();
    let (cx, cy) = (scene.width as f32 * 0.52, scene.height as f32 * 0.55);
    let (lw, lh) = (label.width() as f32, label.height() as f32);
    let mut rng = SplitMix(scene.seed);
    let phase = (rng.next() % 628) as f32 / 100.0;
    let photo = RgbImage::from_fn(scene.width, scene.height, |x, y| {
        // Where this pixel falls on the label: undo the turn, then the scale.
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let lx = (cos * dx + sin * dy) / scale + lw / 2.0 - 0.5;
        let ly = (-sin * dx + cos * dy) / scale + lh / 2.0 - 0.5;
        match imageops::interpolate_bilinear(label, lx, ly).map(|p| f32::from(p.0[0])) {
            // The label is paper: warm white, shaded a little across the photo.
            Some(v) => {
                let shade = 1.0 - 0.12 * (x as f32 / scene.width as f32);
                let v = v * shade;
                Rgb([v, v * 0.98, v * 0.93].map(|c| c.clamp(0.0, 255.0) as u8))
            }
            None => cover(x, y, phase),
        }
    });
    let photo = imageops::blur(&photo, scene.blur_sigma);
    let noisy = RgbImage::from_fn(scene.width, scene.height, |x, y| {
        let Rgb(p) = *photo.get_pixel(x, y);
        let n = i16::from(scene.noise);
        let jitter = if n == 0 {
            0
        } else {
            (rng.next() % (2 * n as u64 + 1)) as i16 - n
        };
        Rgb(p.map(|c| (i16::from(c) + jitter).clamp(0, 255) as u8))
    });
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, scene.jpeg_quality)
        .encode_image(&noisy)
        .context("encoding the photo as JPEG")?;
    Ok(jpeg)
}

/// A book cover's print: a coloured gradient with stripes, a dark title
/// band and a few blocks, busy enough to give a binariser something to get wrong.
fn cover(x: u32, y: u32, phase: f32) -> Rgb<u8> {
    let (xf, yf) = (x as f32, y as f32);
    let stripes = ((xf * 0.045 + yf * 0.02 + phase).sin() * 0.5 + 0.5) * 60.0;
    let wave = ((yf * 0.013 - xf * 0.007).cos() * 0.5 + 0.5) * 40.0;
    let band = if (y / 60) % 5 == 1 { -70.0 } else { 0.0 };
    let block = if (x / 150 + y / 110).is_multiple_of(4) {
        45.0
    } else {
        0.0
    };
    let base = 90.0 + stripes + wave + band + block;
    Rgb([base * 1.15, base * 0.8, base * 0.55].map(|c| c.clamp(0.0, 255.0) as u8))
}

/// A tiny deterministic generator, so every run draws the same photos.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

// === impl PhotoHost ===

/// A loopback image host serving photos by path, counting every request, as
/// WeChat's CDN would serve the `PicUrl` of a reader's photo.
#[derive(Debug)]
pub struct PhotoHost {
    base_url: String,
    files: Files,
    requests: Arc<AtomicU64>,
    stop: CancellationToken,
}

/// The served files by path, shared with the server's handler.
type Files = Arc<Mutex<HashMap<String, (Vec<u8>, Delivery)>>>;

/// How a file's body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// With a `Content-Length`.
    Whole,
    /// Chunked, its size unknown until the last chunk.
    Streamed,
}

impl PhotoHost {
    pub async fn start() -> anyhow::Result<Self> {
        let files = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route("/{*path}", get(serve_file))
            .with_state((files.clone(), requests.clone()));
        let (base_url, stop) = crate::fake_upstream::serve(app).await?;
        Ok(Self {
            base_url,
            files,
            requests,
            stop,
        })
    }

    /// Serves `bytes` as a JPEG at `/{name}`.
    pub fn put(&self, name: &str, bytes: Vec<u8>, delivery: Delivery) {
        if let Ok(mut files) = self.files.lock() {
            files.insert(name.to_owned(), (bytes, delivery));
        }
    }

    /// The URL of `/{name}` on this host, e.g. `http://127.0.0.1:41234/isbn.jpg`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base_url)
    }

    /// Requests this host has received, for any path.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for PhotoHost {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve_file(
    State((files, requests)): State<(Files, Arc<AtomicU64>)>,
    Path(path): Path<String>,
) -> Response {
    requests.fetch_add(1, Ordering::SeqCst);
    let file = files.lock().ok().and_then(|f| f.get(&path).cloned());
    let Some((bytes, delivery)) = file else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = match delivery {
        Delivery::Whole => Body::from(bytes),
        Delivery::Streamed => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
            Body::from_stream(futures::stream::iter(chunks))
        }
    };
    ([(header::CONTENT_TYPE, "image/jpeg")], body).into_response()
}
