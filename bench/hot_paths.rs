//! Micro-benchmarks of the pure functions on every call's path: decoding KGeN's body, mapping it to the protobuf
//! response (with the Go time parse), and mapping a failure to a `tonic::Status` with its details.
//!
//! `cargo bench --bench hot_paths` (numbers are per call).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

use std::{hint::black_box, time::Duration};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kgen_gateway::{
    parse_go_time, proto::CreateSessionResponse, validate_user_id, Error, Session, UpstreamError,
    UpstreamStatus,
};
use prost::Message;

/// KGeN's documented example response, as bytes off the wire.
const EXAMPLE: &[u8] = include_bytes!("../tests/fixtures/session-response.example.json");

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("upstream body");
    group.throughput(Throughput::Bytes(EXAMPLE.len() as u64));
    group.bench_function("decode the documented example", |b| {
        b.iter(|| Session::decode(black_box(EXAMPLE)))
    });
    group.bench_function("decode + map to CreateSessionResponse", |b| {
        b.iter(|| Session::decode(black_box(EXAMPLE)).map(CreateSessionResponse::from))
    });
    group.bench_function("decode + map + encode protobuf", |b| {
        b.iter(|| {
            Session::decode(black_box(EXAMPLE))
                .map(CreateSessionResponse::from)
                .map(|response| response.encode_to_vec())
        })
    });
    group.finish();
}

fn small_functions(c: &mut Criterion) {
    c.bench_function("parse Go time", |b| {
        b.iter(|| parse_go_time(black_box("2024-08-20 08:32:13.025599965 +0000 UTC")))
    });
    c.bench_function("validate user_id", |b| {
        b.iter(|| validate_user_id(black_box("FTC_User1")))
    });
}

fn status_mapping(c: &mut Criterion) {
    c.bench_function("map 429 with Retry-After to Status", |b| {
        b.iter(|| {
            tonic::Status::from(Error::Upstream(UpstreamError::HttpStatus(UpstreamStatus {
                code: black_box(429),
                message: "slow down".to_owned(),
                retry_after: Some(Duration::from_secs(1)),
            })))
        })
    });
    c.bench_function("map invalid user_id to Status with BadRequest", |b| {
        b.iter(|| tonic::Status::from(Error::InvalidUserId(black_box("must not be empty"))))
    });
}

criterion_group!(benches, decode, small_functions, status_mapping);
criterion_main!(benches);
