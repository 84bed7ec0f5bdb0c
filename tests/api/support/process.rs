//! The real `kgen-gateway` binary as a child process with JSON logs: started on port 0 (the address is read from
//! the log line announcing it) and stopped with SIGTERM.

use std::{net::SocketAddr, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStderr},
};

use super::wait::bounded;

pub const BIN: &str = env!("CARGO_BIN_EXE_kgen-gateway");

/// What every gateway started by [`RunningBinary::gateway`] is given.
const GATEWAY_ARGS: [&str; 6] = [
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "127.0.0.1:0",
    "--log-format",
    "json",
];

pub struct RunningBinary {
    child: Child,
    lines: Lines<BufReader<ChildStderr>>,
    /// The address it announced.
    pub addr: SocketAddr,
    /// Log lines read so far (each one JSON object).
    pub logs: Vec<String>,
}

impl RunningBinary {
    /// Starts the gateway with `args` and waits until it serves. Both listeners on loopback port 0 and JSON logs
    /// (what `start` reads) are given here, so no test can forget one and collide on a default port.
    pub async fn gateway(args: &[&str], env: &[(&str, &str)]) -> RunningBinary {
        let args: Vec<&str> = GATEWAY_ARGS.iter().chain(args).copied().collect();
        Self::start(&args, env, |event| {
            event["message"] == "kgen-gateway serving gRPC"
        })
        .await
    }

    /// Starts `kgen-gateway sandbox` and waits until it listens.
    pub async fn sandbox(args: &[&str]) -> RunningBinary {
        Self::start(args, &[], |event| event["addr"].is_string()).await
    }

    async fn start(
        args: &[&str],
        env: &[(&str, &str)],
        announces: impl Fn(&serde_json::Value) -> bool,
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
                let event: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
                logs.push(line);
                if announces(&event) {
                    return event["addr"]
                        .as_str()
                        .expect("addr field")
                        .parse()
                        .expect("socket address");
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
