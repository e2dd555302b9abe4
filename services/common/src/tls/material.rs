//! TLS material from PEM files: a component's certificate chain and key, and the CA that signs
//! every component's certificate. One set serves both sides: the server presents the
//! certificate and checks clients that present one against the CA; as a client the component
//! presents the same certificate (its identity) and accepts only servers the CA signed.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::{CryptoProvider, aws_lc_rs},
    server::WebPkiClientVerifier,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::{TlsError, TlsFiles, identity};

/// What a component's TLS connections are made with, built from its files.
pub struct Configs {
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

/// HTTP/2 is the only protocol spoken: gRPC clients ask for it by name (ALPN).
const ALPN_H2: &[u8] = b"h2";

/// Reads the files and builds both configurations; `component`'s certificate must carry its
/// identity, so a wrong file stops the component at start (or is not taken at a reload).
pub fn load(component: &str, files: &TlsFiles) -> Result<Configs, TlsError> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|error| TlsError::file(&files.key, format!("no private key: {error}")))?;
    let mut roots = RootCertStore::empty();
    for ca in certificates(&files.ca)? {
        roots
            .add(ca)
            .map_err(|error| TlsError::file(&files.ca, format!("not a CA certificate: {error}")))?;
    }
    identity::check_own(component, &chain[0])
        .map_err(|error| TlsError::file(&files.cert, error))?;

    let provider: Arc<CryptoProvider> = Arc::new(aws_lc_rs::default_provider());
    let roots = Arc::new(roots);
    // A client without a certificate is let through the handshake (a person with grpcurl);
    // one presenting a certificate the CA did not sign is refused in it.
    let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|error| TlsError::file(&files.ca, error.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|error| TlsError::file(&files.key, error.to_string()))?;
    server.alpn_protocols = vec![ALPN_H2.to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|error| TlsError::file(&files.key, error.to_string()))?;
    client.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let found = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::file(path, format!("not PEM certificates: {error}")))?;
    if found.is_empty() {
        return Err(TlsError::file(path, "no certificate in it"));
    }
    Ok(found)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::file(path, error.to_string()))
}
