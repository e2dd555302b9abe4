//! Components started with TLS ([`super::Options::tls`]) are reached over TLS: [`super::channel`]
//! looks each address up here and trusts the CA that signed its certificate, as a person's
//! grpcurl with `-cacert` does (no client certificate), sending the test's token when auth is on
//! ([`super::Options::auth`]).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Mutex,
};

use tonic::{
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig},
};

/// What the harness's clients talk through.
pub type TestChannel = InterceptedService<Channel, Bearer>;

struct Secured {
    addr: SocketAddr,
    ca: PathBuf,
    token: Option<String>,
}

static SECURED: Mutex<Vec<Secured>> = Mutex::new(Vec::new());

/// From now on `addr` serves TLS with a certificate `ca` signed, and wants `token` if any.
pub fn secured(addr: SocketAddr, ca: &Path, token: Option<&str>) {
    let mut secured = SECURED.lock().expect("secured addresses");
    secured.retain(|known| known.addr != addr);
    secured.push(Secured {
        addr,
        ca: ca.to_owned(),
        token: token.map(str::to_owned),
    });
}

/// How a client reaches `addr`: over TLS with a token, if it asks for them.
pub fn client_config(addr: SocketAddr) -> Option<(ClientTlsConfig, Bearer)> {
    let secured = SECURED.lock().expect("secured addresses");
    let found = secured.iter().find(|known| known.addr == addr)?;
    let bearer = Bearer::of(found.token.as_deref()).expect("an ASCII token");
    Some((trusting(&found.ca), bearer))
}

/// A client that trusts `ca` and presents no certificate.
pub fn trusting(ca: &Path) -> ClientTlsConfig {
    let pem = std::fs::read(ca).expect("CA certificate");
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem))
}

/// Sends `authorization: Bearer <token>` with every request, when there is a token.
pub use orderly::secure::Bearer;

/// A TLS channel to `addr` (a component of a system started with auth) that sends `token`.
pub fn channel_with_token(addr: SocketAddr, token: &str) -> TestChannel {
    let (tls, _) = client_config(addr).expect("a component started with TLS");
    let channel = Channel::from_shared(format!("https://{addr}"))
        .expect("a socket address forms a valid URI")
        .tls_config(tls)
        .expect("a TLS configuration")
        .connect_lazy();
    TestChannel::new(channel, Bearer::of(Some(token)).expect("an ASCII token"))
}
