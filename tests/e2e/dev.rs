//! `orderly dev` runs everything in one process: every server answers, demo data is there, and
//! SIGTERM shuts it down cleanly. A restart on the same data directory keeps state without
//! seeding twice.

use std::net::SocketAddr;

use orderly::secure::Authority;
use orderly_common::auth::Role;
use orderly_proto::{
    inventory::v1::{GetProductRequest, inventory_service_client::InventoryServiceClient},
    payment::v1::{GetAccountRequest, payment_service_client::PaymentServiceClient},
};

use crate::support::{SERVICES, channel, free_port, loopback, process::Orderly, tls, wait_serving};

/// A running `orderly dev` on free ports.
pub struct Dev {
    pub process: Orderly,
    /// (component, address) in `SERVICES` order.
    pub endpoints: Vec<(&'static str, SocketAddr)>,
    pub broker_port: u16,
}

impl Dev {
    pub async fn start(data_dir: &std::path::Path) -> Self {
        Self::start_with_env(data_dir, &[], None).await
    }

    /// Starts with extra environment (`OTEL_*`, `ORDERLY_METRICS_ADDR`...), writing its output
    /// to `log` when given.
    pub async fn start_with_env(
        data_dir: &std::path::Path,
        envs: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let ports = SERVICES.map(|_| free_port());
        Self::start_with_ports(data_dir, ports, free_port(), envs, log).await
    }

    pub async fn start_with_ports(
        data_dir: &std::path::Path,
        ports: [u16; 6],
        broker_port: u16,
        envs: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let flags: Vec<String> = SERVICES
            .iter()
            .zip(ports)
            .flat_map(|(component, port)| [format!("--{component}-port"), port.to_string()])
            .chain(["--broker-port".into(), broker_port.to_string()])
            .collect();
        let mut args = vec!["dev"];
        args.extend(flags.iter().map(String::as_str));
        let mut process = Orderly::spawn_logging(&args, envs, data_dir, log);
        let endpoints: Vec<_> = SERVICES.iter().copied().zip(ports.map(loopback)).collect();
        if envs.contains(&("ORDERLY_SECURE", "true")) {
            // The token key is the last file dev makes in the directory.
            let secure = data_dir.join("secure");
            let deadline = tokio::time::Instant::now() + crate::support::STARTUP;
            while !secure.join("token-key.pem").exists() {
                process.assert_running();
                assert!(tokio::time::Instant::now() < deadline, "no token issuer");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let every = [Role::Customer, Role::Catalog, Role::Finance, Role::Operator];
            let issuer = Authority::open(&secure).unwrap().token_issuer().unwrap();
            let hour = std::time::Duration::from_secs(3600);
            let token = issuer.token("test-operator", &every, hour).unwrap();
            for (_, addr) in &endpoints {
                tls::secured(*addr, &secure.join("ca.pem"), Some(&token));
            }
        }
        for (_, addr) in &endpoints {
            wait_serving(*addr).await;
        }
        process.assert_running();
        Self {
            process,
            endpoints,
            broker_port,
        }
    }

    pub fn addr(&self, component: &str) -> SocketAddr {
        self.endpoints
            .iter()
            .find(|(name, _)| *name == component)
            .map(|(_, addr)| *addr)
            .expect("known component")
    }

    fn ports(&self) -> [u16; 6] {
        let mut ports = [0; 6];
        for (port, (_, addr)) in ports.iter_mut().zip(&self.endpoints) {
            *port = addr.port();
        }
        ports
    }
}

/// Seeding runs after the servers report SERVING; bob's account is the last thing it creates.
pub async fn wait_for_seed(dev: &mut Dev) {
    let mut payment = PaymentServiceClient::new(channel(dev.addr("payment")));
    let deadline = tokio::time::Instant::now() + crate::support::STARTUP;
    while payment
        .get_account(GetAccountRequest {
            customer_id: "bob".into(),
        })
        .await
        .is_err()
    {
        dev.process.assert_running();
        assert!(
            tokio::time::Instant::now() < deadline,
            "demo data never appeared"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn demo_stock(dev: &Dev) -> u32 {
    let mut inventory = InventoryServiceClient::new(channel(dev.addr("inventory")));
    let mug = inventory
        .get_product(GetProductRequest { sku: "mug".into() })
        .await
        .unwrap();
    mug.into_inner().product.unwrap().available
}

/// Right after start-up every consumer must already read every topic: once, a consumer that
/// subscribed while another component was still creating a topic only saw it minutes later,
/// and the first orders were rejected at their deadline.
async fn first_order_is_confirmed(dev: &Dev) {
    use orderly_proto::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
    let mut orders = OrderServiceClient::new(channel(dev.addr("order")));
    let id = orders
        .place_order(crate::support::orders::order_request("alice", "mug", 1, ""))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap()
        .order_id;
    // Well inside the 30 s saga deadline, so a stalled consumer cannot pass as a rejection.
    let within = std::time::Duration::from_secs(20);
    let order = crate::support::orders::decided(&mut orders, &id, within).await;
    assert_eq!(order.status(), OrderStatus::Confirmed, "{}", order.reason);
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_runs_everything_seeds_demo_data_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut dev = Dev::start(dir.path()).await;
    wait_for_seed(&mut dev).await;
    assert_eq!(demo_stock(&dev).await, 50);
    let mut payment = PaymentServiceClient::new(channel(dev.addr("payment")));
    let alice = payment
        .get_account(GetAccountRequest {
            customer_id: "alice".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        alice
            .into_inner()
            .account
            .unwrap()
            .balance
            .unwrap()
            .amount_minor,
        100_000
    );

    first_order_is_confirmed(&dev).await;

    let stopping = std::time::Instant::now();
    assert!(
        dev.process.terminate(),
        "orderly dev must exit 0 on SIGTERM"
    );
    // Idle, it drains at once; the 20 s grace is for requests still running.
    assert!(
        stopping.elapsed() < std::time::Duration::from_secs(15),
        "shutdown took {:?}",
        stopping.elapsed()
    );

    // Same data directory, same ports: state survives and seeding does not add stock twice.
    let mut dev = Dev::start_with_ports(dir.path(), dev.ports(), dev.broker_port, &[], None).await;
    wait_for_seed(&mut dev).await;
    assert_eq!(
        demo_stock(&dev).await,
        49,
        "the confirmed mug stays sold across the restart"
    );
}

/// `orderly dev --secure`: every server speaks TLS only, the demo data is seeded over TLS, and
/// the CA stays in the data directory, so a restart keeps the one clients were told to trust.
#[tokio::test(flavor = "multi_thread")]
async fn dev_secure_serves_tls_only_with_a_ca_kept_in_the_data_directory() {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let dir = tempfile::tempdir().unwrap();
    let secure = [("ORDERLY_SECURE", "true")];
    let mut dev = Dev::start_with_env(dir.path(), &secure, None).await;
    wait_for_seed(&mut dev).await;
    assert_eq!(demo_stock(&dev).await, 50);
    for (component, addr) in &dev.endpoints {
        let plaintext = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let answer = HealthClient::new(plaintext).check(request).await;
        assert!(answer.is_err(), "{component} answered in plaintext");
    }
    let ca = std::fs::read(dir.path().join("secure").join("ca.pem")).unwrap();
    assert!(
        dev.process.terminate(),
        "orderly dev must exit 0 on SIGTERM"
    );

    let mut dev =
        Dev::start_with_ports(dir.path(), dev.ports(), dev.broker_port, &secure, None).await;
    wait_for_seed(&mut dev).await;
    let kept = std::fs::read(dir.path().join("secure").join("ca.pem")).unwrap();
    assert_eq!(ca, kept, "the CA survives a restart");
    first_order_is_confirmed(&dev).await;
}
