//! Allocations per call, counted by a global allocator (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release --example allocs -- [--calls 20000] [--padding 0,65536,1048576] [--log-level info]
//!                                          [--budget ALLOCATIONS_PER_CALL] [--connect true|false]
//! ```
//!
//! With `--budget`, it exits with status 3 when any row allocates more per call than that: the regression guard
//! `.ci/run` runs (allocation counts are deterministic where timings are not).
//!
//! The gateway (the library's real `Application`, with the production tracing subscriber at `--log-level`) runs
//! on its own tokio runtime whose threads are marked "counted"; the upstream stand-in (a tiny hyper server
//! answering the documented example session) and the tonic client run on another runtime that is not counted. So
//! the figures are the gateway's own allocations per `CreateSession`: inbound HTTP/2, the handler, the upstream
//! request and response, decode, mapping, encode.
//!
//! With `--padding N`, the upstream adds an N-byte string field the gateway ignores, so the difference in bytes
//! allocated per call between two paddings, divided by the padding, is how many copies of the body the gateway
//! makes (the issue asks for no more than one beyond reading it).
//!
//! `--connect false` serves the port without the Connect protocol (it is on by default, as in production), so the
//! two runs show what Connect costs a native gRPC call.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly
#![allow(unsafe_code)] // a counting `GlobalAlloc` wrapper must implement an unsafe trait

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    convert::Infallible,
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Instant,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use kgen_gateway::{
    proto::{session_service_client::SessionServiceClient, CreateSessionRequest},
    Application, LogFormat, Settings, UpstreamSettings,
};
use tokio::{net::TcpListener, sync::oneshot};

/// Counts allocations made on threads marked with [`COUNTED`]; everything else passes straight through.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator unchanged; counting touches only atomics and a
// const-initialised thread local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const EXAMPLE: &str = include_str!("../tests/fixtures/session-response.example.json");

struct Args {
    calls: u64,
    paddings: Vec<usize>,
    log_level: String,
    budget: Option<f64>,
    connect: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        calls: 20_000,
        paddings: vec![0, 64 * 1024, 512 * 1024],
        log_level: "info".to_owned(),
        budget: None,
        connect: true,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let [flag, value] = pair else {
            return Err(format!("{} needs a value", pair[0]));
        };
        match flag.as_str() {
            "--calls" => args.calls = value.parse().map_err(|_| "--calls takes a number")?,
            "--padding" => {
                args.paddings = value
                    .split(',')
                    .map(|p| p.parse().map_err(|_| "--padding takes sizes in bytes"))
                    .collect::<Result<_, _>>()?
            }
            "--log-level" => args.log_level = value.clone(),
            "--budget" => {
                args.budget = Some(
                    value
                        .parse()
                        .map_err(|_| "--budget takes allocations per call")?,
                )
            }
            "--connect" => {
                args.connect = value.parse().map_err(|_| "--connect takes true or false")?
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

/// The example session with an ignored `padding` field of `padding` bytes in front.
fn body(padding: usize) -> Bytes {
    let rest = EXAMPLE.trim_start().strip_prefix('{').unwrap_or(EXAMPLE);
    Bytes::from(format!("{{\"padding\":\"{}\",{rest}", "x".repeat(padding)))
}

async fn upstream(padding: usize) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let body = body(padding);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request: Request<Incoming>| {
                    let body = body.clone();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .unwrap_or_default(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

struct Figures {
    allocations: f64,
    bytes: f64,
    micros: f64,
}

fn measure(args: &Args, padding: usize) -> Result<Figures, Box<dyn std::error::Error>> {
    let outside = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let gateway_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .enable_all()
        .build()?;

    let upstream_addr = outside.block_on(upstream(padding))?;
    let mut upstream = UpstreamSettings::new(
        format!("http://{upstream_addr}").parse()?,
        "bench-client",
        "bench-secret",
    );
    upstream.max_body = 2 * padding + 64 * 1024;
    let mut settings = Settings::new(upstream);
    settings.log_format = LogFormat::Json;
    settings.server.connect = args.connect;

    let (stop, stopped) = oneshot::channel::<()>();
    let gateway_addr = gateway_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Application::build(settings).await?;
        tokio::spawn(app.run(listener, async {
            let _ = stopped.await;
        }));
        Ok::<_, Box<dyn std::error::Error>>(addr)
    })?;

    let calls = args.calls;
    let figures = outside.block_on(async move {
        let client = SessionServiceClient::connect(format!("http://{gateway_addr}")).await?;
        let call = |n: u64| {
            let request = CreateSessionRequest {
                user_id: format!("alloc-user-{n}"),
            };
            let mut client = client.clone();
            async move { client.create_session(request).await }
        };
        for n in 0..1_000 {
            call(n).await?;
        }
        let (allocations, bytes) = (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed));
        let started = Instant::now();
        for n in 0..calls {
            let response = call(n).await?.into_inner();
            if response.session_id.is_empty() {
                return Err("a call returned no session".into());
            }
        }
        let elapsed = started.elapsed();
        let per_call = |now: u64, before: u64| (now - before) as f64 / calls as f64;
        Ok::<_, Box<dyn std::error::Error>>(Figures {
            allocations: per_call(ALLOCATIONS.load(Relaxed), allocations),
            bytes: per_call(BYTES.load(Relaxed), bytes),
            micros: elapsed.as_secs_f64() * 1e6 / calls as f64,
        })
    })?;
    let _ = stop.send(());
    gateway_rt.shutdown_timeout(std::time::Duration::from_secs(1));
    outside.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(figures)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("allocs: {problem}");
            std::process::exit(2);
        }
    };
    // The production subscriber (JSON), at the production default level unless told otherwise.
    std::env::set_var("RUST_LOG", &args.log_level);
    if let Err(problem) = kgen_gateway::init_telemetry(LogFormat::Json, None) {
        eprintln!("allocs: {problem}");
        std::process::exit(1);
    }
    println!(
        "{} sequential calls per row, gateway threads only, RUST_LOG={}",
        args.calls, args.log_level
    );
    println!("padding_bytes  allocations_per_call  bytes_per_call  µs_per_call(wall, whole loop)");
    let mut rows = Vec::new();
    for &padding in &args.paddings {
        match measure(&args, padding) {
            Ok(f) => {
                println!(
                    "{padding:>13}  {:>20.1}  {:>14.0}  {:>8.1}",
                    f.allocations, f.bytes, f.micros
                );
                rows.push((padding, f));
            }
            Err(problem) => {
                eprintln!("allocs: padding {padding}: {problem}");
                std::process::exit(1);
            }
        }
    }
    if let (Some((p0, f0)), Some((pn, fnn))) = (rows.first(), rows.last()) {
        if pn > p0 {
            println!(
                "extra bytes allocated per extra body byte: {:.2} (copies of the body)",
                (fnn.bytes - f0.bytes) / (pn - p0) as f64
            );
        }
    }
    if let Some(budget) = args.budget {
        let over: Vec<_> = rows
            .iter()
            .filter(|(_, f)| f.allocations > budget)
            .map(|(padding, f)| format!("padding {padding}: {:.1}", f.allocations))
            .collect();
        if !over.is_empty() {
            eprintln!(
                "allocs: over the budget of {budget} allocations per call: {}",
                over.join(", ")
            );
            std::process::exit(3);
        }
        println!("within the budget of {budget} allocations per call");
    }
}
