//! TLS on every gRPC connection, mutual between components (issue 14): with every server
//! TLS-only and every call between components presenting the caller's certificate, orders are
//! confirmed and rejected (the compensation, and the participant asking the orchestrator before
//! it, included); a plaintext client and a client whose certificate another CA signed are
//! refused in the handshake, while probes get plaintext health on a port of its own; a
//! certificate rotated in place is served to new connections without a restart.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use orderly::secure::Authority;
use orderly_proto::order::v1::{
    GetOrderRequest, OrderStatus, order_service_client::OrderServiceClient,
};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::{
    TlsConnector,
    rustls::{ClientConfig, RootCertStore, crypto::aws_lc_rs},
};
use tonic::{
    Code,
    transport::{Channel, Identity},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::support::{
    Options, System, free_port, invariants, loopback,
    orders::{find, order_request, place, seed},
    prometheus::scrape,
    quiet, tls,
};

#[tokio::test(flavor = "multi_thread")]
async fn every_connection_is_tls_and_a_rotated_certificate_is_served_without_a_restart() {
    let probes = loopback(free_port());
    let system = System::start(Options {
        tls: true,
        env: vec![("order", "ORDERLY_HEALTH_LISTEN_ADDR", probes.to_string())],
        ..Options::default()
    })
    .await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 5)],
        &[("alice", 100_000), ("bob", 100)],
    )
    .await;
    let paid = place(&system, order_request("alice", "mug", 1, "")).await;
    let declined = place(&system, order_request("bob", "mug", 1, "")).await;
    let orders = quiet::settle(&system).await;
    assert_eq!(
        find(&orders, &paid.order_id).status(),
        OrderStatus::Confirmed
    );
    assert_eq!(
        find(&orders, &declined.order_id).status(),
        OrderStatus::Rejected
    );
    invariants::check(&system, &initial, &orders).await;

    let order = system.addr("order");
    let secure = system.dir.path().join("secure");
    let ca = secure.join("ca.pem");
    let plaintext = Channel::from_shared(format!("http://{order}"))
        .unwrap()
        .connect_lazy();
    assert!(health(plaintext).await.is_err(), "a plaintext client");
    // A certificate claiming to be the orchestrator, from a CA nobody here trusts.
    let stranger = Authority::open(&system.dir.path().join("stranger")).unwrap();
    let forged = stranger.issue("orchestrator").unwrap();
    let identity = Identity::from_pem(
        std::fs::read(&forged.cert).unwrap(),
        std::fs::read(&forged.key).unwrap(),
    );
    let impostor = Channel::from_shared(format!("https://{order}"))
        .unwrap()
        .tls_config(tls::trusting(&ca).identity(identity))
        .unwrap()
        .connect_lazy();
    assert!(
        health(impostor).await.is_err(),
        "a certificate of another CA"
    );
    // Probes that cannot speak TLS get health alone, in plaintext.
    let for_probes = Channel::from_shared(format!("http://{probes}"))
        .unwrap()
        .connect_lazy();
    health(for_probes.clone()).await.expect("plaintext health");
    let request = GetOrderRequest {
        order_id: paid.order_id.clone(),
    };
    let api = OrderServiceClient::new(for_probes).get_order(request).await;
    assert_eq!(api.unwrap_err().code(), Code::Unimplemented, "only health");
    let refused = scrape(system.metrics_addr("order"))
        .await
        .sum("orderly_tls_handshakes_failed_total", &[]);
    assert!(refused >= 2.0, "handshakes refused: {refused}");

    // The order service's certificate is replaced in place; new connections get the new one.
    let before = served_certificate(order, &ca).await;
    let rotated = Authority::open(&secure).unwrap().issue("order").unwrap();
    let rotated = CertificateDer::from_pem_file(&rotated.cert).unwrap();
    assert_ne!(before, rotated);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while served_certificate(order, &ca).await != rotated {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated certificate is not served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still one system: the new certificate chains to the CA every component trusts.
    place(&system, order_request("alice", "mug", 1, "")).await;
    let orders = quiet::settle(&system).await;
    invariants::check(&system, &initial, &orders).await;
}

async fn health(channel: Channel) -> Result<(), tonic::Status> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    HealthClient::new(channel).check(request).await.map(drop)
}

/// The certificate the server at `addr` presents in a new handshake.
async fn served_certificate(addr: SocketAddr, ca: &Path) -> CertificateDer<'static> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("orderly-order").unwrap();
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, stream)
        .await
        .unwrap();
    let (_, connection) = stream.get_ref();
    connection.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}
