//! The real `kgen-gateway` binary as a child process, with JSON logs (text logs on request): started on port 0 (the
//! address is read from the log line announcing it) and stopped with SIGTERM.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStderr},
};

use super::wait::bounded;

pub const BIN: &str = env!("CARGO_BIN_EXE_kgen-gateway");

/// What every gateway started by [`RunningBinary::gateway`] is given: both listeners on loopback port 0.
const GATEWAY_ARGS: [&str; 4] = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];

pub struct RunningBinary {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    /// The address it announced.
    pub addr: SocketAddr,
    /// Log lines read so far (each one JSON object, unless started by [`RunningBinary::gateway_with_text_logs`]).
    pub logs: Vec<String>,
}

impl RunningBinary {
    /// Starts the gateway with `args` and waits until it serves. Both listeners on loopback port 0 and JSON logs
    /// (what `start` reads) are given here, so no test can forget one and collide on a default port.
    pub async fn gateway(args: &[&str], env: &[(&str, &str)]) -> RunningBinary {
        let args: Vec<&str> = GATEWAY_ARGS
            .iter()
            .chain(&["--log-format", "json"])
            .chain(args)
            .copied()
            .collect();
        Self::start(&args, env, |line| {
            let event = json(line);
            (event["message"] == "kgen-gateway serving gRPC")
                .then(|| event["addr"].as_str().expect("addr field").to_owned())
        })
        .await
    }

    /// [`RunningBinary::gateway`] with the default text logs, the format people read.
    pub async fn gateway_with_text_logs(args: &[&str], env: &[(&str, &str)]) -> RunningBinary {
        let args: Vec<&str> = GATEWAY_ARGS.iter().chain(args).copied().collect();
        Self::start(&args, env, |line| {
            line.contains("kgen-gateway serving gRPC").then(|| {
                let (_, rest) = line.split_once(" addr=").expect("an addr field");
                rest.split_whitespace().next().expect("a value").to_owned()
            })
        })
        .await
    }

    /// Starts `kgen-gateway sandbox` and waits until it listens.
    pub async fn sandbox(args: &[&str]) -> RunningBinary {
        Self::start(args, &[], |line| {
            json(line)["addr"].as_str().map(str::to_owned)
        })
        .await
    }

    /// Starts the binary and reads its log lines until `announces` finds the address it serves on in one.
    async fn start(
        args: &[&str],
        env: &[(&str, &str)],
        announces: impl Fn(&str) -> Option<String>,
    ) -> RunningBinary {
        let mut command = tokio::process::Command::new(BIN);
        command.args(args).env_remove("RUST_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("binary starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let mut logs = Vec::new();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("stderr readable") {
                let addr = announces(&line);
                logs.push(line);
                if let Some(addr) = addr {
                    return addr.parse().expect("socket address");
                }
            }
            panic!("the binary exited before serving: {logs:?}");
        })
        .await
        .expect("serving within 30 s");
        RunningBinary {
            child,
            lines,
            addr,
            logs,
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns its code with every log line.
    pub async fn stop(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().expect("still running").to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits within 15 s after SIGTERM")
            .expect("exit status");
        bounded("the stopped binary's stderr to close", async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                self.logs.push(line);
            }
        })
        .await;
        (status.code(), self.logs)
    }
}

/// A JSON log line, parsed.
fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"))
}
