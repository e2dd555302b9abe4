//! The server side: connections accepted on the listener, each through a TLS handshake of its
//! own (a slow or silent client holds up nobody), handed to tonic once it completed.

use std::{io, net::SocketAddr, time::Duration};

use futures::Stream;
use metrics::counter;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use super::Tls;
use crate::metrics::TLS_HANDSHAKES_FAILED;

/// A client has this long to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 64;

/// The TLS connections made on `listener`, for `serve_with_incoming`. Accepting stops when the
/// stream is dropped (the server stopped).
pub fn incoming(
    listener: TcpListener,
    tls: Tls,
) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> {
    let (ready, taken) = mpsc::channel(BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = TlsAcceptor::from(tls.server_config());
            let ready = ready.clone();
            tokio::spawn(async move {
                if let Some(stream) = handshake(acceptor, stream, peer).await {
                    // The server may have stopped meanwhile: the connection is then dropped.
                    let _ = ready.send(Ok(stream)).await;
                }
            });
        }
    });
    futures::stream::unfold(taken, |mut taken| async move {
        let next = taken.recv().await?;
        Some((next, taken))
    })
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let _ = stream.set_nodelay(true);
    let reason = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
    };
    // A plaintext client, a certificate from another CA, a scanner: refused, counted, told.
    counter!(TLS_HANDSHAKES_FAILED).increment(1);
    tracing::info!(%peer, reason, "TLS handshake refused");
    None
}
