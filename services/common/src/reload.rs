//! Settings read from files that change in place (a rotated certificate, a new signing key in a
//! JWKS, a Secret updated by Kubernetes): looked at every few seconds and read again when a
//! file's modification time or size changed, for as long as anything holds them.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, Weak},
    time::{Duration, SystemTime},
};

/// What `load` built from the files last, read again when they change.
pub struct Reloaded<T> {
    current: Arc<RwLock<T>>,
}

impl<T> Clone for Reloaded<T> {
    fn clone(&self) -> Self {
        Self {
            current: self.current.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> Reloaded<T> {
    /// Loads now (an error stops the caller) and again after every change to `files`, looked at
    /// every `every`. A change that does not load (a key written before its certificate, say)
    /// keeps what is in use, is logged, and is tried again at the next look. Must be called
    /// within a tokio runtime.
    pub fn start<E: std::fmt::Display + 'static>(
        what: &'static str,
        files: Vec<PathBuf>,
        every: Duration,
        load: impl Fn() -> Result<T, E> + Send + 'static,
    ) -> Result<Self, E> {
        let current = Arc::new(RwLock::new(load()?));
        tokio::spawn(watch(what, files, Arc::downgrade(&current), every, load));
        Ok(Self { current })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        // A poisoned lock still holds a whole value: only a finished load is stored.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn watch<T, E: std::fmt::Display>(
    what: &'static str,
    files: Vec<PathBuf>,
    current: Weak<RwLock<T>>,
    every: Duration,
    load: impl Fn() -> Result<T, E>,
) {
    let mut seen = stamps(&files);
    loop {
        tokio::time::sleep(every).await;
        let Some(current) = current.upgrade() else {
            return;
        };
        let now = stamps(&files);
        if now == seen {
            continue;
        }
        match load() {
            Ok(loaded) => {
                *current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                seen = now;
                tracing::info!(what, "files changed: using them from now on");
            }
            Err(error) => {
                tracing::warn!(what, %error, "files changed but do not load; keeping the ones in use");
            }
        }
    }
}

type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    let stamp = |path: &Path| {
        let metadata = std::fs::metadata(path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    };
    files.iter().map(|path| stamp(path)).collect()
}
