//! Test harness: real `orderly` processes on free loopback ports, a throwaway PostgreSQL server,
//! and gRPC clients. Output of spawned processes is shown only with `TEST_LOG=1`.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod ctl;
pub mod invariants;
pub mod orders;
pub mod otlp;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod quiet;
pub mod shipping;
pub mod tls;
pub mod topic;
pub mod webhook;

use std::{net::SocketAddr, time::Duration};

use orderly_common::auth::Role;

pub use tls::TestChannel;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Long enough for a debug build on a busy 2-core machine; every wait is a bounded poll.
pub const STARTUP: Duration = Duration::from_secs(60);

/// Where test ports come from: outside the OS's ephemeral range, so neither the OS's pick for
/// another `bind(0)` nor the local port of an outgoing connection (a client's connection to
/// itself, while the child is not listening yet) can take a port between its choice here and the
/// child binding it: 10,000 ports below the range (Linux: 32768-60999), or above it when it
/// starts too low.
fn test_ports() -> std::ops::Range<u16> {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(|bound| bound.parse::<u16>());
            Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999));
    match ephemeral {
        (low, _) if low >= 11_024 => low - 10_000..low,
        (_, high) if high <= 55_000 => high + 1..high + 10_001,
        _ => 20_000..30_000, // no room outside it: best effort
    }
}

/// A port nobody listens on right now, for a child process to bind. Each test process starts at a
/// random place in [`test_ports`] and never hands out a port twice; nor does any other test
/// process while this one runs: nextest runs tests as concurrent processes, and a port whose
/// component a test killed is free until the test starts it again, long enough for another
/// test to take it. A lock file per port, held until this process exits, says it is taken.
pub fn free_port() -> u16 {
    use std::{
        hash::{BuildHasher, RandomState},
        sync::{
            Mutex, OnceLock,
            atomic::{AtomicU32, Ordering},
        },
    };
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    static HELD: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
    let locks = std::env::temp_dir().join("orderly-test-ports");
    std::fs::create_dir_all(&locks).expect("port lock directory");
    let ports = test_ports();
    let span = u32::from(ports.end - ports.start);
    let next = NEXT.get_or_init(|| {
        let random = RandomState::new().hash_one(std::process::id());
        AtomicU32::new(u32::try_from(random % u64::from(span)).expect("below span"))
    });
    for _ in 0..span {
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let port = ports.start + u16::try_from(offset).expect("below span");
        let lock = std::fs::File::create(locks.join(format!("{port}.lock"))).expect("port lock");
        if lock.try_lock().is_err() {
            continue; // another test process handed it out
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().expect("port locks").push(lock);
            return port;
        }
    }
    panic!("no free loopback port in {ports:?}");
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A channel to `addr`, over TLS and with a token when the component there wants them ([`tls`]).
pub fn channel(addr: SocketAddr) -> TestChannel {
    let Some((config, bearer)) = tls::client_config(addr) else {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a socket address forms a valid URI")
            .connect_lazy();
        return TestChannel::new(channel, tls::Bearer::default());
    };
    let channel = Channel::from_shared(format!("https://{addr}"))
        .expect("a socket address forms a valid URI")
        .tls_config(config)
        .expect("a TLS client configuration")
        .connect_lazy();
    TestChannel::new(channel, bearer)
}

/// Polls the health service until it reports SERVING; panics after `STARTUP`.
pub async fn wait_serving(addr: SocketAddr) {
    wait_health(addr, ServingStatus::Serving, STARTUP).await;
}

/// Polls the health service until it reports `wanted`; panics after `within`.
pub async fn wait_health(addr: SocketAddr, wanted: ServingStatus, within: Duration) {
    poll_health(addr, wanted, within, None).await;
}

/// Like [`wait_serving`] for a process this test started: if it exits first, or never serves,
/// the failure shows the end of its output.
async fn wait_process_serving(addr: SocketAddr, process: &mut process::Orderly) {
    poll_health(addr, ServingStatus::Serving, STARTUP, Some(process)).await;
}

async fn poll_health(
    addr: SocketAddr,
    wanted: ServingStatus,
    within: Duration,
    mut process: Option<&mut process::Orderly>,
) {
    let mut health = HealthClient::new(channel(addr));
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|reply| reply.into_inner().status());
        if status.as_ref().is_ok_and(|status| *status == wanted) {
            return;
        }
        if let Some(process) = process.as_deref_mut() {
            process.assert_running();
        }
        if tokio::time::Instant::now() >= deadline {
            let output = process
                .map(|process| process.last_words())
                .unwrap_or_default();
            panic!("{addr} not {wanted:?} after {within:?}: {status:?}\n{output}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The service components, as `orderly <component>` runs them (the binary's registry).
pub const SERVICES: [&str; 6] = {
    let all = &orderly::components::ALL;
    [
        all[0].name,
        all[1].name,
        all[2].name,
        all[3].name,
        all[4].name,
        all[5].name,
    ]
};

/// Picks a component's database URL (None: a SQLite file in the data directory).
pub type DatabaseUrls = Box<dyn FnMut(&str) -> Option<String>>;

/// How to start a [`System`].
pub struct Options {
    /// Start `orderly broker`; without it the services point at a port nobody listens on
    /// (enough for tests of the admin APIs).
    pub broker: bool,
    pub database_url: DatabaseUrls,
    pub saga_deadline_ms: u64,
    /// Extra environment for one component: (component, name, value).
    pub env: Vec<(&'static str, &'static str, String)>,
    /// Put a fault proxy ([`System::broker_proxy`]) between every component and the broker:
    /// the broker advertises the proxy's address and the components bootstrap through it.
    pub broker_proxy: bool,
    /// TLS on every component, mutual between them: a CA and a certificate per component
    /// (`orderly::secure`) in `<dir>/secure`, files looked at every second.
    pub tls: bool,
    /// With `tls`: every RPC needs a caller; the harness's own calls carry a token with every
    /// role (`test-operator`).
    pub auth: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            broker: true,
            database_url: Box::new(|_| None),
            saga_deadline_ms: 30_000,
            env: Vec::new(),
            broker_proxy: false,
            tls: false,
            auth: false,
        }
    }
}

/// A component process and how to start it again.
struct Component {
    /// The component, or one of its replicas (`orchestrator#2`).
    name: String,
    /// What it runs: `orderly <kind>`.
    kind: &'static str,
    addr: std::net::SocketAddr,
    metrics: std::net::SocketAddr,
    envs: Vec<(String, String)>,
    process: process::Orderly,
}

/// The whole system as separate processes sharing one data directory, each on a free port.
pub struct System {
    pub dir: tempfile::TempDir,
    pub kafka: String,
    broker: Option<process::Orderly>,
    broker_args: Vec<String>,
    components: Vec<Component>,
    broker_proxy: Option<proxy::Proxy>,
    /// The harness's token, with every role (when auth is on).
    pub token: Option<String>,
}

impl System {
    pub async fn start(mut options: Options) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("orderly-test-")
            .disable_cleanup(std::env::var_os("KEEP_TEST_DIRS").is_some())
            .tempdir()
            .expect("temp dir");
        let kafka_port = free_port();
        let kafka = format!("127.0.0.1:{kafka_port}");
        let mut broker_args = vec![
            "broker".to_owned(),
            "--listen-addr".to_owned(),
            kafka.clone(),
        ];
        let broker_proxy = if options.broker_proxy {
            Some(proxy::Proxy::start(loopback(kafka_port)).await)
        } else {
            None
        };
        if let Some(proxy) = &broker_proxy {
            broker_args.extend(["--advertised-addr".to_owned(), proxy.addr().to_string()]);
        }
        let broker = options
            .broker
            .then(|| spawn_broker(&broker_args, dir.path()));
        if broker.is_some() {
            wait_listening(loopback(kafka_port)).await;
        }
        let addrs: Vec<_> = SERVICES
            .iter()
            .map(|name| (*name, loopback(free_port())))
            .collect();
        let addr_of = |name: &str| {
            addrs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, a)| *a)
                .expect("a service")
        };
        let authority = (options.tls || options.auth).then(|| {
            orderly::secure::Authority::open(&dir.path().join("secure")).expect("a test CA")
        });
        let token = authority
            .as_ref()
            .filter(|_| options.auth)
            .map(|authority| {
                let issuer = authority.token_issuer().expect("a test token issuer");
                let every = [Role::Customer, Role::Catalog, Role::Finance, Role::Operator];
                (issuer.token("test-operator", &every, Duration::from_secs(3600)))
                    .expect("a test token")
            });
        let mut components = Vec::new();
        for (name, addr) in &addrs {
            let metrics = loopback(free_port());
            let mut envs = vec![
                ("ORDERLY_LISTEN_ADDR".to_owned(), addr.to_string()),
                ("ORDERLY_KAFKA_BOOTSTRAP".to_owned(), kafka.clone()),
                ("ORDERLY_METRICS_ADDR".to_owned(), metrics.to_string()),
                // Stuck consumers rejoin (and health says so) within the tests' patience.
                ("ORDERLY_STUCK_AFTER_MS".to_owned(), "10000".to_owned()),
            ];
            if let Some(authority) = &authority {
                let files = authority.issue(name).expect("a test certificate");
                tls::secured(*addr, &files.ca, token.as_deref());
                if token.is_some() {
                    let jwks = authority.jwks().display().to_string();
                    envs.push(("ORDERLY_AUTH_JWKS".to_owned(), jwks));
                }
                for (key, path) in [
                    ("ORDERLY_TLS_CERT", &files.cert),
                    ("ORDERLY_TLS_KEY", &files.key),
                    ("ORDERLY_TLS_CA", &files.ca),
                ] {
                    envs.push((key.to_owned(), path.display().to_string()));
                }
                envs.push(("ORDERLY_TLS_RELOAD_SECS".to_owned(), "1".to_owned()));
                let keys = authority.event_keys().expect("event keys");
                envs.push(("ORDERLY_EVENT_KEYS".to_owned(), keys.display().to_string()));
            }
            if let Some(proxy) = &broker_proxy {
                // Later entries win: every Kafka connection goes through the proxy.
                envs.push((
                    "ORDERLY_KAFKA_BOOTSTRAP".to_owned(),
                    proxy.addr().to_string(),
                ));
            }
            if let Some(url) = (options.database_url)(name) {
                envs.push(("ORDERLY_DATABASE_URL".to_owned(), url));
            }
            let calls = orderly::components::find(name).map_or(&[][..], |c| c.calls);
            for callee in calls {
                envs.push((
                    format!("ORDERLY_{}_ENDPOINT", callee.name.to_uppercase()),
                    format!("http://{}", addr_of(callee.name)),
                ));
            }
            if *name == "orchestrator" {
                envs.push((
                    "ORDERLY_SAGA_DEADLINE_MS".to_owned(),
                    options.saga_deadline_ms.to_string(),
                ));
            }
            for (_, key, value) in options
                .env
                .iter()
                .filter(|(component, _, _)| component == name)
            {
                envs.push(((*key).to_owned(), value.clone()));
            }
            let process = spawn_component(name, &envs, dir.path());
            components.push(Component {
                name: (*name).to_owned(),
                kind: name,
                addr: *addr,
                metrics,
                envs,
                process,
            });
        }
        for component in &mut components {
            wait_process_serving(component.addr, &mut component.process).await;
        }
        Self {
            dir,
            kafka,
            broker,
            broker_args,
            components,
            broker_proxy,
            token,
        }
    }

    /// The proxy between the components and the broker (with `Options::broker_proxy`).
    pub fn broker_proxy(&self) -> &proxy::Proxy {
        self.broker_proxy
            .as_ref()
            .expect("started with Options { broker_proxy: true, .. }")
    }

    pub fn addr(&self, name: &str) -> std::net::SocketAddr {
        self.component(name).addr
    }

    /// Where the component serves `/metrics`.
    pub fn metrics_addr(&self, name: &str) -> std::net::SocketAddr {
        self.component(name).metrics
    }

    /// SIGKILLs the broker (its storage is durable: topics and messages survive).
    pub fn kill_broker(&mut self) {
        if let Some(broker) = &mut self.broker {
            broker.kill();
        }
    }

    /// Starts the broker again on the same port and storage, and waits until it listens.
    pub async fn restart_broker(&mut self) {
        self.broker = Some(spawn_broker(&self.broker_args, self.dir.path()));
        let addr: SocketAddr = self.kafka.parse().expect("broker address");
        wait_listening(addr).await;
    }

    fn component(&self, name: &str) -> &Component {
        self.components
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} process"))
    }

    fn component_mut(&mut self, name: &str) -> &mut Component {
        self.components
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} process"))
    }

    /// SIGKILLs a component: no chance to clean up, like a crash.
    pub fn kill(&mut self, name: &str) {
        if let Some(component) = self.components.iter_mut().find(|c| c.name == name) {
            component.process.kill();
        }
    }

    /// SIGKILLs a component like [`System::kill`], through a shared borrow: for a kill in the
    /// middle of a load that is using the system. The process is reaped when it is restarted
    /// or the system is dropped.
    pub fn crash(&self, name: &str) {
        self.component(name).process.signal("-KILL");
    }

    /// Asks a component to stop (SIGTERM) without waiting for it; see [`System::wait_exit`].
    pub fn stop(&self, name: &str) {
        self.component(name).process.signal("-TERM");
    }

    /// Freezes a component (SIGSTOP) until [`System::resume`].
    pub fn pause(&self, name: &str) {
        self.component(name).process.signal("-STOP");
    }

    pub fn resume(&self, name: &str) {
        self.component(name).process.signal("-CONT");
    }

    /// Waits (a bounded poll) up to `within` for a component's process to exit by itself, e.g.
    /// at a crash point; returns how it ended, or `None` if it is still running.
    pub async fn wait_exit(
        &mut self,
        name: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        let component = self.component_mut(name);
        loop {
            let status = component.process.exit_status();
            if status.is_some() || tokio::time::Instant::now() >= deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Like [`System::restart`], without the environment variable `key` from now on (a crash
    /// point armed through `FAILPOINTS`, say).
    pub async fn restart_without_env(&mut self, name: &str, key: &str) {
        let component = self.component_mut(name);
        component.envs.retain(|(k, _)| k != key);
        self.restart(name).await;
    }

    /// Starts a killed component again with `key=value` added to its environment, without
    /// waiting for it to serve: a crash point armed this way may stop it at once.
    pub fn restart_with_env(&mut self, name: &str, key: &str, value: &str) {
        let dir = self.dir.path().to_owned();
        let component = self.component_mut(name);
        component.envs.retain(|(k, _)| k != key);
        component.envs.push((key.to_owned(), value.to_owned()));
        component.process = spawn_component(component.kind, &component.envs, &dir);
    }

    /// Points every process that calls `kind` at every replica of `kind` (as a headless Service
    /// does in a cluster), restarting each (SIGTERM, then start) with the new list.
    pub async fn point_callers_at_every(&mut self, kind: &str) {
        let key = format!("ORDERLY_{}_ENDPOINT", kind.to_uppercase());
        let every = (self.components.iter())
            .filter(|c| c.kind == kind)
            .map(|c| format!("http://{}", c.addr))
            .collect::<Vec<_>>()
            .join(",");
        let calls_it = |c: &&Component| {
            orderly::components::find(c.kind)
                .is_some_and(|found| found.calls.iter().any(|callee| callee.name == kind))
        };
        let callers: Vec<String> = (self.components.iter())
            .filter(calls_it)
            .map(|c| c.name.clone())
            .collect();
        for caller in callers {
            // Stopped cleanly, as a rollout does: a SIGKILL here could leave a published event
            // unmarked in its outbox, which the next publisher sends again.
            self.stop(&caller);
            let stopped = self.wait_exit(&caller, Duration::from_secs(30)).await;
            assert!(stopped.is_some(), "{caller} did not stop within 30 s");
            self.set_env(&caller, &key, &every);
            self.restart(&caller).await;
        }
    }

    /// Sets `key=value` in a component's environment for its next start.
    pub fn set_env(&mut self, name: &str, key: &str, value: &str) {
        let component = self.component_mut(name);
        component.envs.retain(|(k, _)| k != key);
        component.envs.push((key.to_owned(), value.to_owned()));
    }

    /// Starts a killed component again with the same settings and waits until it serves.
    pub async fn restart(&mut self, name: &str) {
        self.start_again(name);
        self.serving(name).await;
    }

    /// Starts a killed component again with the same settings, without waiting for it.
    pub fn start_again(&mut self, name: &str) {
        let dir = self.dir.path().to_owned();
        let component = self.component_mut(name);
        component.process = spawn_component(component.kind, &component.envs, &dir);
    }

    /// Waits until a component serves, failing at once if its process exits.
    pub async fn serving(&mut self, name: &str) {
        let component = self.component_mut(name);
        wait_process_serving(component.addr, &mut component.process).await;
    }

    /// Fails, with its last words, if the component's process has exited.
    pub fn assert_running(&mut self, name: &str) {
        self.component_mut(name).process.assert_running();
    }

    /// Starts one more replica of `kind` (the same settings and database, its own ports) and
    /// waits until it serves; returns its name for the other methods (`orchestrator#2`).
    pub async fn add_replica(&mut self, kind: &'static str) -> String {
        let dir = self.dir.path().to_owned();
        let replicas = self.components.iter().filter(|c| c.kind == kind).count();
        let first = self.component(kind);
        let (addr, metrics) = (loopback(free_port()), loopback(free_port()));
        let mut envs = first.envs.clone();
        envs.retain(|(key, _)| key != "ORDERLY_LISTEN_ADDR" && key != "ORDERLY_METRICS_ADDR");
        envs.push(("ORDERLY_LISTEN_ADDR".to_owned(), addr.to_string()));
        envs.push(("ORDERLY_METRICS_ADDR".to_owned(), metrics.to_string()));
        if let Some((_, ca)) = envs.iter().find(|(key, _)| key == "ORDERLY_TLS_CA") {
            tls::secured(addr, std::path::Path::new(ca), self.token.as_deref());
        }
        let name = format!("{kind}#{}", replicas + 1);
        let mut process = spawn_component(kind, &envs, &dir);
        wait_process_serving(addr, &mut process).await;
        self.components.push(Component {
            name: name.clone(),
            kind,
            addr,
            metrics,
            envs,
            process,
        });
        name
    }
}

fn spawn_broker(args: &[String], dir: &std::path::Path) -> process::Orderly {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    process::Orderly::spawn(&args, &[], dir)
}

fn spawn_component(
    name: &str,
    envs: &[(String, String)],
    dir: &std::path::Path,
) -> process::Orderly {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    process::Orderly::spawn(&[name], &envs, dir)
}

/// Polls until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + STARTUP;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {addr} after {STARTUP:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
