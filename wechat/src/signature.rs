//! WeChat's request signatures: SHA-1 over the sorted parts, compared in
//! constant time so the comparison leaks nothing about the expected value.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// `sha1(sort([parts...]).join(""))` as lowercase hex. URL verification and
/// plaintext messages sign `[token, timestamp, nonce]`; safe mode adds the
/// `Encrypt` payload.
pub fn compute(parts: &[&str]) -> String {
    hex::encode(digest(parts))
}

/// True when `given` is the signature of `parts`. Hex case is ignored.
pub fn verify(given: &str, parts: &[&str]) -> bool {
    // Every message is checked: compared as bytes on the stack, with no
    // hex string or lowercased copy made for it.
    let Ok(given) = <[u8; 40]>::try_from(given.trim().as_bytes()) else {
        return false;
    };
    let mut expected = [0u8; 40];
    if hex::encode_to_slice(digest(parts), &mut expected).is_err() {
        return false;
    }
    bool::from(given.map(|b| b.to_ascii_lowercase()).ct_eq(&expected))
}

fn digest(parts: &[&str]) -> [u8; 20] {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_vectors() {
        // silenceper/wechat: Signature("a","b","c") = sha1("abc").
        assert_eq!(
            compute(&["c", "a", "b"]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // Tencent's sample: the plain signature for spamtest / 1409735669 / 1320562132.
        assert!(verify(
            "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a",
            &["spamtest", "1409735669", "1320562132"]
        ));
        // wechatpy check_signature, and the one-character-off case that must fail.
        assert!(verify(
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff",
            &["test", "1410685589", "test"]
        ));
        assert!(!verify(
            "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe",
            &["test", "1410685589", "test"]
        ));
    }

    #[test]
    fn wrong_length_and_empty_never_verify() {
        assert!(!verify("", &["a", "b", "c"]));
        assert!(!verify("a9993e36", &["a", "b", "c"]));
        assert!(verify(
            "A9993E364706816ABA3E25717850C26C9CD0D89D",
            &["a", "b", "c"]
        ));
    }
}
