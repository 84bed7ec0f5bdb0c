//! The access log (`--access-log`): one line at INFO per finished RPC of the session service, with the target
//! [`TARGET`] so that `RUST_LOG` can route it (`RUST_LOG=warn,kgen_gateway::access=info`).
//!
//! A batch RPC (`CreateSessions`, `CreateSessionBatch`) is one line, as it is one count in
//! `grpc_server_handled_total`: its code is the RPC's, `items` says how many answers were sent and `attempts` sums
//! its items' upstream attempts (each failed item still has its own `call failed` line). The line is its own event,
//! logged outside the call span, with every field given explicitly: text logs do not repeat the span's fields, and
//! JSON logs have no `span` object on it. It holds no secret, token, email or phone number: only the names below.

use std::{
    net::SocketAddr,
    task::{Context, Poll},
    time::Duration,
};

use tonic::Code;
use tower::Service;

use crate::observability::code_name;

/// The target of access lines.
pub const TARGET: &str = "kgen_gateway::access";

/// The client's socket address, put in a request's extensions by [`WithPeer`] (only with the access log on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// One connection's service, putting the client's address ([`Peer`]) into each request's extensions when set.
#[derive(Debug, Clone)]
pub struct WithPeer<S> {
    inner: S,
    peer: Option<Peer>,
}

impl<S> WithPeer<S> {
    /// `inner`, serving the client at `peer` (`None`: nothing is added, and nothing allocated).
    pub fn new(inner: S, peer: Option<SocketAddr>) -> Self {
        Self {
            inner,
            peer: peer.map(Peer),
        }
    }
}

impl<S, B> Service<http::Request<B>> for WithPeer<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(peer);
        }
        self.inner.call(request)
    }
}

/// What one access line says about a finished RPC.
#[derive(Debug)]
pub struct Entry<'a> {
    /// The RPC's method name (`CreateSession`, …).
    pub method: &'a str,
    /// The status the caller received.
    pub code: Code,
    /// The `ErrorInfo.reason` of a failure; empty on success.
    pub reason: &'a str,
    /// From the request's arrival to its status.
    pub latency: Duration,
    /// KGeN's HTTP status on the last attempt, when it answered one (not for batch RPCs).
    pub upstream_status: Option<u16>,
    /// Upstream attempts made (for a batch RPC, over all its items).
    pub attempts: u32,
    /// Answers sent, for a batch RPC.
    pub items: Option<usize>,
    /// The tenant's name; empty when the call had none.
    pub tenant: &'a str,
    /// The authenticated caller's name; empty without caller authentication.
    pub caller: &'a str,
    /// The call's `x-request-id`.
    pub request_id: &'a str,
    /// The client's socket address.
    pub peer: Option<SocketAddr>,
}

impl Entry<'_> {
    /// Logs the line (at INFO, target [`TARGET`]). Called outside any span.
    pub fn log(&self) {
        tracing::info!(
            target: TARGET,
            method = self.method,
            grpc_code = code_name(self.code),
            reason = self.reason,
            latency_ms = self.latency.as_secs_f64() * 1000.0,
            upstream_status = self.upstream_status,
            attempts = self.attempts,
            items = self.items,
            tenant = self.tenant,
            caller = self.caller,
            request_id = self.request_id,
            peer = self.peer.map(tracing::field::display),
            "access"
        );
    }
}
