//! A doumi service's unary methods answered directly: the request read
//! whole (bounded), decoded, handed to the service's own method, and the
//! answer framed once, its status in the trailers.
//!
//! The mirror of [`super::unary`]: tonic's generated server wraps the same
//! exchange in a streaming decoder, a streaming encoder and a boxed body for
//! one message each way. The service's contract is still the generated trait
//! (`Bot`, `BookCatalog`), so each method keeps its types and tonic's
//! `Request`/`Response`, metadata included.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::{TryStreamExt, future::BoxFuture};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tonic::{Status, body::Body, metadata::MetadataMap};

use super::message::{CONTENT_TYPE, frame, one_message};

/// A call as it arrives.
pub type Call = http::Request<Incoming>;
/// The answer a call gets.
pub type Answer = http::Response<Body>;
/// An answer on its way: boxed, as each service answers its calls its own way.
pub type Answering = BoxFuture<'static, Answer>;

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
static OK: http::HeaderValue = http::HeaderValue::from_static("0");

/// A gRPC service doumi serves, each of its methods answered by
/// [`answer`].
pub trait Answers: Send + Sync + 'static {
    /// The service's full name, `package.Service`, as paths carry it.
    const NAME: &'static str;

    /// Answers `call` (its path names one of this service's methods, or
    /// none: then [`unimplemented`]).
    fn answer(self: Arc<Self>, call: Call) -> Answering;
}

/// Answers a unary call: its one message decoded as `Request` and handed
/// to `method` with the call's metadata; the method's answer, or its status
/// as a trailers-only answer.
pub async fn answer<Request, Reply, Method, Answered>(call: Call, method: Method) -> Answer
where
    Request: prost::Message + Default,
    Reply: prost::Message,
    Method: FnOnce(tonic::Request<Request>) -> Answered,
    Answered: Future<Output = Result<tonic::Response<Reply>, Status>>,
{
    let (parts, body) = call.into_parts();
    let request = match read_request(body).await {
        Ok(request) => request,
        Err(status) => return status.into_http(),
    };
    let request = tonic::Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        request,
    );
    let answered = method(request)
        .await
        .and_then(|response| framed(response.into_parts()));
    match answered {
        Ok(answer) => answer,
        Err(status) => status.into_http(),
    }
}

/// What a path that names none of a service's methods gets.
pub fn unimplemented() -> Answer {
    Status::unimplemented("no such method").into_http()
}

/// The request's one message.
async fn read_request<Request: prost::Message + Default>(
    body: Incoming,
) -> Result<Request, Status> {
    let chunks = body
        .into_data_stream()
        .map_err(|error| Status::from_error(Box::new(error)));
    let message = one_message("the request", chunks).await?;
    Request::decode(message)
        .map_err(|error| Status::internal(format!("the request did not decode: {error}")))
}

/// The answer to a call that succeeded: its metadata as headers, its
/// message, then OK in the trailers.
fn framed<Reply: prost::Message>(
    (metadata, reply, _): (MetadataMap, Reply, http::Extensions),
) -> Result<Answer, Status> {
    let message = frame(&reply)?;
    let mut answer = http::Response::new(Body::new(OneMessage {
        message: Some(message),
        trailers: true,
    }));
    let headers = answer.headers_mut();
    *headers = metadata.into_headers();
    headers.insert(http::header::CONTENT_TYPE, CONTENT_TYPE.clone());
    Ok(answer)
}

/// A unary answer's body: one message, then the OK status.
struct OneMessage {
    message: Option<Bytes>,
    trailers: bool,
}

impl http_body::Body for OneMessage {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        if !std::mem::take(&mut self.trailers) {
            return Poll::Ready(None);
        }
        let mut trailers = http::HeaderMap::with_capacity(1);
        trailers.insert(GRPC_STATUS.clone(), OK.clone());
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && !self.trailers
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, time::Duration};

    use doumi_proto::Unary;
    use tonic::Code;
    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

    use bytes::BytesMut;

    use super::*;
    use crate::grpc::{DialSettings, HealthReporter, Target, link::Link, serve};

    const FIND: Unary<HealthCheckRequest, HealthCheckResponse> = Unary::new("/test.Shelf/Find");
    const LOSE: Unary<HealthCheckRequest, HealthCheckResponse> = Unary::new("/test.Shelf/Lose");

    /// Finds one book, and says whether the caller's deadline came along.
    struct Shelf;

    impl Answers for Shelf {
        const NAME: &'static str = "test.Shelf";

        fn answer(self: Arc<Self>, call: Call) -> Answering {
            Box::pin(async move {
                if call.uri().path() != FIND.path {
                    return unimplemented();
                }
                answer(
                    call,
                    |request: tonic::Request<HealthCheckRequest>| async move {
                        if request.metadata().get("grpc-timeout").is_none() {
                            return Err(Status::failed_precondition("no deadline came"));
                        }
                        match request.into_inner().service.as_str() {
                            "浪潮之巅" => {
                                Ok(tonic::Response::new(HealthCheckResponse { status: 1 }))
                            }
                            other => Err(Status::not_found(format!("{other} is not here"))),
                        }
                    },
                )
                .await
            })
        }
    }

    /// A server of [`Shelf`], for the life of the test.
    async fn shelf() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            Arc::new(Shelf),
            &[],
            listener,
            std::future::pending(),
            HealthReporter::new(),
        ));
        addr
    }

    fn asking(service: &str) -> HealthCheckRequest {
        HealthCheckRequest {
            service: service.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_method_answers_with_its_message_or_its_status() {
        let channel =
            crate::grpc::channel(&Target::Fixed(vec![shelf().await]), DialSettings::DEFAULT);
        let deadline = Duration::from_secs(5);
        let found = channel.unary(&FIND, &asking("浪潮之巅"), deadline).await;
        assert_eq!(found.unwrap().status, 1);
        let missing = channel
            .unary(&FIND, &asking("数学之美"), deadline)
            .await
            .unwrap_err();
        assert_eq!(
            (missing.code(), missing.message()),
            (Code::NotFound, "数学之美 is not here")
        );
        let lost = channel.unary(&LOSE, &asking("浪潮之巅"), deadline).await;
        assert_eq!(lost.unwrap_err().code(), Code::Unimplemented);
    }

    #[tokio::test]
    async fn a_request_that_breaks_the_protocol_is_refused() {
        let link = Link::new(shelf().await);
        let one = frame(&asking("浪潮之巅")).unwrap();
        let mut compressed = BytesMut::from(&one[..]);
        compressed[0] = 1;
        let mut two = BytesMut::from(&one[..]);
        two.extend_from_slice(&one);
        for (body, code) in [
            (compressed.freeze(), Code::Internal),
            (two.freeze(), Code::Internal),
            (
                Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]),
                Code::ResourceExhausted,
            ),
            (Bytes::from_static(&[0, 0, 0]), Code::Internal),
        ] {
            let path = http::uri::PathAndQuery::from_static("/test.Shelf/Find");
            let request = http::Request::post(link.uri(Some(&path)))
                .header("grpc-timeout", "5S")
                .body(())
                .unwrap();
            let answer = link.send(request, body).await.unwrap();
            let status = Status::from_header_map(answer.headers()).unwrap();
            assert_eq!(status.code(), code, "{}", status.message());
        }
    }
}
