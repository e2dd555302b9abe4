//! A component's health as Kubernetes sees it (`grpc.health.v1`): SERVING while its work flows;
//! NOT_SERVING while a consumer group sits on lag it does not commit, or while its outbox cannot
//! publish, for longer than a bound, and from the start of shutdown on. Watchers report faults by
//! source; the status is SERVING when no source has one.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use tonic_health::{
    ServingStatus,
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};

#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    component: &'static str,
    reporter: HealthReporter,
    /// The API's fully-qualified name, once the server runs.
    api: Mutex<Option<&'static str>>,
    /// Source -> what is wrong there.
    faults: Mutex<BTreeMap<String, String>>,
    draining: AtomicBool,
    /// Serializes status updates so a stale one never lands after a newer one.
    publishing: tokio::sync::Mutex<()>,
}

impl Health {
    pub fn new(component: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                component,
                reporter: HealthReporter::new(),
                api: Mutex::default(),
                faults: Mutex::default(),
                draining: AtomicBool::new(false),
                publishing: tokio::sync::Mutex::default(),
            }),
        }
    }

    /// The `grpc.health.v1.Health` service answering from this state.
    pub fn service(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(
            self.inner.reporter.clone(),
        ))
    }

    /// Called when the server starts serving `api`.
    pub async fn serving(&self, api: &'static str) {
        if let Ok(mut current) = self.inner.api.lock() {
            *current = Some(api);
        }
        self.publish().await;
    }

    /// Records that `source` is faulty (`Some(why)`) or fine again (`None`).
    pub async fn report(&self, source: &str, fault: Option<String>) {
        let changed = {
            let Ok(mut faults) = self.inner.faults.lock() else {
                return;
            };
            match fault {
                Some(why) => {
                    let changed = faults.get(source) != Some(&why);
                    if !faults.contains_key(source) {
                        tracing::warn!(
                            component = self.inner.component,
                            source,
                            why,
                            "unhealthy: reporting NOT_SERVING"
                        );
                    }
                    faults.insert(source.to_owned(), why);
                    changed
                }
                None => {
                    let healed = faults.remove(source).is_some();
                    if healed {
                        tracing::info!(component = self.inner.component, source, "healthy again");
                    }
                    healed
                }
            }
        };
        if changed {
            self.publish().await;
        }
    }

    /// Shutdown: NOT_SERVING for good, so load balancers stop sending work.
    pub async fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        self.publish().await;
    }

    /// What is wrong, by source (empty when healthy).
    pub fn faults(&self) -> BTreeMap<String, String> {
        self.inner
            .faults
            .lock()
            .map(|faults| faults.clone())
            .unwrap_or_default()
    }

    async fn publish(&self) {
        let _one_at_a_time = self.inner.publishing.lock().await;
        let serving = !self.inner.draining.load(Ordering::SeqCst) && self.faults().is_empty();
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        crate::metrics::health_serving(self.inner.component, serving);
        let api = self.inner.api.lock().ok().and_then(|api| *api);
        // "" is the whole server, which is what Kubernetes' gRPC probe asks about by default.
        self.inner.reporter.set_service_status("", status).await;
        if let Some(api) = api {
            self.inner.reporter.set_service_status(api, status).await;
        }
    }
}
