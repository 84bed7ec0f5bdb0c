//! Integration tests: the real gateway on `127.0.0.1:0`, called by a real tonic client over TCP, in front of the
//! one KGeN stand-in (`support::fake_kgen`, with the sandbox's `fault:` grammar) or the embedded sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

// What the test modules below share; it holds no tests.
mod support;

mod access_log;
mod batch;
mod binary;
mod call;
mod connect;
mod deadlines;
mod faults;
mod grpc_web;
mod hardening;
mod introspection;
mod limits;
mod observability;
mod otlp;
mod properties;
mod retries;
mod sandbox;
mod security;
mod session;
mod shutdown;
mod status_mapping;
mod tenants;
mod transport;
mod validation;
