//! Bounds on the waits of the support code: a gateway that hangs fails the test that met it, naming what was
//! awaited, instead of hanging the whole run.

use std::{future::Future, time::Duration};

/// How long a helper waits for one thing (a call to be answered, a connection, a stand-in's report, a stream to
/// end): far longer than any of them takes against a working gateway, so it only ever ends a hang.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `future`, or panics naming `what` once [`PATIENCE`] has passed.
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(output) => output,
        Err(_) => panic!("gave up after {PATIENCE:?} waiting for {what}"),
    }
}

/// Calls until `check` passes or 5 s pass (watched files are polled every second). A single check that does not
/// return within [`PATIENCE`] fails the test.
pub async fn within_5s<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if bounded("a check of within_5s to return", check()).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
