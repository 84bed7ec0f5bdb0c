//! A load generator for kgen-gateway's benchmarks (see BENCHMARKS.md): closed loop at a fixed concurrency, or open
//! loop at a fixed rate (latency measured from each call's scheduled start, so a stall is not hidden), reporting
//! throughput, latency percentiles, errors by code, and the CPU time per call of the processes under test.
//!
//! ```text
//! loadgen --scenario gateway|echo|direct --target HOST:PORT [--concurrency 64] [--connections 4]
//!         [--rate CALLS_PER_SEC] [--duration 10] [--warmup 2] [--user-id bench-user] [--pid NAME=PID ...]
//! ```
//! - `gateway` / `echo`: gRPC `CreateSession` (to kgen-gateway, or to the `echo_floor` example);
//! - `direct`: the same call as REST/JSON straight to the upstream (`kgen-gateway sandbox`), what a caller pays
//!   anyway.
//!
//! After the human-readable lines comes one machine-readable line, the same figures as `KEY=VALUE` fields on a line
//! starting with `FIGURE` (read by `scripts/bench-report.sh` and `scripts/bench-charts.py`; keys are only ever
//! added):
//! ```text
//! FIGURE scenario=gateway mode=closed concurrency=64 rate=0 connections=4 calls=… ok=… errors=… not_sent=0
//!        calls_per_s=… p50_us=… p90_us=… p99_us=… p999_us=… max_us=… cpu_us_per_call.gateway=… cpu_us_per_call.loadgen=…
//! ```
//! (one line; `rate=0` in a closed loop; one `cpu_us_per_call.NAME` per `--pid NAME=PID`, `loadgen` being itself).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};
use tonic::transport::Channel;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Gateway,
    Echo,
    Direct,
}

impl Scenario {
    /// The name `--scenario` takes, used in the `FIGURE` line.
    fn name(self) -> &'static str {
        match self {
            Scenario::Gateway => "gateway",
            Scenario::Echo => "echo",
            Scenario::Direct => "direct",
        }
    }
}

/// A `--pid` name as a `FIGURE` key: `loadgen itself` is `loadgen`; anything but letters, digits, `_` and `-`
/// becomes `_`, so that the line stays whitespace-separated `KEY=VALUE` fields.
fn figure_key(name: &str) -> String {
    name.strip_suffix(" itself")
        .unwrap_or(name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

struct Args {
    scenario: Scenario,
    target: String,
    concurrency: usize,
    connections: usize,
    rate: Option<u64>,
    duration: Duration,
    warmup: Duration,
    user_id: String,
    pids: Vec<(String, u32)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        scenario: Scenario::Gateway,
        target: String::new(),
        concurrency: 64,
        connections: 4,
        rate: None,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        user_id: "bench-user".to_owned(),
        pids: Vec::new(),
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let value = raw
            .get(i + 1)
            .ok_or_else(|| format!("{} needs a value", raw[i]))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{}: not a number: {v}", raw[i]))
        };
        match raw[i].as_str() {
            "--scenario" => {
                args.scenario = match value.as_str() {
                    "gateway" => Scenario::Gateway,
                    "echo" => Scenario::Echo,
                    "direct" => Scenario::Direct,
                    other => return Err(format!("unknown scenario {other}")),
                }
            }
            "--target" => args.target = value.clone(),
            "--concurrency" => args.concurrency = number(value)?.max(1) as usize,
            "--connections" => args.connections = number(value)?.max(1) as usize,
            "--rate" => args.rate = Some(number(value)?.max(1)),
            "--duration" => args.duration = Duration::from_secs(number(value)?.max(1)),
            "--warmup" => args.warmup = Duration::from_secs(number(value)?),
            "--user-id" => args.user_id = value.clone(),
            "--pid" => {
                let (name, pid) = value.split_once('=').ok_or("--pid takes NAME=PID")?;
                args.pids.push((
                    name.to_owned(),
                    pid.parse().map_err(|_| "--pid takes NAME=PID")?,
                ));
            }
            other => return Err(format!("unknown flag {other}")),
        }
        i += 2;
    }
    if args.target.is_empty() {
        return Err("--target HOST:PORT is required".to_owned());
    }
    Ok(args)
}

/// One kind of call, cheap to clone per worker.
#[derive(Clone)]
enum Caller {
    Grpc(Vec<SessionServiceClient<Channel>>),
    Rest {
        client: reqwest::Client,
        url: String,
        body: Arc<str>,
    },
}

impl Caller {
    async fn new(args: &Args) -> Result<Caller, String> {
        match args.scenario {
            Scenario::Gateway | Scenario::Echo => {
                let mut clients = Vec::new();
                for _ in 0..args.connections {
                    let channel = Channel::from_shared(format!("http://{}", args.target))
                        .map_err(|e| e.to_string())?
                        .tcp_nodelay(true)
                        .connect()
                        .await
                        .map_err(|e| format!("cannot connect to {}: {e}", args.target))?;
                    clients.push(SessionServiceClient::new(channel));
                }
                Ok(Caller::Grpc(clients))
            }
            Scenario::Direct => Ok(Caller::Rest {
                client: reqwest::Client::builder()
                    .pool_max_idle_per_host(args.concurrency)
                    .tcp_nodelay(true)
                    .build()
                    .map_err(|e| e.to_string())?,
                url: format!("http://{}/s2s/session/", args.target),
                body: serde_json::json!({ "user_id": args.user_id })
                    .to_string()
                    .into(),
            }),
        }
    }

    /// Makes one call; `Err` names the failure (gRPC code or HTTP status).
    async fn call(&self, worker: usize, user_id: &str) -> Result<(), String> {
        match self {
            Caller::Grpc(clients) => {
                let mut client = clients[worker % clients.len()].clone();
                let request = CreateSessionRequest {
                    user_id: user_id.to_owned(),
                };
                client
                    .create_session(request)
                    .await
                    .map(drop)
                    .map_err(|s| format!("{:?}", s.code()))
            }
            Caller::Rest { client, url, body } => {
                let response = client
                    .post(url)
                    .header("x-client-id", "sandbox-client")
                    .header("x-client-secret", "sandbox-secret")
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .map_err(|e| format!("transport: {e}"))?;
                let status = response.status();
                let _ = response.bytes().await.map_err(|e| format!("body: {e}"))?;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", status.as_u16()))
                }
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant, valid bounds")
}

fn record(
    hist: &mut Histogram<u64>,
    tally: &mut Tally,
    elapsed: Duration,
    outcome: Result<(), String>,
) {
    let _ = hist.record(
        u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .max(1),
    );
    match outcome {
        Ok(()) => tally.ok += 1,
        Err(code) => *tally.errors.entry(code).or_default() += 1,
    }
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields overall.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

async fn closed_loop(args: &Args, caller: &Caller, run_for: Duration) -> (Histogram<u64>, Tally) {
    let until = Instant::now() + run_for;
    let results = Arc::new(Mutex::new((histogram(), Tally::default())));
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (caller, user_id, results) = (caller.clone(), args.user_id.clone(), results.clone());
        workers.push(tokio::spawn(async move {
            let (mut hist, mut tally) = (histogram(), Tally::default());
            while Instant::now() < until {
                let started = Instant::now();
                let outcome = caller.call(worker, &user_id).await;
                record(&mut hist, &mut tally, started.elapsed(), outcome);
            }
            if let Ok(mut shared) = results.lock() {
                let _ = shared.0.add(&hist);
                shared.1.ok += tally.ok;
                for (code, n) in tally.errors {
                    *shared.1.errors.entry(code).or_default() += n;
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let mut shared = results
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (
        std::mem::replace(&mut shared.0, histogram()),
        std::mem::take(&mut shared.1),
    )
}

async fn open_loop(
    args: &Args,
    caller: &Caller,
    rate: u64,
    run_for: Duration,
) -> (Histogram<u64>, Tally, u64) {
    const MAX_IN_FLIGHT: usize = 20_000;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let total = (run_for.as_secs_f64() * rate as f64) as u64;
    let results = Arc::new(Mutex::new((histogram(), Tally::default())));
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut dropped = 0;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled).await;
        if in_flight.load(std::sync::atomic::Ordering::Relaxed) >= MAX_IN_FLIGHT {
            dropped += 1;
            continue;
        }
        in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (caller, user_id, results, in_flight) = (
            caller.clone(),
            args.user_id.clone(),
            results.clone(),
            in_flight.clone(),
        );
        let worker = n as usize;
        tasks.spawn(async move {
            let outcome = caller.call(worker, &user_id).await;
            // From the scheduled start: a slow gateway cannot hide its stalls by slowing the generator.
            let elapsed = scheduled.elapsed();
            if let Ok(mut shared) = results.lock() {
                let (hist, tally) = &mut *shared;
                record(hist, tally, elapsed, outcome);
            }
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut shared = results
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    (
        std::mem::replace(&mut shared.0, histogram()),
        std::mem::take(&mut shared.1),
        dropped,
    )
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("loadgen: {problem}");
            std::process::exit(2);
        }
    };
    let caller = match Caller::new(&args).await {
        Ok(caller) => caller,
        Err(problem) => {
            eprintln!("loadgen: {problem}");
            std::process::exit(1);
        }
    };
    if !args.warmup.is_zero() {
        match args.rate {
            Some(rate) => drop(open_loop(&args, &caller, rate, args.warmup).await),
            None => drop(closed_loop(&args, &caller, args.warmup).await),
        }
    }
    let mut pids = args.pids.clone();
    pids.push(("loadgen itself".to_owned(), std::process::id()));
    let cpu_before: Vec<Option<f64>> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let started = Instant::now();
    let (hist, tally, dropped) = match args.rate {
        Some(rate) => open_loop(&args, &caller, rate, args.duration).await,
        None => {
            let (hist, tally) = closed_loop(&args, &caller, args.duration).await;
            (hist, tally, 0)
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let calls = tally.ok + tally.errors.values().sum::<u64>();
    let mode = match args.rate {
        Some(rate) => format!("open loop at {rate}/s"),
        None => format!("closed loop, concurrency {}", args.concurrency),
    };
    let q = |p: f64| hist.value_at_quantile(p);
    println!(
        "{:?} {} ({mode}, {} connections): {calls} calls in {wall:.1} s = {:.0} calls/s; latency µs p50 {} p90 {} p99 {} p99.9 {} max {}; ok {}, errors {:?}{}",
        args.scenario,
        args.target,
        args.connections,
        calls as f64 / wall,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        hist.max(),
        tally.ok,
        tally.errors,
        if dropped > 0 { format!(", {dropped} not sent (over 20,000 in flight)") } else { String::new() },
    );
    let mut figure = format!(
        "FIGURE scenario={} mode={} concurrency={} rate={} connections={} calls={calls} ok={} errors={} not_sent={dropped} calls_per_s={:.0} p50_us={} p90_us={} p99_us={} p999_us={} max_us={}",
        args.scenario.name(),
        if args.rate.is_some() { "open" } else { "closed" },
        args.concurrency,
        args.rate.unwrap_or(0),
        args.connections,
        tally.ok,
        calls - tally.ok,
        calls as f64 / wall,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        hist.max(),
    );
    for ((name, pid), before) in pids.iter().zip(cpu_before) {
        if let (Some(before), Some(after)) = (before, cpu_seconds(*pid)) {
            let per_call = (after - before) * 1e6 / calls.max(1) as f64;
            println!(
                "  cpu {name} (pid {pid}): {:.2} s over the run = {per_call:.1} µs per call",
                after - before
            );
            let _ = write!(
                figure,
                " cpu_us_per_call.{}={per_call:.1}",
                figure_key(name)
            );
        }
    }
    println!("{figure}");
}
