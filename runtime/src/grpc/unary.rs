//! A unary call between doumi's own services, made directly: the message
//! framed once (a flag byte and its length), sent through the same tracing,
//! metrics and replica choice as every call, and the answer read off the
//! stream as it arrives.
//!
//! tonic's generated client wraps the same exchange in a streaming encoder,
//! a boxed body, a streaming decoder and metadata conversions, in a call
//! future of about 2.4 KB that every hop copied into its box; for one message
//! each way, that is all machinery. The generated clients stay for everyone
//! else (the catalog's public API, tests, tools): the wire is the same.

use std::time::Duration;

use doumi_proto::Unary;
use tonic::{Code, Status};
use tracing::Instrument;

use super::{
    Channel,
    message::{CONTENT_TYPE, frame, one_message},
};
use crate::deadline::Deadline;

static TE: http::HeaderValue = http::HeaderValue::from_static("trailers");

impl Channel {
    /// Calls `method` with `request` on the next replica, the call cut off
    /// after `deadline` (which travels with it as `grpc-timeout`, for the
    /// callee to plan with). Fails as tonic's clients do: with the callee's
    /// status, UNAVAILABLE when no replica could be reached, INTERNAL for an
    /// answer that breaks the protocol.
    pub async fn unary<Request, Answer>(
        &self,
        method: &Unary<Request, Answer>,
        request: &Request,
        deadline: Duration,
    ) -> Result<Answer, Status>
    where
        Request: prost::Message,
        Answer: prost::Message + Default,
    {
        let (mut parts, ()) = http::Request::post(method.path)
            .body(())
            .map_err(|error| {
                Status::internal(format!("{}: not a method path: {error}", method.path))
            })?
            .into_parts();
        parts
            .headers
            .insert(http::header::CONTENT_TYPE, CONTENT_TYPE.clone());
        parts.headers.insert(http::header::TE, TE.clone());
        let call = self.start(method.path, &mut parts.headers);
        let exchange = async {
            let message = frame(request)?;
            let answer = self
                .inner
                .send(parts, message, Deadline::after(deadline))
                .await
                .map_err(Status::from_error)?;
            read_answer(answer).await
        };
        let answered = match tokio::time::timeout(deadline, exchange)
            .instrument(call.span.clone())
            .await
        {
            Ok(answered) => answered,
            Err(_elapsed) => Err(Status::deadline_exceeded(format!(
                "{} did not answer in time",
                method.path
            ))),
        };
        call.end(answered.as_ref().map_or_else(Status::code, |_| Code::Ok));
        answered
    }
}

/// The answer's one message, once its status says the call succeeded.
async fn read_answer<Answer: prost::Message + Default>(
    answer: http::Response<h2::RecvStream>,
) -> Result<Answer, Status> {
    let (head, mut stream) = answer.into_parts();
    // A failure comes trailers-only: the status in the headers, no message.
    if let Some(status) = Status::from_header_map(&head.headers) {
        return Err(match status.code() {
            Code::Ok => Status::internal("the answer carried no message"),
            _ => status,
        });
    }
    if head.status != http::StatusCode::OK {
        return Err(from_http(head.status));
    }
    let chunks = futures::stream::poll_fn(|cx| {
        let chunk = std::task::ready!(stream.poll_data(cx));
        std::task::Poll::Ready(chunk.map(|data| {
            let data = data.map_err(|error| Status::from_error(Box::new(error)))?;
            // Given back to the flow-control windows; fails only when the
            // stream is gone, which the next read reports.
            let _ = stream.flow_control().release_capacity(data.len());
            Ok(data)
        }))
    });
    let message = one_message("the answer", chunks).await?;
    // The rest of the stream is its trailers; a unary call has no more data.
    while let Some(more) = stream.data().await {
        let more = more.map_err(|error| Status::from_error(Box::new(error)))?;
        if !more.is_empty() {
            return Err(Status::internal(
                "a unary call answered with more than one message",
            ));
        }
    }
    let trailers = stream
        .trailers()
        .await
        .map_err(|error| Status::from_error(Box::new(error)))?;
    match trailers.as_ref().and_then(Status::from_header_map) {
        Some(status) if status.code() == Code::Ok => {}
        Some(status) => return Err(status),
        None => return Err(Status::internal("the answer ended without its status")),
    }
    Answer::decode(message)
        .map_err(|error| Status::internal(format!("the answer did not decode: {error}")))
}

/// The status of an answer that is not gRPC's (a proxy's error page), as
/// gRPC maps HTTP statuses.
fn from_http(status: http::StatusCode) -> Status {
    use http::StatusCode as Http;
    let code = match status {
        Http::BAD_REQUEST => Code::Internal,
        Http::UNAUTHORIZED => Code::Unauthenticated,
        Http::FORBIDDEN => Code::PermissionDenied,
        Http::NOT_FOUND => Code::Unimplemented,
        Http::TOO_MANY_REQUESTS
        | Http::BAD_GATEWAY
        | Http::SERVICE_UNAVAILABLE
        | Http::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("the answer was HTTP {status}, not gRPC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse, health_check_response};

    use crate::grpc::{DialSettings, Target};

    const CHECK: Unary<HealthCheckRequest, HealthCheckResponse> =
        Unary::new("/grpc.health.v1.Health/Check");
    const NOWHERE: Unary<HealthCheckRequest, HealthCheckResponse> =
        Unary::new("/grpc.health.v1.Health/Nowhere");

    /// A channel to a health server that knows one service, `doumi.test`.
    async fn health_server() -> Channel {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("doumi.test", tonic_health::ServingStatus::Serving)
            .await;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        super::super::channel(&Target::Fixed(vec![addr]), DialSettings::DEFAULT)
    }

    #[tokio::test]
    async fn a_call_gets_its_answer_or_the_callees_status() {
        let channel = health_server().await;
        let deadline = Duration::from_secs(5);
        let asked = |service: &str| HealthCheckRequest {
            service: service.to_owned(),
        };
        let answer = channel
            .unary(&CHECK, &asked("doumi.test"), deadline)
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            health_check_response::ServingStatus::Serving
        );
        let unknown = channel
            .unary(&CHECK, &asked("doumi.unknown"), deadline)
            .await;
        assert_eq!(unknown.unwrap_err().code(), Code::NotFound);
        let nowhere = channel
            .unary(&NOWHERE, &asked("doumi.test"), deadline)
            .await;
        assert_eq!(nowhere.unwrap_err().code(), Code::Unimplemented);
    }

    #[test]
    fn answers_that_are_not_grpc_get_grpcs_status() {
        assert_eq!(
            from_http(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
    }
}
