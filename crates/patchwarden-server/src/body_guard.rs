//! What a request body may cost the server before anything else looks at it: a body announced
//! over the size limit is answered 413 at once, before the credential is looked at and before any
//! of it is read, and the connection closed (what the client still sends is dropped below TLS by
//! the lingering close, `lingering.rs`, so that it reads the answer rather than a reset); every
//! other body must arrive whole within the body timeout
//! ([`DeadlineBody`]), or the request is answered 408 and the connection closed. Before this a
//! refused body was drained into memory (16 unauthenticated connections took the server from
//! 279 MB to 2.2 GB) and a body sent a byte every few seconds held its connection for good.
//!
//! The connection cap and the header timeout are the accept loop's (`server.rs`). Before the
//! lingering close, a refused body was read and dropped up to 64 MiB before the 413 went out, so
//! 16 clients sending 200 MB waited up to 2.2 s for their answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The error a body gives once its deadline passed (found again by [`timed_out`]).
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyDeadline(Duration);

/// Whether an error (or one of its causes) is a passed body deadline.
pub fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<BodyDeadline>().is_some() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A request body that fails once `deadline` passes (from the request's start), however slowly
/// its bytes trickle in.
pub struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyDeadline(self.limit)))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The middleware: 413 for an announced over-limit body, a deadline on every other.
pub async fn guard_body(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let limit = state.config.max_body_bytes;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = announced.filter(|&n| n > limit as u64) {
        // Answered at once, the body never read here: hyper stops reading it, writes the answer
        // and closes; the closing connection then drops what the client still sends, unread and
        // undecrypted, so that a client still sending reads this answer (`lingering.rs`).
        drop(request);
        return closing(
            ApiError::PayloadTooLarge(format!(
                "the request body ({n} bytes) is larger than the server accepts ({limit} bytes, max_body_bytes)"
            ))
            .into_response(),
        );
    }
    let limit = state.config.body_timeout;
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        })
    });
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::REQUEST_TIMEOUT {
        closing(response)
    } else {
        response
    }
}

/// The response with `Connection: close` (hyper then closes the connection after it).
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
