//! gRPC's messages on the wire, the same both ways: a compression flag and a
//! 4-byte length before each message's bytes.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use tonic::Status;

/// The largest message read, as tonic allows by default: past it the call
/// fails rather than buffer what a broken or hostile peer sends.
pub(super) const MAX_MESSAGE: usize = 4 << 20;
/// A message's prefix on the wire: a compression flag and a 4-byte length.
const PREFIX: usize = 5;

/// What every call and every answer says it carries.
pub(super) static CONTENT_TYPE: http::HeaderValue =
    http::HeaderValue::from_static("application/grpc");

/// `message` as it goes on the wire: uncompressed, after its length.
pub(super) fn frame(message: &impl prost::Message) -> Result<Bytes, Status> {
    let length = message.encoded_len();
    let prefix = u32::try_from(length)
        .map_err(|_| Status::resource_exhausted("the message is too large to send"))?;
    let mut framed = BytesMut::with_capacity(PREFIX + length);
    framed.put_u8(0);
    framed.put_u32(prefix);
    message
        .encode(&mut framed)
        .map_err(|error| Status::internal(format!("the message did not encode: {error}")))?;
    Ok(framed.freeze())
}

/// A unary call's one message, read off its data as it arrives; `what`
/// names it in the errors ("the answer", "the request"). Refused when the
/// data ends before it, or holds more than one message.
pub(super) async fn one_message(
    what: &str,
    mut chunks: impl Stream<Item = Result<Bytes, Status>> + Unpin,
) -> Result<Bytes, Status> {
    let mut received = BytesMut::new();
    loop {
        if let Some(message) = whole_message(&mut received, what)? {
            if !received.is_empty() {
                return Err(Status::internal(format!(
                    "{what} carried more than one message"
                )));
            }
            return Ok(message);
        }
        match chunks.next().await {
            Some(chunk) => received.extend_from_slice(&chunk?),
            None => {
                return Err(Status::internal(format!("{what} ended before its message")));
            }
        }
    }
}

/// The first message, once `received` holds all of it. Neither end of a
/// doumi hop asks for compression, so a compressed message breaks the
/// protocol.
fn whole_message(received: &mut BytesMut, what: &str) -> Result<Option<Bytes>, Status> {
    let Some(prefix) = received.get(..PREFIX) else {
        return Ok(None);
    };
    if prefix[0] != 0 {
        return Err(Status::internal(format!(
            "{what} is compressed, which was not asked for"
        )));
    }
    let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if length > MAX_MESSAGE {
        return Err(Status::resource_exhausted(format!(
            "{what} is {length} bytes, more than the {MAX_MESSAGE} read"
        )));
    }
    if received.len() < PREFIX + length {
        return Ok(None);
    }
    let mut message = received.split_to(PREFIX + length);
    Ok(Some(message.split_off(PREFIX).freeze()))
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tonic::Code;

    use super::*;

    #[test]
    fn a_message_is_read_whole_however_it_arrives() {
        let framed = frame(&"浪潮之巅".to_owned()).unwrap();
        let mut received = BytesMut::new();
        for byte in framed.iter() {
            assert_eq!(whole_message(&mut received, "it").unwrap(), None);
            received.put_u8(*byte);
        }
        let message = whole_message(&mut received, "it").unwrap().unwrap();
        assert_eq!(String::decode(message).unwrap(), "浪潮之巅");
        assert!(received.is_empty());
    }

    #[test]
    fn messages_that_break_the_protocol_are_refused() {
        let mut compressed = BytesMut::from(&[1u8, 0, 0, 0, 0][..]);
        assert_eq!(
            whole_message(&mut compressed, "it").unwrap_err().code(),
            Code::Internal
        );
        let mut huge = BytesMut::from(&[0u8, 0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            whole_message(&mut huge, "it").unwrap_err().code(),
            Code::ResourceExhausted
        );
    }
}
