//! One shutdown path for every component: the first SIGINT/SIGTERM cancels the token so servers
//! stop accepting, report NOT_SERVING and drain; a second signal exits at once.

use tokio_util::sync::CancellationToken;

/// A cloneable handle that tells every task of a process when to stop.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels this handle on the first SIGINT or SIGTERM; exits the process on the second.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let token = shutdown.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested, draining (signal again to exit now)");
            token.cancel();
            wait_for_signal().await;
            tracing::warn!("second signal, exiting now");
            std::process::exit(130);
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers; only a kill will stop this process");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
