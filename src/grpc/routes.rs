//! The gRPC port's router: one look at the path's service name sends a request to the session service (after
//! caller authentication), health or reflection, and answers anything else `UNIMPLEMENTED`.
//!
//! tonic's own `Routes` does the same through an axum router, which costs every call a boxed clone of the route's
//! service, a boxed body and URL-parameter extensions; with tonic's interceptor wrapper (replaced by
//! [`CallerCheck`] here) that was 12 of the 104 allocations of a call (BENCHMARKS.md, "Performance, round two").
//! tonic's generated servers are always ready and take each call as it comes, so the router needs no clones.

use std::{
    convert::Infallible,
    future::{ready, Future, Ready},
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tonic::{body::Body, codegen::BoxFuture, server::NamedService, Status};
use tower::Service;

use super::auth::CallerCheck;

/// Routes gRPC calls by service name. `S` is the session service; `H`, `R1` and `R2` are health and the two
/// reflection versions (tonic's generated servers, whose futures are already boxed).
#[derive(Debug, Clone)]
pub struct Routes<S, H, R1, R2> {
    sessions: S,
    callers: CallerCheck,
    health: H,
    reflection: R1,
    reflection_alpha: R2,
}

impl<S, H, R1, R2> Routes<S, H, R1, R2> {
    /// The session service behind `callers`, health and reflection.
    pub fn new(
        sessions: S,
        callers: CallerCheck,
        health: H,
        reflection: R1,
        reflection_alpha: R2,
    ) -> Self {
        Self {
            sessions,
            callers,
            health,
            reflection,
            reflection_alpha,
        }
    }
}

/// The service name of a gRPC path, `/{service}/{method}`; `None` when the path has another shape.
fn service_name(path: &str) -> Option<&str> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!method.is_empty()).then_some(service)
}

type Answer = Result<Response<Body>, Infallible>;

/// What tonic generates for a service: a named server taking requests with body `B`, whose boxed future always
/// answers.
pub trait GeneratedServer<B>:
    Service<
        Request<B>,
        Response = Response<Body>,
        Error = Infallible,
        Future = BoxFuture<Response<Body>, Infallible>,
    > + NamedService
{
}

impl<B, T> GeneratedServer<B> for T where
    T: Service<
            Request<B>,
            Response = Response<Body>,
            Error = Infallible,
            Future = BoxFuture<Response<Body>, Infallible>,
        > + NamedService
{
}

impl<B, S, H, R1, R2> Service<Request<B>> for Routes<S, H, R1, R2>
where
    S: GeneratedServer<B>,
    H: GeneratedServer<B>,
    R1: GeneratedServer<B>,
    R2: GeneratedServer<B>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // tonic's generated servers are always ready (their `poll_ready` is `Poll::Ready(Ok(()))`).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let service = service_name(request.uri().path());
        let future = if service == Some(S::NAME) {
            if let Err(status) = self.callers.check(&mut request) {
                return RouteFuture::Answered(ready(Ok(status.into_http())));
            }
            self.sessions.call(request)
        } else if service == Some(H::NAME) {
            self.health.call(request)
        } else if service == Some(R1::NAME) {
            self.reflection.call(request)
        } else if service == Some(R2::NAME) {
            self.reflection_alpha.call(request)
        } else {
            return RouteFuture::Answered(ready(Ok(Status::unimplemented("").into_http())));
        };
        RouteFuture::Routed(future)
    }
}

/// The answer of a routed call, or one the router gave itself (unknown service, caller refused).
pub enum RouteFuture {
    /// A service's own (boxed) future.
    Routed(BoxFuture<Response<Body>, Infallible>),
    /// The router's answer.
    Answered(Ready<Answer>),
}

impl Future for RouteFuture {
    type Output = Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Routed(future) => future.as_mut().poll(cx),
            Self::Answered(answer) => Pin::new(answer).poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::service_name;

    #[test]
    fn a_grpc_path_names_its_service() {
        assert_eq!(
            service_name("/kgen.session.v1.SessionService/CreateSession"),
            Some("kgen.session.v1.SessionService")
        );
        assert_eq!(
            service_name("/grpc.health.v1.Health/Check"),
            Some("grpc.health.v1.Health")
        );
    }

    #[test]
    fn other_paths_name_no_service() {
        for path in [
            "",
            "/",
            "/kgen.session.v1.SessionService",
            "/kgen.session.v1.SessionService/",
            "no-slash/x",
        ] {
            assert_eq!(service_name(path), None, "{path:?}");
        }
    }
}
