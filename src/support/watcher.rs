//! The one file watcher: rotation without a restart for every file the gateway reads at start-up and may be
//! changed under it (`--client-secret-file`, `--caller-tokens-file`, `--tenants-file` and the secret files it
//! names).
//!
//! A watched file is re-read every [`RELOAD_INTERVAL`]. New content that loads is handed to its owner, which says
//! whether anything changed (calls in flight keep the old value, new calls get the new one); content that does not
//! load is logged once per distinct problem and ignored, keeping the previous value. Polling, rather than inotify,
//! also sees Kubernetes' atomic symlink swaps of Secret volumes. Contents are never logged.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often watched files are re-read (new values are in use within this, well under 5 s).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Told after every read of a watched file whether its newest content is refused (`true`: the previous value stays in
/// force) or in force (`false`), for a metric an alert can watch.
pub type ReloadReport = Arc<dyn Fn(bool) + Send + Sync>;

/// What applying freshly loaded content came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// Nothing in force changed (the content is the same, or describes the same thing).
    Unchanged,
    /// New calls use the new value; the text says what changed (never a secret), for the log.
    Changed(String),
}

/// Watches `path` until `stop` is cancelled: every `interval`, `load` reads it (on the blocking pool, so it may
/// read further files) and `apply` puts what it loaded in force; `report` is told whether that failed. `what` names
/// the setting in logs.
pub fn watch<T, L, A>(
    what: &'static str,
    path: PathBuf,
    interval: Duration,
    load: L,
    mut apply: A,
    report: ReloadReport,
    stop: CancellationToken,
) -> JoinHandle<()>
where
    T: Send + 'static,
    L: Fn(&Path) -> Result<T, String> + Send + Sync + 'static,
    A: FnMut(T) -> Result<Reloaded, String> + Send + 'static,
{
    let load = Arc::new(load);
    tokio::spawn(async move {
        let mut last_problem: Option<String> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let (load, at) = (load.clone(), path.clone());
            let outcome = tokio::task::spawn_blocking(move || load(&at))
                .await
                .unwrap_or_else(|e| Err(format!("reload task failed: {e}")))
                .and_then(&mut apply);
            report(outcome.is_err());
            match outcome {
                Ok(Reloaded::Unchanged) => last_problem = None,
                Ok(Reloaded::Changed(changes)) => {
                    last_problem = None;
                    tracing::info!(setting = what, path = %path.display(), %changes, "reloaded; new calls use the new value");
                }
                Err(problem) => {
                    if last_problem.as_deref() != Some(problem.as_str()) {
                        tracing::warn!(setting = what, path = %path.display(), %problem, "new content ignored; keeping the previous value");
                        last_problem = Some(problem);
                    }
                }
            }
        }
    })
}

/// [`watch`] for a file that stands alone: `parse` turns its bytes into a value and `apply` puts it in force, only
/// when the bytes changed (the first read sets the baseline; it is applied too, as the value read at start-up).
/// Bytes that were refused (by `parse` or `apply`) are not parsed again until they change, but stay refused: each
/// read reports the same problem (logged once), so `report` says "refused" for as long as they are in the file.
pub fn watch_file<T, P, A>(
    what: &'static str,
    path: PathBuf,
    interval: Duration,
    parse: P,
    apply: A,
    report: ReloadReport,
    stop: CancellationToken,
) -> JoinHandle<()>
where
    T: Send + 'static,
    P: Fn(&[u8]) -> Result<T, String> + Send + Sync + 'static,
    A: Fn(T) -> Result<(), String> + Send + 'static,
{
    // The digest of the bytes last read, and why they were refused if they were: unchanged bytes are neither parsed
    // nor applied again.
    let last: Arc<Mutex<Option<LastRead>>> = Arc::default();
    let refused = last.clone();
    watch(
        what,
        path,
        interval,
        move |path| {
            let content = std::fs::read(path).map_err(|e| format!("cannot read: {}", e.kind()))?;
            let digest: [u8; 32] = Sha256::digest(&content).into();
            let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
            match last.as_ref() {
                Some(read) if read.digest == digest => match &read.problem {
                    Some(problem) => Err(problem.clone()),
                    None => Ok(None),
                },
                previous => {
                    let first = previous.is_none();
                    let parsed = parse(&content);
                    *last = Some(LastRead {
                        digest,
                        problem: parsed.as_ref().err().cloned(),
                    });
                    parsed.map(|value| Some((first, value)))
                }
            }
        },
        move |loaded| {
            let Some((first, value)) = loaded else {
                return Ok(Reloaded::Unchanged);
            };
            if let Err(problem) = apply(value) {
                if let Some(read) = refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                {
                    read.problem = Some(problem.clone());
                }
                return Err(problem);
            }
            Ok(if first {
                Reloaded::Unchanged
            } else {
                Reloaded::Changed("new content".to_owned())
            })
        },
        report,
        stop,
    )
}

/// What [`watch_file`] last read: the digest of the bytes, and why they were refused, if they were.
struct LastRead {
    digest: [u8; 32],
    problem: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_are_applied_and_bad_content_is_ignored_and_reported() {
        let path = std::env::temp_dir().join(format!("kgen-reload-{}", std::process::id()));
        std::fs::write(&path, "one").unwrap();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = CancellationToken::new();
        let sink = seen.clone();
        let reports = Arc::new(Mutex::new(Vec::<bool>::new()));
        let reports_sink = reports.clone();
        let task = watch_file(
            "test value",
            path.clone(),
            Duration::from_millis(10),
            |bytes| {
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| "not UTF-8".to_owned())?;
                if text.is_empty() {
                    Err("empty".to_owned())
                } else {
                    Ok(text)
                }
            },
            move |value| {
                sink.lock().unwrap().push(value);
                Ok(())
            },
            Arc::new(move |failing| reports_sink.lock().unwrap().push(failing)),
            stop.clone(),
        );
        let wait_for = |n: usize| {
            let seen = seen.clone();
            async move {
                for _ in 0..500 {
                    if seen.lock().unwrap().len() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        };
        wait_for(1).await;
        std::fs::write(&path, "").unwrap(); // invalid: ignored
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Read several times meanwhile (every 10 ms), it is still refused each time, not only the first.
        {
            let reports = reports.lock().unwrap();
            let since_refused: Vec<bool> = reports
                .iter()
                .copied()
                .skip_while(|failing| !failing)
                .collect();
            assert!(since_refused.len() >= 2, "{reports:?}");
            assert!(since_refused.iter().all(|failing| *failing), "{reports:?}");
        }
        std::fs::write(&path, "two").unwrap();
        wait_for(2).await;
        stop.cancel();
        task.await.unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["one".to_owned(), "two".to_owned()]
        );
        // The empty content was reported as refused, and the good content after it as in force again.
        let reports = reports.lock().unwrap();
        assert!(reports.contains(&true), "{reports:?}");
        assert_eq!(reports.last(), Some(&false), "{reports:?}");
    }
}
