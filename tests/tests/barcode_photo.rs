//! A reader sends a photo of a book's barcode: the bot fetches it from an
//! allowed image host and reads the ISBN, or says why not. The photos are
//! drawn by `doumi_tests::barcode_photo` (turned, blurred, noisy, JPEG) and
//! served from a loopback host standing in for WeChat's image CDN.

use doumi_bot::{BarcodeError, BarcodeReader, MAX_IMAGE_BYTES};
use doumi_tests::{
    StackOptions, TestStack,
    barcode_photo::{self, Delivery, ISBN, PhotoHost, Scene},
    wechat::WechatClient,
};
use doumi_wechat::peer;
use tokio::{io::AsyncWriteExt, net::TcpListener};

/// A reader allowed to fetch from the loopback host, as the tests' stand-in
/// for `DOUMI_BOT_IMAGE_HOSTS=mmbiz.qpic.cn`.
fn reader() -> BarcodeReader {
    match BarcodeReader::new(vec!["127.0.0.1".to_owned()]) {
        Ok(reader) => reader,
        Err(e) => panic!("building the barcode reader: {e}"),
    }
}

/// Serves `photo` and reads it back through the bot's reader.
async fn read_photo(photo: anyhow::Result<Vec<u8>>) -> Result<String, BarcodeError> {
    let host = PhotoHost::start().await.expect("starting the photo host");
    host.put(
        "photo.jpg",
        photo.expect("drawing the photo"),
        Delivery::Whole,
    );
    let result = reader().read(&host.url("photo.jpg")).await;
    assert_eq!(host.requests(), 1, "the photo is fetched once");
    result
}

#[tokio::test]
async fn reads_the_isbn_from_a_phone_photo() {
    let read = read_photo(barcode_photo::ean13(ISBN, &Scene::default())).await;
    assert_eq!(read.ok().as_deref(), Some(ISBN));
}

#[tokio::test]
async fn reads_it_turned_either_way() {
    for angle_degrees in [-8.0, -5.0, -2.0, 6.0, 8.0] {
        let scene = Scene {
            angle_degrees,
            seed: angle_degrees as u64,
            ..Scene::default()
        };
        let read = read_photo(barcode_photo::ean13(ISBN, &scene)).await;
        assert_eq!(
            read.as_deref().ok(),
            Some(ISBN),
            "turned {angle_degrees}°: {read:?}"
        );
    }
}

#[tokio::test]
async fn reads_it_from_a_small_and_a_large_photo() {
    let small = Scene {
        width: 640,
        height: 480,
        label_share: 0.55,
        blur_sigma: 1.0,
        angle_degrees: -3.0,
        ..Scene::default()
    };
    let large = Scene {
        width: 2400,
        height: 1800,
        label_share: 0.3,
        blur_sigma: 1.5,
        angle_degrees: 5.0,
        ..Scene::default()
    };
    for scene in [small, large] {
        let read = read_photo(barcode_photo::ean13(ISBN, &scene)).await;
        assert_eq!(
            read.as_deref().ok(),
            Some(ISBN),
            "{}×{}: {read:?}",
            scene.width,
            scene.height
        );
    }
}

#[tokio::test]
async fn reads_a_barcode_photographed_sideways() {
    let scene = Scene {
        angle_degrees: 93.0,
        ..Scene::default()
    };
    let read = read_photo(barcode_photo::ean13(ISBN, &scene)).await;
    assert_eq!(read.ok().as_deref(), Some(ISBN));
}

/// Rows and columns both cut a diagonal barcode short: only the reader's
/// turned pass sees it whole.
#[tokio::test]
async fn reads_a_barcode_held_diagonally() {
    let scene = Scene {
        angle_degrees: 45.0,
        ..Scene::default()
    };
    let read = read_photo(barcode_photo::ean13(ISBN, &scene)).await;
    assert_eq!(read.ok().as_deref(), Some(ISBN));
}

/// A close-up from a poor camera: wide bars, grainy, heavily compressed.
/// Noise breaks the bars at full size; the reader's half-size pass averages it out.
#[tokio::test]
async fn reads_a_grainy_close_up() {
    let scene = Scene {
        width: 2000,
        height: 1500,
        label_share: 0.8,
        blur_sigma: 0.6,
        noise: 60,
        jpeg_quality: 25,
        ..Scene::default()
    };
    let read = read_photo(barcode_photo::ean13(ISBN, &scene)).await;
    assert_eq!(read.ok().as_deref(), Some(ISBN));
}

#[tokio::test]
async fn a_photo_without_a_barcode_has_none() {
    let read = read_photo(barcode_photo::no_barcode(&Scene::default())).await;
    assert!(matches!(read, Err(BarcodeError::NoBarcode)), "{read:?}");
}

#[tokio::test]
async fn a_qr_code_is_not_an_isbn() {
    let photo = barcode_photo::qr_code("https://example.com/a-book", &Scene::default());
    let read = read_photo(photo).await;
    assert!(
        matches!(&read, Err(BarcodeError::NotAnIsbn(kind)) if kind == "QR code"),
        "{read:?}"
    );
}

#[tokio::test]
async fn a_grocery_barcode_is_not_an_isbn() {
    // 690–699: goods registered in China; the check digit is the writer's.
    let read = read_photo(barcode_photo::ean13("690123456789", &Scene::default())).await;
    assert!(
        matches!(&read, Err(BarcodeError::NotAnIsbn(kind)) if kind == "EAN-13"),
        "{read:?}"
    );
}

#[tokio::test]
async fn a_host_outside_the_list_is_never_asked() {
    let host = PhotoHost::start().await.expect("starting the photo host");
    host.put(
        "photo.jpg",
        barcode_photo::ean13(ISBN, &Scene::default()).expect("drawing the photo"),
        Delivery::Whole,
    );
    let on_localhost = host.url("photo.jpg").replace("127.0.0.1", "localhost");

    let read = reader().read(&on_localhost).await;

    assert!(
        matches!(read, Err(BarcodeError::HostNotAllowed)),
        "{read:?}"
    );
    assert_eq!(host.requests(), 0, "no request reached the host");
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let host = PhotoHost::start().await.expect("starting the photo host");
    let huge = vec![0xFF; 10 * 1024 * 1024];
    assert!(huge.len() > MAX_IMAGE_BYTES);
    host.put("announced.jpg", huge.clone(), Delivery::Whole);
    host.put("streamed.jpg", huge, Delivery::Streamed);

    for name in ["announced.jpg", "streamed.jpg"] {
        let read = reader().read(&host.url(name)).await;
        assert!(
            matches!(read, Err(BarcodeError::TooLarge)),
            "{name}: {read:?}"
        );
    }
    assert_eq!(host.requests(), 2);
}

#[tokio::test]
async fn what_is_not_a_photo_is_refused() {
    let host = PhotoHost::start().await.expect("starting the photo host");
    host.put("page.jpg", b"<html>hello</html>".to_vec(), Delivery::Whole);

    let not_an_image = reader().read(&host.url("page.jpg")).await;
    let missing = reader().read(&host.url("missing.jpg")).await;

    assert!(
        matches!(not_an_image, Err(BarcodeError::NotAnImage)),
        "{not_an_image:?}"
    );
    assert!(
        matches!(missing, Err(BarcodeError::Fetch(_))),
        "{missing:?}"
    );
}

/// A host that accepts connections and then says nothing, or sends the
/// headers and part of the body and then nothing: the fetch's timeout ends both.
#[tokio::test]
async fn a_host_that_stalls_ends_in_a_fetch_error() {
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let silent_url = format!("http://{}/photo.jpg", silent.local_addr().expect("address"));
    let trickle = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let trickle_url = format!(
        "http://{}/photo.jpg",
        trickle.local_addr().expect("address")
    );
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let _trickle = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = trickle.accept().await {
            let head =
                "HTTP/1.1 200 OK\r\ncontent-type: image/jpeg\r\ncontent-length: 100000\r\n\r\n";
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&[0xFF, 0xD8, 0xFF]).await;
            held.push(socket);
        }
    });
    let reader = reader();

    let (silent, trickle) = tokio::join!(reader.read(&silent_url), reader.read(&trickle_url));

    assert!(matches!(silent, Err(BarcodeError::Fetch(_))), "{silent:?}");
    assert!(
        matches!(trickle, Err(BarcodeError::Fetch(_))),
        "{trickle:?}"
    );
}

/// What the reader sees for a photo message with `pic_url`.
async fn photo_message(stack: &TestStack, pic_url: &str) -> String {
    let xml = peer::image_message(
        doumi_tests::wechat::READER,
        doumi_tests::wechat::ACCOUNT,
        WechatClient::now(),
        WechatClient::next_msg_id(),
        pic_url,
    );
    stack.wechat().post_signed(&xml).await.text()
}

#[tokio::test]
async fn a_photo_sent_to_the_account_becomes_the_book() {
    let host = PhotoHost::start().await.expect("starting the photo host");
    host.put(
        "back-cover.jpg",
        barcode_photo::ean13(ISBN, &Scene::default()).expect("drawing the photo"),
        Delivery::Whole,
    );
    host.put(
        "cat.jpg",
        barcode_photo::no_barcode(&Scene::default()).expect("drawing the photo"),
        Delivery::Whole,
    );
    let stack = TestStack::start(StackOptions {
        image_hosts: Some(vec!["127.0.0.1".to_owned()]),
        ..StackOptions::default()
    })
    .await
    .expect("stack");

    let book = photo_message(&stack, &host.url("back-cover.jpg")).await;
    assert!(book.contains("《浪潮之巅》"), "{book}");
    let nothing = photo_message(&stack, &host.url("cat.jpg")).await;
    assert!(nothing.contains("没有在照片里找到条形码"), "{nothing}");
    assert_eq!(host.requests(), 2);

    // The same photo on a host outside DOUMI_BOT_IMAGE_HOSTS is never fetched.
    let elsewhere = host.url("back-cover.jpg").replace("127.0.0.1", "localhost");
    let refused = photo_message(&stack, &elsewhere).await;
    assert!(refused.contains("这张图片豆米读不了"), "{refused}");
    assert_eq!(
        host.requests(),
        2,
        "nothing was requested from a host not allowed"
    );
}
