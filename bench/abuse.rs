//! The client side of the abuse scenarios (`scripts/abuse-memory.sh`, `scripts/abuse-fds.sh`): a hostile client
//! against a kgen-gateway on loopback, a well-behaved caller beside it, and the gateway's resources sampled from
//! `/proc/PID` while it lasts. Every phase is bounded in time; figures are printed for people, then repeated as
//! `FIGURE key=value` lines for the scripts' checks.
//!
//! ```text
//! abuse memory --target 127.0.0.1:PORT --pid GATEWAY_PID [--connections 8] [--streams 1000]
//!              [--message-size 65536] [--withhold 10] [--hold 20] [--after 5] [--baseline 2]
//!              [--interval-ms 200] [--call-timeout 5] [--open-timeout 10]
//! abuse fds    --grpc 127.0.0.1:PORT --admin 127.0.0.1:PORT --pid GATEWAY_PID [--count 1100] [--hold 20]
//!              [--probe-every 2] [--probe-timeout 2] [--connect-timeout 3] [--connect-concurrency 2×count]
//! ```
//!
//! - `memory`: `--connections` HTTP/2 (h2c, prior knowledge) connections each open `--streams` concurrent
//!   `CreateSession` streams whose gRPC frame header announces a `--message-size`-byte message, send all of it but
//!   the last `--withhold` bytes (respecting flow control), and never finish; the connections stay alive (the h2
//!   crate answers PINGs) for `--hold` seconds from the start of the attack, then all are dropped. Meanwhile a normal
//!   caller on its own connection (and its own thread and runtime, so the attacker's tasks do not delay it) makes a
//!   real `CreateSession` call every `--interval-ms`, from `--baseline` seconds before the attack until it ends.
//!   The gateway's VmRSS is sampled every 500 ms, and read again `--after` seconds after the attacker disconnected.
//! - `fds`: `--count` idle TCP connections (connected, nothing sent) to each of the gRPC port and the admin port,
//!   held for `--hold` seconds once all were attempted; every `--probe-every` seconds a normal call on a fresh
//!   connection, a normal call on a connection made before the flood, and `GET /healthz` on a fresh connection, each
//!   bounded by `--probe-timeout`. The gateway's open file descriptors are counted every 500 ms, and every idle
//!   connection the gateway closes is timed. After the flood is released, the same probes once more (recovery).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

use std::{
    collections::BTreeMap,
    future::poll_fn,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

const USAGE: &str = "usage: abuse memory --target HOST:PORT --pid PID [options]\n       \
                     abuse fds --grpc HOST:PORT --admin HOST:PORT --pid PID [options]\n\
                     (see the comment at the top of bench/abuse.rs)";

const METHOD: &str = "/kgen.session.v1.SessionService/CreateSession";
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let flags = match Flags::parse(args) {
        Ok(flags) => flags,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let outcome = match command.as_str() {
        "memory" => runtime.block_on(memory(flags)),
        "fds" => runtime.block_on(fds(flags)),
        other => Err(format!("unknown subcommand {other:?}")),
    };
    // Whatever is still running (held connections, stream tasks) is dropped with the runtime, without waiting.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("abuse: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--flag value` pairs (no argument-parsing dependency).
struct Flags(BTreeMap<String, String>);

impl Flags {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Flags, String> {
        let mut map = BTreeMap::new();
        while let Some(flag) = args.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("not a flag: {flag}"))?;
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            map.insert(name.to_owned(), value);
        }
        Ok(Flags(map))
    }

    fn text(&self, name: &str) -> Result<String, String> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| format!("--{name}: not a whole number: {raw}")),
        }
    }

    fn secs(&self, name: &str, default: u64) -> Result<Duration, String> {
        self.number(name, default).map(Duration::from_secs)
    }

    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(unknown) => Err(format!("unknown flag --{unknown}")),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// /proc sampling

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How many file descriptors `pid` has open.
fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The soft limit on open files of `pid`, as /proc/PID/limits shows it.
fn fd_limit(pid: u32) -> Option<String> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3).map(str::to_owned)
}

/// Samples `read(pid)` every 500 ms on its own thread until stopped; `(seconds since origin, value)`.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl Sampler {
    fn start(pid: u32, origin: Instant, read: fn(u32) -> Option<u64>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            // Bounded: at most 10 minutes of samples, whatever the caller does.
            for _ in 0..1200 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(value) = read(pid) {
                    samples.push((origin.elapsed().as_secs_f64(), value));
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The highest sample, and when it was first reached.
fn peak(samples: &[(f64, u64)]) -> (f64, u64) {
    samples.iter().fold(
        (0.0, 0),
        |best, &(t, v)| if v > best.1 { (t, v) } else { best },
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------------------------------
// Normal calls

/// One normal call: when it started (seconds since origin), how long it took, and how it ended.
#[derive(Clone)]
struct Call {
    at: f64,
    latency: Duration,
    result: Result<(), String>,
}

async fn create_session(
    client: &mut SessionServiceClient<Channel>,
    user_id: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut request = tonic::Request::new(CreateSessionRequest {
        user_id: user_id.to_owned(),
    });
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.create_session(request)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Connects a channel to `target` (HOST:PORT), bounded by `timeout`.
async fn connect(target: &str, timeout: Duration) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("http://{target}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .tcp_nodelay(true);
    match tokio::time::timeout(timeout, endpoint.connect()).await {
        Err(_) => Err(format!("connect: no connection within {timeout:?}")),
        Ok(Err(e)) => Err(format!("connect: {}", error_chain(&e))),
        Ok(Ok(channel)) => Ok(channel),
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn summarize_calls(label: &str, calls: &[Call]) -> (usize, usize, u128) {
    let failed: Vec<&Call> = calls.iter().filter(|c| c.result.is_err()).collect();
    let mut latencies: Vec<Duration> = calls.iter().map(|c| c.latency).collect();
    latencies.sort();
    let pct = |p: f64| -> String {
        if latencies.is_empty() {
            return "-".to_owned();
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        format!("{:.1} ms", latencies[i].as_secs_f64() * 1000.0)
    };
    let max = latencies.last().map_or(0, Duration::as_millis);
    println!(
        "{label}: {} calls, {} ok, {} failed; latency p50 {} p99 {} max {}",
        calls.len(),
        calls.len() - failed.len(),
        failed.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for call in &failed {
        if let Err(reason) = &call.result {
            *reasons.entry(reason.as_str()).or_default() += 1;
        }
    }
    for (reason, count) in reasons {
        println!("  {count:>5} × {reason}");
    }
    if let Some(first) = failed.first() {
        println!(
            "  first failure at t={:.1}s, last at t={:.1}s",
            first.at,
            failed.last().map_or(first.at, |c| c.at)
        );
    }
    (calls.len(), failed.len(), max)
}

/// A normal caller on its own thread and current-thread runtime: one channel, a call every `interval` (each call
/// in its own task, so a slow one does not delay the next) until `stop`.
fn normal_caller(
    target: String,
    interval: Duration,
    timeout: Duration,
    origin: Instant,
    stop: CancellationToken,
) -> std::thread::JoinHandle<Result<Vec<Call>, String>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let channel = connect(&target, Duration::from_secs(5)).await?;
            let client = SessionServiceClient::new(channel);
            let calls = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = JoinSet::new();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Bounded: at most 10 minutes' worth of ticks.
            for n in 0..(600_000 / interval.as_millis().max(1) as u64) {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let mut client = client.clone();
                let calls = calls.clone();
                tasks.spawn(async move {
                    let at = origin.elapsed().as_secs_f64();
                    let started = Instant::now();
                    let result =
                        create_session(&mut client, &format!("normal-caller-{n}"), timeout).await;
                    calls.lock().unwrap().push(Call {
                        at,
                        latency: started.elapsed(),
                        result,
                    });
                });
            }
            // Calls in flight end within their timeout.
            while tasks.join_next().await.is_some() {}
            let mut calls = calls.lock().unwrap().clone();
            calls.sort_by(|a, b| a.at.total_cmp(&b.at));
            Ok(calls)
        })
    })
}

// ---------------------------------------------------------------------------------------------------------------
// memory: streams that announce a large message and never finish it

#[derive(Default)]
struct Attack {
    requested: AtomicU64,
    not_requested: AtomicU64,
    /// Streams the gateway opened and took data on (the client got flow-control capacity for them).
    could_send: AtomicU64,
    /// Of those, the ones not ended yet.
    live: AtomicU64,
    /// Streams that ended (answered, reset) before they could send anything.
    ended_unopened: AtomicU64,
    fully_sent: AtomicU64,
    bytes_sent: AtomicU64,
    /// When the last stream finished sending (ms since origin).
    last_fully_sent_ms: AtomicU64,
    /// How streams ended before the hold did: outcome → (count, first at, last at).
    outcomes: Mutex<BTreeMap<String, (u64, f64, f64)>>,
    /// How connections ended before the hold did.
    connections: Mutex<Vec<(f64, String)>>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS the server announced, per connection.
    max_streams: Mutex<Vec<usize>>,
}

impl Attack {
    fn record(&self, origin: Instant, outcome: String) {
        let at = origin.elapsed().as_secs_f64();
        let mut outcomes = self.outcomes.lock().unwrap();
        let entry = outcomes.entry(outcome).or_insert((0, at, at));
        entry.0 += 1;
        entry.2 = at;
    }
}

fn describe_h2_error(e: &h2::Error) -> String {
    match e.reason() {
        Some(reason) if e.is_go_away() => format!(
            "GOAWAY {reason:?} ({})",
            if e.is_remote() {
                "from the gateway"
            } else {
                "local"
            }
        ),
        Some(reason) if e.is_reset() => format!(
            "RST_STREAM {reason:?} ({})",
            if e.is_remote() {
                "from the gateway"
            } else {
                "local"
            }
        ),
        _ if e.is_io() => format!(
            "connection I/O error: {}",
            e.get_io().map_or_else(String::new, ToString::to_string)
        ),
        _ => format!("h2 error: {e}"),
    }
}

fn grpc_code_name(code: &str) -> String {
    match code.parse::<i32>() {
        Ok(n) => format!("{n} {:?}", tonic::Code::from(n)),
        Err(_) => code.to_owned(),
    }
}

/// How the gateway answered one stream: HTTP status, gRPC status and message (from the headers of a
/// trailers-only answer, or from the trailers).
async fn answer(response: h2::client::ResponseFuture) -> String {
    let response = match response.await {
        Ok(response) => response,
        Err(e) => return describe_h2_error(&e),
    };
    let http = response.status().as_u16();
    let header = |map: &http::HeaderMap, name: &str| {
        map.get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if let Some(code) = header(response.headers(), "grpc-status") {
        let message = header(response.headers(), "grpc-message").unwrap_or_default();
        return format!(
            "answered: HTTP {http}, grpc-status {}, grpc-message {message:?}",
            grpc_code_name(&code)
        );
    }
    let mut body = response.into_body();
    let mut body_bytes = 0;
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                body_bytes += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(e) => return format!("answered: HTTP {http}, then {}", describe_h2_error(&e)),
        }
    }
    match body.trailers().await {
        Ok(Some(trailers)) => format!(
            "answered: HTTP {http}, {body_bytes} body bytes, grpc-status {}, grpc-message {:?}",
            header(&trailers, "grpc-status")
                .map_or_else(|| "(none)".to_owned(), |c| grpc_code_name(&c)),
            header(&trailers, "grpc-message").unwrap_or_default()
        ),
        Ok(None) => format!("answered: HTTP {http}, {body_bytes} body bytes, no trailers"),
        Err(e) => format!("answered: HTTP {http}, then {}", describe_h2_error(&e)),
    }
}

/// Sends `payload` on `send` as flow control allows; Ok once all of it was handed to the connection.
async fn send_all(
    send: &mut h2::SendStream<Bytes>,
    mut payload: Bytes,
    attack: &Attack,
    opened: &AtomicBool,
) -> Result<(), String> {
    while !payload.is_empty() {
        send.reserve_capacity(payload.len());
        while send.capacity() == 0 {
            match poll_fn(|cx| send.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(describe_h2_error(&e)),
                None => return Err("stream closed while sending".to_owned()),
            }
        }
        if !opened.swap(true, Ordering::Relaxed) {
            attack.could_send.fetch_add(1, Ordering::Relaxed);
            attack.live.fetch_add(1, Ordering::Relaxed);
        }
        let chunk = payload.split_to(send.capacity().min(payload.len()));
        let len = chunk.len() as u64;
        send.send_data(chunk, false)
            .map_err(|e| describe_h2_error(&e))?;
        attack.bytes_sent.fetch_add(len, Ordering::Relaxed);
    }
    Ok(())
}

/// One attacking stream: sends the unfinished message, then holds the stream open until `stop`; records how the
/// gateway answered if it did before then.
async fn attack_stream(
    mut send: h2::SendStream<Bytes>,
    response: h2::client::ResponseFuture,
    payload: Bytes,
    attack: Arc<Attack>,
    origin: Instant,
    stop: CancellationToken,
) {
    // Capacity is granted only to streams the gateway opened: those h2 queued past its concurrency limit get none.
    let opened = AtomicBool::new(false);
    let sending = async {
        if send_all(&mut send, payload, &attack, &opened).await.is_ok() {
            attack.fully_sent.fetch_add(1, Ordering::Relaxed);
            attack
                .last_fully_sent_ms
                .fetch_max(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        // Never finish the message: the stream stays open (and `send` alive) until the hold ends.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        biased;
        () = stop.cancelled() => {}
        () = sending => {}
        // Whatever the disconnect itself causes is not the gateway's answer.
        outcome = answer(response) => if !stop.is_cancelled() {
            attack.record(origin, outcome);
            if opened.load(Ordering::Relaxed) {
                attack.live.fetch_sub(1, Ordering::Relaxed);
            } else {
                attack.ended_unopened.fetch_add(1, Ordering::Relaxed);
            }
        },
    }
}

/// `SendRequest::poll_ready` until it is ready or `deadline` passes (`None`). Polled again every 50 ms: h2 0.4 does
/// not always wake a task waiting in `poll_ready` when its queued stream gets opened (seen when the server's
/// SETTINGS raise the concurrency limit), which left a connection's requests stuck until the deadline.
async fn ready_by(
    client: &mut h2::client::SendRequest<Bytes>,
    deadline: tokio::time::Instant,
) -> Option<Result<(), h2::Error>> {
    loop {
        let step = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
        match tokio::time::timeout_at(step, poll_fn(|cx| client.poll_ready(cx))).await {
            Ok(ready) => return Some(ready),
            Err(_) if step >= deadline => return None,
            Err(_) => {}
        }
    }
}

/// One attacking connection: opens `streams` streams (each waiting at most until `open_deadline` for the server to
/// allow another), then keeps the connection alive (answering PINGs) until `stop`.
#[allow(clippy::too_many_arguments)]
async fn attack_connection(
    target: String,
    streams: u64,
    payload: Bytes,
    attack: Arc<Attack>,
    origin: Instant,
    open_deadline: tokio::time::Instant,
    stop: CancellationToken,
) {
    let fail = |what: String| {
        attack
            .connections
            .lock()
            .unwrap()
            .push((origin.elapsed().as_secs_f64(), what));
        attack.not_requested.fetch_add(streams, Ordering::Relaxed);
    };
    let tcp = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target)).await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return fail(format!("connect failed: {e}")),
        Err(_) => return fail("connect timed out".to_owned()),
    };
    let _ = tcp.set_nodelay(true);
    // Until the server's SETTINGS arrive, assume the 100 concurrent streams RFC 9113 recommends at least (h2's
    // default, no limit, would open all of them before the gateway's own limit is known).
    let handshake = h2::client::Builder::new()
        .initial_max_send_streams(100)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 20)
        .handshake::<_, Bytes>(tcp);
    let (mut client, connection) =
        match tokio::time::timeout(Duration::from_secs(5), handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return fail(format!("HTTP/2 handshake failed: {e}")),
            Err(_) => return fail("HTTP/2 handshake timed out".to_owned()),
        };
    // The connection future does the I/O and answers PINGs; it must be polled for the whole hold.
    let driver = {
        let attack = attack.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = stop.cancelled() => {}
                ended = connection => {
                    let what = match ended {
                        Ok(()) => "connection closed by the gateway".to_owned(),
                        Err(e) => describe_h2_error(&e),
                    };
                    attack.connections.lock().unwrap().push((origin.elapsed().as_secs_f64(), what));
                }
            }
        })
    };
    let uri = format!("http://{target}{METHOD}");
    let mut tasks = JoinSet::new();
    let mut opened = 0;
    while opened < streams {
        match ready_by(&mut client, open_deadline).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                attack.record(origin, format!("not opened: {}", describe_h2_error(&e)));
                break;
            }
            None => break,
        }
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(&uri)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())
            .expect("a valid request");
        match client.send_request(request, false) {
            Ok((response, send)) => {
                opened += 1;
                attack.requested.fetch_add(1, Ordering::Relaxed);
                tasks.spawn(attack_stream(
                    send,
                    response,
                    payload.clone(),
                    attack.clone(),
                    origin,
                    stop.clone(),
                ));
            }
            Err(e) => {
                attack.record(origin, format!("not opened: {}", describe_h2_error(&e)));
                break;
            }
        }
    }
    attack
        .not_requested
        .fetch_add(streams - opened, Ordering::Relaxed);
    stop.cancelled().await;
    // Read at the end of the hold: by then the gateway's SETTINGS have long been applied.
    attack
        .max_streams
        .lock()
        .unwrap()
        .push(client.current_max_send_streams());
    tasks.shutdown().await;
    drop(client);
    let _ = driver.await;
}

async fn memory(flags: Flags) -> Result<(), String> {
    flags.check_known(&[
        "target",
        "pid",
        "connections",
        "streams",
        "message-size",
        "withhold",
        "hold",
        "after",
        "baseline",
        "interval-ms",
        "call-timeout",
        "open-timeout",
    ])?;
    let target = flags.text("target")?;
    let pid = u32::try_from(flags.number("pid", 0)?).map_err(|e| e.to_string())?;
    let connections = flags.number("connections", 8)?;
    let streams = flags.number("streams", 1000)?;
    let message_size = flags.number("message-size", 65_536)?.max(8);
    let withhold = flags.number("withhold", 10)?.min(message_size);
    let hold = flags.secs("hold", 20)?;
    let after = flags.secs("after", 5)?;
    let baseline = flags.secs("baseline", 2)?;
    let interval = Duration::from_millis(flags.number("interval-ms", 200)?.max(10));
    let call_timeout = flags.secs("call-timeout", 5)?;
    let open_timeout = flags.secs("open-timeout", 10)?.min(hold);
    if rss_kib(pid).is_none() {
        return Err(format!("cannot read /proc/{pid}/status"));
    }

    // A valid CreateSessionRequest (field 1, user_id, a string filling the message), cut short: the gRPC frame
    // header announces message_size bytes, and all but the last `withhold` are sent.
    let mut message = vec![0x0a];
    let mut user_id_len = message_size - 1;
    // The varint length prefix takes room from the string; shrink the string until both fit exactly.
    while 1 + varint_len(user_id_len) + user_id_len > message_size {
        user_id_len -= 1;
    }
    put_varint(&mut message, user_id_len);
    message.resize(message_size as usize, b'a');
    let mut frame = vec![0u8];
    frame.extend_from_slice(
        &u32::try_from(message_size)
            .map_err(|e| e.to_string())?
            .to_be_bytes(),
    );
    frame.extend_from_slice(&message[..(message_size - withhold) as usize]);
    let payload = Bytes::from(frame);

    let origin = Instant::now();
    let sampler = Sampler::start(pid, origin, rss_kib);
    let stop_caller = CancellationToken::new();
    let caller = normal_caller(
        target.clone(),
        interval,
        call_timeout,
        origin,
        stop_caller.clone(),
    );
    let idle = rss_kib(pid).unwrap_or(0);
    tokio::time::sleep(baseline).await;

    let attack_started = origin.elapsed().as_secs_f64();
    let attack = Arc::new(Attack::default());
    let stop = CancellationToken::new();
    let open_deadline = tokio::time::Instant::now() + open_timeout;
    let mut attackers = JoinSet::new();
    for _ in 0..connections {
        attackers.spawn(attack_connection(
            target.clone(),
            streams,
            payload.clone(),
            attack.clone(),
            origin,
            open_deadline,
            stop.clone(),
        ));
    }
    tokio::time::sleep(hold).await;
    // The hold is over: how every stream stands now, then disconnect.
    let open_at_end = attack.live.load(Ordering::Relaxed);
    let queued_at_end = attack.requested.load(Ordering::Relaxed).saturating_sub(
        attack.could_send.load(Ordering::Relaxed) + attack.ended_unopened.load(Ordering::Relaxed),
    );
    let connections_ended = attack.connections.lock().unwrap().len();
    stop_caller.cancel();
    stop.cancel();
    let disconnect = tokio::time::timeout(Duration::from_secs(10), async {
        while attackers.join_next().await.is_some() {}
    })
    .await;
    if disconnect.is_err() {
        attackers.abort_all();
    }
    let disconnected_at = origin.elapsed().as_secs_f64();
    let calls = caller
        .join()
        .map_err(|_| "the normal caller panicked".to_owned())?;
    tokio::time::sleep(after).await;
    let after_rss = rss_kib(pid);
    let samples = sampler.finish();

    println!("== gateway memory (VmRSS of pid {pid}, sampled every 500 ms)");
    println!("idle, before the attack:   {}", mib(idle));
    let (peak_at, peak_kib) = peak(&samples);
    println!(
        "peak:                      {}, first reached at t={peak_at:.1}s",
        mib(peak_kib)
    );
    match after_rss {
        Some(kib) => println!(
            "after the attacker left:  {} ({}s after it disconnected at t={disconnected_at:.1}s)",
            mib(kib),
            after.as_secs()
        ),
        None => println!("after the attacker left:  (gone: the gateway is no longer running)"),
    }
    let timeline: Vec<String> = samples
        .iter()
        .step_by(2)
        .map(|(t, kib)| format!("{t:.0}s:{:.0}", *kib as f64 / 1024.0))
        .collect();
    println!("timeline (t:MiB, every 1 s): {}", timeline.join(" "));

    println!(
        "== attacker: {connections} connections × {streams} streams from t={attack_started:.1}s, each announcing a \
         {message_size}-byte message and sending {} bytes of it, held {}s",
        message_size - withhold,
        hold.as_secs()
    );
    let max_streams: Vec<String> = attack
        .max_streams
        .lock()
        .unwrap()
        .iter()
        .map(|&n| {
            if n == usize::MAX {
                "none".to_owned()
            } else {
                n.to_string()
            }
        })
        .collect();
    println!(
        "the gateway's SETTINGS_MAX_CONCURRENT_STREAMS, per connection: {}",
        max_streams.join(" ")
    );
    let requested = attack.requested.load(Ordering::Relaxed);
    let not_requested = attack.not_requested.load(Ordering::Relaxed);
    let could_send = attack.could_send.load(Ordering::Relaxed);
    let fully_sent = attack.fully_sent.load(Ordering::Relaxed);
    let bytes_sent = attack.bytes_sent.load(Ordering::Relaxed);
    println!(
        "streams requested: {requested}; not requested within {}s: {not_requested} (h2 queues the requests over \
         the gateway's SETTINGS_MAX_CONCURRENT_STREAMS in the client, unopened, and makes the next one wait)",
        open_timeout.as_secs()
    );
    println!(
        "streams opened that the gateway took data on: {could_send}; that sent all {} bytes: {fully_sent}",
        message_size - withhold
    );
    println!(
        "requests still queued in the client, never opened, when the hold ended: {queued_at_end}"
    );
    println!(
        "bytes sent: {} ({}); the last stream finished sending at t={:.1}s",
        bytes_sent,
        mib(bytes_sent / 1024),
        attack.last_fully_sent_ms.load(Ordering::Relaxed) as f64 / 1000.0
    );
    println!("streams opened and still open, unanswered, when the hold ended: {open_at_end}");
    let outcomes = attack.outcomes.lock().unwrap().clone();
    let mut answered = 0;
    let mut reset = 0;
    if outcomes.is_empty() {
        println!("streams the gateway answered or reset during the hold: none");
    } else {
        println!("streams the gateway answered or reset during the hold:");
    }
    for (outcome, (count, first, last)) in &outcomes {
        println!("  {count:>6} × {outcome}  (t={first:.1}s..{last:.1}s)");
        if outcome.starts_with("answered") {
            answered += count;
        } else {
            reset += count;
        }
    }
    let connection_ends = attack.connections.lock().unwrap().clone();
    println!(
        "connections ended by the gateway during the hold: {connections_ended} of {connections}"
    );
    for (at, what) in &connection_ends {
        println!("  t={at:.1}s: {what}");
    }

    let calls = calls?;
    println!(
        "== normal caller: CreateSession every {} ms on its own connection, from t=0 to t={disconnected_at:.1}s",
        interval.as_millis()
    );
    let before: Vec<Call> = calls
        .iter()
        .filter(|c| c.at < attack_started)
        .cloned()
        .collect();
    let during: Vec<Call> = calls
        .iter()
        .filter(|c| c.at >= attack_started)
        .cloned()
        .collect();
    summarize_calls("before the attack", &before);
    summarize_calls("during the attack", &during);
    let (total, failed, max_ms) = summarize_calls("all", &calls);
    let slow = calls
        .iter()
        .filter(|c| c.latency > Duration::from_secs(1))
        .count();
    println!("calls slower than 1 s: {slow}");

    println!("FIGURE idle_rss_kib={idle}");
    println!("FIGURE peak_rss_kib={peak_kib}");
    println!(
        "FIGURE after_rss_kib={}",
        after_rss.map_or_else(|| "gone".to_owned(), |k| k.to_string())
    );
    println!("FIGURE streams_requested={requested}");
    println!("FIGURE streams_not_requested={not_requested}");
    println!("FIGURE streams_could_send={could_send}");
    println!("FIGURE streams_fully_sent={fully_sent}");
    println!("FIGURE streams_answered={answered}");
    println!("FIGURE streams_reset={reset}");
    println!("FIGURE streams_open_at_end={open_at_end}");
    println!("FIGURE streams_queued_at_end={queued_at_end}");
    println!("FIGURE normal_calls={total}");
    println!("FIGURE normal_failed={failed}");
    println!("FIGURE normal_slow={slow}");
    println!("FIGURE normal_max_ms={max_ms}");
    Ok(())
}

fn varint_len(mut value: u64) -> u64 {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

// ---------------------------------------------------------------------------------------------------------------
// fds: idle connections that hold the gateway's file descriptors

#[derive(Default)]
struct Flood {
    connected: AtomicU64,
    connect_failed: Mutex<BTreeMap<String, u64>>,
    /// Idle connections the gateway closed: (seconds since origin, how).
    closed: Mutex<Vec<(f64, &'static str)>>,
}

/// One idle connection: connect, send nothing, wait for the gateway to close it or for `stop`.
async fn idle_connection(
    target: String,
    flood: Arc<Flood>,
    origin: Instant,
    connect_timeout: Duration,
    permits: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let connected = {
        let _permit = permits.acquire().await;
        tokio::time::timeout(connect_timeout, TcpStream::connect(&target)).await
    };
    let mut stream = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            *flood
                .connect_failed
                .lock()
                .unwrap()
                .entry(format!("{:?}", e.kind()))
                .or_default() += 1;
            return;
        }
        Err(_) => {
            *flood
                .connect_failed
                .lock()
                .unwrap()
                .entry(format!("no connection within {connect_timeout:?}"))
                .or_default() += 1;
            return;
        }
    };
    flood.connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            read = stream.read(&mut buf) => {
                let how = match read {
                    Ok(0) => "closed (EOF)",
                    Ok(_) => continue,
                    Err(_) => "reset",
                };
                flood.closed.lock().unwrap().push((origin.elapsed().as_secs_f64(), how));
                return;
            }
        }
    }
}

/// `GET /healthz` on a fresh connection.
async fn healthz(admin: &str, timeout: Duration) -> Result<(), String> {
    let probe = async {
        let mut stream = TcpStream::connect(admin)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let status_line = String::from_utf8_lossy(&response)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        if status_line.starts_with("HTTP/1.1 200") {
            Ok(())
        } else if status_line.is_empty() {
            Err("connection closed without an answer".to_owned())
        } else {
            Err(format!("answered {status_line:?}"))
        }
    };
    match tokio::time::timeout(timeout, probe).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(result) => result,
    }
}

/// A normal call on a fresh connection.
async fn fresh_call(grpc: &str, timeout: Duration) -> Result<(), String> {
    let call = async {
        let mut client = SessionServiceClient::new(connect(grpc, timeout).await?);
        create_session(&mut client, "probe-fresh", timeout).await
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(result) => result,
    }
}

#[derive(Default)]
struct Probes {
    fresh: Vec<Call>,
    kept: Vec<Call>,
    health: Vec<Call>,
}

/// Runs `probe`, timing it from `origin`.
async fn timed(
    origin: Instant,
    probe: impl std::future::Future<Output = Result<(), String>>,
) -> Call {
    let at = origin.elapsed().as_secs_f64();
    let started = Instant::now();
    let result = probe.await;
    Call {
        at,
        latency: started.elapsed(),
        result,
    }
}

/// The three probes at once, each bounded by `timeout`.
async fn probe_round(
    grpc: &str,
    admin: &str,
    kept: &SessionServiceClient<Channel>,
    timeout: Duration,
    origin: Instant,
    probes: &mut Probes,
) {
    let mut kept = kept.clone();
    let (fresh, kept, health) = tokio::join!(
        timed(origin, fresh_call(grpc, timeout)),
        timed(origin, async move {
            create_session(&mut kept, "probe-kept", timeout).await
        }),
        timed(origin, healthz(admin, timeout)),
    );
    probes.fresh.push(fresh);
    probes.kept.push(kept);
    probes.health.push(health);
}

fn flood_report(label: &str, flood: &Flood, attempted: u64, flood_done: f64) -> (u64, u64) {
    let connected = flood.connected.load(Ordering::Relaxed);
    let failed = flood.connect_failed.lock().unwrap().clone();
    let closed = flood.closed.lock().unwrap().clone();
    println!(
        "{label}: {attempted} attempted, {connected} connected as the client saw it (the kernel completes the \
         handshake of a connection still waiting in the listen backlog, accepted or not)"
    );
    for (why, count) in &failed {
        println!("  {count:>5} × connect failed: {why}");
    }
    let during_flood = closed.iter().filter(|(t, _)| *t <= flood_done).count();
    println!(
        "  closed by the gateway while held: {} ({} while the flood was still connecting)",
        closed.len(),
        during_flood
    );
    let mut by_how: BTreeMap<&str, (u64, f64, f64)> = BTreeMap::new();
    for &(at, how) in &closed {
        let entry = by_how.entry(how).or_insert((0, at, at));
        entry.0 += 1;
        entry.1 = entry.1.min(at);
        entry.2 = entry.2.max(at);
    }
    for (how, (count, first, last)) in by_how {
        println!("  {count:>5} × {how}, from t={first:.1}s to t={last:.1}s");
    }
    // When, in 5-second buckets.
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    for &(at, _) in &closed {
        *buckets.entry((at / 5.0) as u64 * 5).or_default() += 1;
    }
    if !buckets.is_empty() {
        let text: Vec<String> = buckets
            .iter()
            .map(|(start, n)| format!("t={start}-{}s:{n}", start + 5))
            .collect();
        println!("  closes over time: {}", text.join(" "));
    }
    (connected, closed.len() as u64)
}

async fn fds(flags: Flags) -> Result<(), String> {
    flags.check_known(&[
        "grpc",
        "admin",
        "pid",
        "count",
        "hold",
        "probe-every",
        "probe-timeout",
        "connect-timeout",
        "connect-concurrency",
    ])?;
    let grpc = flags.text("grpc")?;
    let admin = flags.text("admin")?;
    let pid = u32::try_from(flags.number("pid", 0)?).map_err(|e| e.to_string())?;
    let count = flags.number("count", 1100)?;
    let hold = flags.secs("hold", 20)?;
    let probe_every = flags.secs("probe-every", 2)?.max(Duration::from_secs(1));
    let probe_timeout = flags.secs("probe-timeout", 2)?;
    let connect_timeout = flags.secs("connect-timeout", 3)?;
    let concurrency = flags
        .number("connect-concurrency", count * 2)?
        .clamp(1, 100_000) as usize;
    let baseline_fds = fd_count(pid).ok_or_else(|| format!("cannot read /proc/{pid}/fd"))?;
    let limit = fd_limit(pid).unwrap_or_else(|| "?".to_owned());

    let origin = Instant::now();
    let sampler = Sampler::start(pid, origin, fd_count);
    // The connection made before the flood, with one call on it to prove it works.
    let kept = SessionServiceClient::new(connect(&grpc, probe_timeout).await?);
    let mut probes = Probes::default();
    probe_round(&grpc, &admin, &kept, probe_timeout, origin, &mut probes).await;
    let before_ok = probes
        .fresh
        .iter()
        .chain(&probes.kept)
        .chain(&probes.health)
        .all(|c| c.result.is_ok());

    let stop = CancellationToken::new();
    let permits = Arc::new(Semaphore::new(concurrency));
    let grpc_flood = Arc::new(Flood::default());
    let admin_flood = Arc::new(Flood::default());
    let flood_started = origin.elapsed().as_secs_f64();
    let mut flooders = JoinSet::new();
    for i in 0..count * 2 {
        let (target, flood) = if i % 2 == 0 {
            (grpc.clone(), grpc_flood.clone())
        } else {
            (admin.clone(), admin_flood.clone())
        };
        flooders.spawn(idle_connection(
            target,
            flood,
            origin,
            connect_timeout,
            permits.clone(),
            stop.clone(),
        ));
    }
    // Every connect is bounded by connect_timeout, at most `concurrency` at a time.
    let all_attempted = async {
        loop {
            let attempted = grpc_flood.connected.load(Ordering::Relaxed)
                + admin_flood.connected.load(Ordering::Relaxed)
                + grpc_flood
                    .connect_failed
                    .lock()
                    .unwrap()
                    .values()
                    .sum::<u64>()
                + admin_flood
                    .connect_failed
                    .lock()
                    .unwrap()
                    .values()
                    .sum::<u64>();
            if attempted >= count * 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let bound = connect_timeout * ((count * 2).div_ceil(concurrency as u64) as u32 + 1);
    let _ = tokio::time::timeout(bound, all_attempted).await;
    let flood_done = origin.elapsed().as_secs_f64();
    let fds_at_flood_done = fd_count(pid);

    let hold_end = tokio::time::Instant::now() + hold;
    while tokio::time::Instant::now() + probe_timeout <= hold_end {
        let round_started = tokio::time::Instant::now();
        probe_round(&grpc, &admin, &kept, probe_timeout, origin, &mut probes).await;
        tokio::time::sleep_until((round_started + probe_every).min(hold_end)).await;
    }
    tokio::time::sleep_until(hold_end).await;
    let held_until = origin.elapsed().as_secs_f64();
    let fds_at_hold_end = fd_count(pid);
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while flooders.join_next().await.is_some() {}
    })
    .await;
    flooders.abort_all();
    let released_at = origin.elapsed().as_secs_f64();
    // Recovery: the gateway gets 2 s to notice the closed connections, then the same probes once more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut recovery = Probes::default();
    probe_round(&grpc, &admin, &kept, probe_timeout, origin, &mut recovery).await;
    let fds_after = fd_count(pid);
    let samples = sampler.finish();

    let (peak_at, peak_fds) = peak(&samples);
    println!("== gateway file descriptors (pid {pid}, soft limit {limit}, counted every 500 ms)");
    println!("before the flood:               {baseline_fds}");
    println!(
        "all {} connects attempted at t={flood_done:.1}s (flood from t={flood_started:.1}s): {}",
        count * 2,
        fds_at_flood_done.map_or("?".to_owned(), |n| n.to_string())
    );
    println!("peak:                           {peak_fds}, first reached at t={peak_at:.1}s");
    println!(
        "end of the hold (t={held_until:.1}s):        {}",
        fds_at_hold_end.map_or("?".to_owned(), |n| n.to_string())
    );
    println!(
        "2 s after the flood was released (t={released_at:.1}s): {}",
        fds_after.map_or("gone".to_owned(), |n| n.to_string())
    );
    println!(
        "idle connections the gateway held at the peak (peak - before): {}",
        peak_fds.saturating_sub(baseline_fds)
    );
    let timeline: Vec<String> = samples
        .iter()
        .step_by(2)
        .map(|(t, n)| format!("{t:.0}s:{n}"))
        .collect();
    println!("timeline (t:fds, every 1 s): {}", timeline.join(" "));

    println!(
        "== idle connections ({count} to each port, nothing sent, held {}s after the last connect)",
        hold.as_secs()
    );
    let (grpc_connected, grpc_closed) = flood_report("gRPC port", &grpc_flood, count, flood_done);
    let (admin_connected, admin_closed) =
        flood_report("admin port", &admin_flood, count, flood_done);

    println!(
        "== probes every {}s while the flood was held (each bounded by {}s); the first round ran before the flood",
        probe_every.as_secs(),
        probe_timeout.as_secs()
    );
    println!(
        "before the flood: {}",
        if before_ok { "all ok" } else { "FAILED" }
    );
    let during = |calls: &[Call]| -> Vec<Call> {
        calls
            .iter()
            .filter(|c| c.at >= flood_started)
            .cloned()
            .collect()
    };
    let (fresh_n, fresh_failed, fresh_max) =
        summarize_calls("CreateSession, fresh connection", &during(&probes.fresh));
    let (kept_n, kept_failed, kept_max) = summarize_calls(
        "CreateSession, connection from before the flood",
        &during(&probes.kept),
    );
    let (health_n, health_failed, health_max) =
        summarize_calls("GET /healthz, fresh connection", &during(&probes.health));
    println!("== recovery: the same probes 2 s after the flood was released");
    summarize_calls("CreateSession, fresh connection", &recovery.fresh);
    summarize_calls(
        "CreateSession, connection from before the flood",
        &recovery.kept,
    );
    summarize_calls("GET /healthz, fresh connection", &recovery.health);
    let recovered = recovery
        .fresh
        .iter()
        .chain(&recovery.kept)
        .chain(&recovery.health)
        .all(|c| c.result.is_ok());

    println!("FIGURE fd_limit={limit}");
    println!("FIGURE fds_before={baseline_fds}");
    println!("FIGURE fds_peak={peak_fds}");
    println!(
        "FIGURE held_at_peak={}",
        peak_fds.saturating_sub(baseline_fds)
    );
    println!("FIGURE grpc_connected={grpc_connected}");
    println!("FIGURE grpc_closed={grpc_closed}");
    println!("FIGURE admin_connected={admin_connected}");
    println!("FIGURE admin_closed={admin_closed}");
    println!("FIGURE before_ok={}", u8::from(before_ok));
    println!("FIGURE fresh_calls={fresh_n}");
    println!("FIGURE fresh_failed={fresh_failed}");
    println!("FIGURE fresh_max_ms={fresh_max}");
    println!("FIGURE kept_calls={kept_n}");
    println!("FIGURE kept_failed={kept_failed}");
    println!("FIGURE kept_max_ms={kept_max}");
    println!("FIGURE healthz_calls={health_n}");
    println!("FIGURE healthz_failed={health_failed}");
    println!("FIGURE healthz_max_ms={health_max}");
    println!("FIGURE recovered={}", u8::from(recovered));
    Ok(())
}
