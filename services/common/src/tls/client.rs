//! The client side: a connector for tonic's channels that dials TCP and makes a TLS handshake
//! with the component's current configuration, checking the server is the component meant.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::http::Uri;

use super::{Tls, identity};

/// Connects to replicas of one component over TLS.
#[derive(Clone)]
pub struct TlsConnector {
    tls: Tls,
    callee: ServerName<'static>,
}

impl TlsConnector {
    /// Connections to `callee`, whose certificate must carry its identity.
    pub fn new(tls: Tls, callee: &str) -> Result<Self, String> {
        Ok(Self {
            tls,
            callee: identity::server_name(callee)?,
        })
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TokioIo<TlsStream<TcpStream>>>> + Send>>;

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.tls.client_config());
        let callee = self.callee.clone();
        Box::pin(async move {
            let invalid = || {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no host:port in {uri}"),
                )
            };
            let host = uri.host().ok_or_else(invalid)?;
            // An IPv6 address comes bracketed in a URI.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().ok_or_else(invalid)?;
            let stream = TcpStream::connect((host, port)).await?;
            stream.set_nodelay(true)?;
            let stream = connector.connect(callee, stream).await?;
            Ok(TokioIo::new(stream))
        })
    }
}
