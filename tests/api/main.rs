//! Integration tests: the real gateway on `127.0.0.1:0`, called by a real tonic client over TCP, in front of
//! `wiremock`, raw TCP stand-ins for broken upstreams, or the embedded sandbox.

mod batch;
mod binary;
mod deadlines;
mod fault_upstream;
mod faults;
mod grpc_web;
mod hardening;
mod helpers;
mod introspection;
mod limits;
mod observability;
mod otlp;
mod process;
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
