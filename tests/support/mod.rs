//! Test harness: real `orderly` processes on free loopback ports, a throwaway PostgreSQL server,
//! and gRPC clients. Output of spawned processes is shown only with `TEST_LOG=1`.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod postgres;
pub mod process;

use std::{net::SocketAddr, time::Duration};

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Long enough for a debug build on a busy 2-core machine; every wait is a bounded poll.
pub const STARTUP: Duration = Duration::from_secs(60);

/// A port nobody listens on right now (the OS picks it; we release it for the child to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("the OS hands out a free loopback port")
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("a socket address forms a valid URI")
        .connect_lazy()
}

/// Polls the health service until it reports SERVING; panics after `STARTUP`.
pub async fn wait_serving(addr: SocketAddr) {
    let mut health = HealthClient::new(channel(addr));
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|reply| reply.into_inner().status);
        if status
            .as_ref()
            .is_ok_and(|status| *status == ServingStatus::Serving as i32)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{addr} not SERVING after {STARTUP:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The service components and their APIs, as `orderly <component>` runs them.
pub const SERVICES: [&str; 5] = [
    "order",
    "inventory",
    "payment",
    "notification",
    "orchestrator",
];

/// A set of service processes sharing one data directory, each on a free port.
pub struct Services {
    pub dir: tempfile::TempDir,
    processes: Vec<(&'static str, std::net::SocketAddr, process::Orderly)>,
}

impl Services {
    /// Starts every service; `database_url` picks each one's database (None: SQLite files).
    pub async fn start(
        kafka_bootstrap: &str,
        mut database_url: impl FnMut(&str) -> Option<String>,
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orderly-test-")
            .tempdir()
            .expect("temp dir");
        let mut processes = Vec::new();
        for component in SERVICES {
            let addr = loopback(free_port());
            let listen = addr.to_string();
            let url = database_url(component);
            let mut envs = vec![
                ("ORDERLY_LISTEN_ADDR", listen.as_str()),
                ("ORDERLY_KAFKA_BOOTSTRAP", kafka_bootstrap),
            ];
            if let Some(url) = &url {
                envs.push(("ORDERLY_DATABASE_URL", url.as_str()));
            }
            processes.push((
                component,
                addr,
                process::Orderly::spawn(&[component], &envs, dir.path()),
            ));
        }
        for (_, addr, _) in &processes {
            wait_serving(*addr).await;
        }
        Self { dir, processes }
    }

    pub fn addr(&self, component: &str) -> std::net::SocketAddr {
        self.processes
            .iter()
            .find(|(name, _, _)| *name == component)
            .map(|(_, addr, _)| *addr)
            .unwrap_or_else(|| panic!("no {component} process"))
    }
}
