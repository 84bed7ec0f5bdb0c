//! Correlation: every call has an `x-request-id` (the caller's, or a fresh UUID), echoed in the response headers
//! (initial metadata, on errors too), carried in every log line of the call and sent upstream with the W3C
//! `traceparent` / `tracestate`: the caller's as they came, or, when the call's span is exported over OTLP, headers
//! naming that span, which itself continues the caller's trace ([`continue_trace`], [`upstream_of`]).

use std::{
    borrow::Cow,
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Span;

use crate::{observability, support::headers, upstream::Correlation};

const REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
const TRACEPARENT: HeaderName = HeaderName::from_static(headers::TRACEPARENT);
const TRACESTATE: HeaderName = HeaderName::from_static(headers::TRACESTATE);

const MAX_REQUEST_ID_LEN: usize = 128;
const MAX_TRACEPARENT_LEN: usize = 128;
const MAX_TRACESTATE_LEN: usize = 512;

/// What a call forwards upstream, read from the headers a [`RequestIdLayer`] already normalised.
pub fn from_headers(headers: &HeaderMap) -> Correlation {
    let bounded = |name: &HeaderName, max: usize| {
        headers
            .get(name)
            .filter(|v| !v.is_empty() && v.len() <= max && v.to_str().is_ok())
            .cloned()
    };
    Correlation {
        request_id: bounded(&REQUEST_ID, MAX_REQUEST_ID_LEN),
        traceparent: bounded(&TRACEPARENT, MAX_TRACEPARENT_LEN),
        tracestate: bounded(&TRACESTATE, MAX_TRACESTATE_LEN),
    }
}

/// Makes the call's `span` (not entered yet) continue the caller's trace, when the span is exported.
pub fn continue_trace(span: &Span, correlation: &Correlation) {
    fn text(value: &Option<HeaderValue>) -> Option<&str> {
        value.as_ref().and_then(|v| v.to_str().ok())
    }
    observability::continue_trace(
        span,
        text(&correlation.traceparent),
        text(&correlation.tracestate),
    );
}

/// What to send upstream from inside `span`: `correlation` with trace headers naming `span`, when it is exported;
/// otherwise `correlation` as it is (the caller's trace headers unchanged, nothing copied).
pub fn upstream_of<'a>(span: &Span, correlation: &'a Correlation) -> Cow<'a, Correlation> {
    match observability::trace_propagation(span) {
        Some((traceparent, tracestate)) => Cow::Owned(Correlation {
            request_id: correlation.request_id.clone(),
            traceparent: HeaderValue::from_str(&traceparent).ok(),
            tracestate: tracestate.and_then(|state| HeaderValue::from_str(&state).ok()),
        }),
        None => Cow::Borrowed(correlation),
    }
}

fn acceptable_request_id(value: &HeaderValue) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

/// Gives every request an acceptable `x-request-id` and copies it onto the response.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// See [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestIdService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let id = ensure_request_id(request.headers_mut());
        RequestIdFuture {
            inner: self.inner.call(request),
            id: Some(id),
        }
    }
}

/// The request's `x-request-id` when acceptable, or a fresh one put in its place. [`RequestIdLayer`] calls it, and
/// so does a protocol translated in front of it (Connect), so that its own refusals and the call behind it carry
/// the same id.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    match headers.get(&REQUEST_ID) {
        Some(id) if acceptable_request_id(id) => id.clone(),
        _ => {
            let fresh = fresh_request_id();
            headers.insert(REQUEST_ID, fresh.clone());
            fresh
        }
    }
}

/// A fresh UUID as a header value: one allocation, shared (not copied) by the request and the response.
fn fresh_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("unavailable"))
}

pin_project! {
    /// The inner service's response with the call's `x-request-id` added.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_request_id_is_a_uuid() {
        let id = fresh_request_id();
        let id = id.to_str().unwrap();
        assert!(acceptable_request_id(&HeaderValue::from_str(id).unwrap()));
        assert_eq!(
            uuid::Uuid::parse_str(id).unwrap().get_version_num(),
            4,
            "{id}"
        );
        assert_ne!(id, fresh_request_id().to_str().unwrap());
    }

    #[test]
    fn only_sane_request_ids_are_kept() {
        assert!(acceptable_request_id(&HeaderValue::from_static("abc-123")));
        assert!(!acceptable_request_id(&HeaderValue::from_static("")));
        assert!(!acceptable_request_id(&HeaderValue::from_static(
            "has space"
        )));
        assert!(!acceptable_request_id(
            &HeaderValue::from_str(&"x".repeat(129)).unwrap()
        ));
    }

    #[test]
    fn trace_headers_are_forwarded_only_within_bounds() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert(
            TRACESTATE,
            HeaderValue::from_str(&"k=v,".repeat(200)).unwrap(),
        );
        let c = from_headers(&headers);
        assert!(c.traceparent.is_some());
        assert!(
            c.tracestate.is_none(),
            "an oversized tracestate is dropped, not forwarded"
        );
    }
}
