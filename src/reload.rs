//! Rotation without a restart: files holding secrets (`--client-secret-file`, `--caller-tokens-file`) are re-read
//! every [`RELOAD_INTERVAL`]; a changed file that parses replaces the value used by new calls (calls in flight keep
//! theirs), and one that does not is logged and ignored, keeping the previous value. Polling, rather than inotify,
//! also sees Kubernetes' atomic symlink swaps of Secret volumes.

use std::{path::PathBuf, time::Duration};

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often watched files are re-read (new values are in use within this, well under 5 s).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Watches `path`, handing each new, valid content to `apply` until `stop` is cancelled. `what` names the setting
/// in logs; the content itself is never logged.
pub fn watch_file<T, P, A>(
    what: &'static str,
    path: PathBuf,
    interval: Duration,
    parse: P,
    apply: A,
    stop: CancellationToken,
) -> JoinHandle<()>
where
    T: Send + 'static,
    P: Fn(&[u8]) -> Result<T, String> + Send + 'static,
    A: Fn(T) -> Result<(), String> + Send + 'static,
{
    tokio::spawn(async move {
        let mut last: Option<[u8; 32]> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let content = match tokio::fs::read(&path).await {
                Ok(content) => content,
                Err(error) => {
                    tracing::warn!(setting = what, path = %path.display(), error = %error.kind(), "cannot read; keeping the previous value");
                    continue;
                }
            };
            let digest: [u8; 32] = Sha256::digest(&content).into();
            if last == Some(digest) {
                continue;
            }
            let first = last.is_none();
            last = Some(digest);
            match parse(&content).and_then(&apply) {
                Ok(()) if first => {
                    tracing::debug!(setting = what, path = %path.display(), "watching for changes")
                }
                Ok(()) => {
                    tracing::info!(setting = what, path = %path.display(), "reloaded; new calls use the new value")
                }
                Err(problem) => {
                    tracing::warn!(setting = what, path = %path.display(), %problem, "invalid new content ignored; keeping the previous value")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn changes_are_applied_and_bad_content_is_ignored() {
        let path = std::env::temp_dir().join(format!("kgen-reload-{}", std::process::id()));
        std::fs::write(&path, "one").unwrap();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = CancellationToken::new();
        let sink = seen.clone();
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
        std::fs::write(&path, "two").unwrap();
        wait_for(2).await;
        stop.cancel();
        task.await.unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["one".to_owned(), "two".to_owned()]
        );
    }
}
