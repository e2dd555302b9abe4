//! Callers' keys from an identity provider's JWKS URL (issue 14): payment, pointed at a key set
//! served over HTTP on loopback, accepts tokens that set's key signed and refuses the ones the
//! harness's file-based issuer signed; when the provider rotates to a new key, a token signed
//! by it is accepted without a restart and the old key's are refused.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use orderly::secure::{Authority, TokenIssuer};
use orderly_common::auth::Role;
use orderly_proto::payment::v1::{
    GetAccountRequest, OpenAccountRequest, payment_service_client::PaymentServiceClient,
};
use tonic::Code;

use crate::support::{Options, System, free_port, loopback, tls::channel_with_token};

/// A static file server on loopback (Python's), serving `dir`; stopped when dropped.
struct Provider(Child);

impl Provider {
    async fn serve(dir: &Path, port: u16) -> Self {
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs");
        let provider = Self(child);
        let listening = async {
            while tokio::net::TcpStream::connect(loopback(port))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), listening)
            .await
            .expect("the key server listens");
        provider
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A token issuer with a key of its own, kept in `dir` (its key set in `dir/jwks.json`).
fn issuer_in(dir: &Path) -> TokenIssuer {
    Authority::open(dir).unwrap().token_issuer().unwrap()
}

/// Publishes the key set of the issuer kept in `from` as the provider's, replacing the last.
fn publish(from: &Path, served: &Path) {
    let staged = served.join("jwks.json.new");
    std::fs::copy(from.join("jwks.json"), &staged).unwrap();
    std::fs::rename(staged, served.join("jwks.json")).unwrap();
}

fn finance_token(issuer: &TokenIssuer) -> String {
    (issuer.token("treasurer", &[Role::Finance], Duration::from_secs(3600))).unwrap()
}

async fn read_account(system: &System, token: &str) -> Result<(), tonic::Status> {
    let mut payment = PaymentServiceClient::new(channel_with_token(system.addr("payment"), token));
    let request = GetAccountRequest {
        customer_id: "alice".into(),
    };
    payment.get_account(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_checked_against_a_jwks_url_and_a_rotated_key_is_taken_without_a_restart() {
    let keys = tempfile::tempdir().unwrap();
    let (first_dir, second_dir, served) = (
        keys.path().join("first"),
        keys.path().join("second"),
        keys.path().join("served"),
    );
    std::fs::create_dir_all(&served).unwrap();
    let first = issuer_in(&first_dir);
    publish(&first_dir, &served);
    let port = free_port();
    let _provider = Provider::serve(&served, port).await;

    let url = format!("http://127.0.0.1:{port}/jwks.json");
    let system = System::start(Options {
        auth: true,
        env: vec![("payment", "ORDERLY_AUTH_JWKS", url)],
        ..Options::default()
    })
    .await;

    // A token the provider's key signed is accepted (the account is simply not there yet).
    let token = finance_token(&first);
    let mut payment = PaymentServiceClient::new(channel_with_token(system.addr("payment"), &token));
    let opened = OpenAccountRequest {
        customer_id: "alice".into(),
        currency: "USD".into(),
    };
    payment.open_account(opened).await.unwrap();
    read_account(&system, &token).await.unwrap();
    // The harness's own tokens, whose key only the JWKS file knows, are not payment's.
    let harness = issuer_in(&system.dir.path().join("secure"));
    let refused = read_account(&system, &finance_token(&harness))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("no key"), "{refused:?}");

    // The provider rotates to a new key: a token it signed makes payment fetch the set again,
    // and is accepted within the refetch interval; the old key's tokens are refused from then.
    let second = issuer_in(&second_dir);
    publish(&second_dir, &served);
    let rotated = finance_token(&second);
    let accepted = async {
        while read_account(&system, &rotated).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), accepted)
        .await
        .expect("the new key is taken without a restart");
    let old = read_account(&system, &token).await.unwrap_err();
    assert_eq!(old.code(), Code::Unauthenticated, "{old:?}");
}
