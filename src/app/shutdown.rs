//! The stop signal: SIGTERM or SIGINT (Ctrl-C), with its handlers installed before the process says it serves.

use std::future::Future;

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, not when the
/// future is first polled: a signal that arrives between start-up and the first poll still stops the process
/// gracefully instead of killing it. Call it inside the runtime, before announcing that the process is serving.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => {
                tracing::warn!("cannot install SIGTERM/SIGINT handlers; falling back to Ctrl-C");
                None
            }
        }
    };
    async move {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = handlers {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            return;
        }
        if tokio::signal::ctrl_c().await.is_err() {
            // No way to be told to stop: serve until killed.
            std::future::pending::<()>().await;
        }
    }
}
