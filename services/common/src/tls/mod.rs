//! TLS on every gRPC server and client, mutual between components: with `--tls-cert`,
//! `--tls-key` and `--tls-ca` a component serves TLS only (a plaintext client is refused in the
//! handshake), calls the others over TLS presenting its own certificate, and accepts only
//! servers, and client certificates, its CA signed. The files are read again when they change
//! (certificate rotation, a Secret updated in place): new connections use the new ones, and the
//! connections already open go on.

mod client;
pub mod identity;
mod material;
mod server;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use clap::Args;

use crate::reload::Reloaded;

pub use client::TlsConnector;
pub use server::incoming;

const RELOAD_SECS: u64 = 10;

/// How a component's connections are secured.
#[derive(Args, Clone, Debug)]
pub struct TlsArgs {
    /// PEM certificate chain of this component, for its server and as its identity when it
    /// calls the others; its subject alternative names include DNS:orderly-<component>. With
    /// --tls-key and --tls-ca; without the three, gRPC is plaintext
    #[arg(long, env = "ORDERLY_TLS_CERT", requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(long, env = "ORDERLY_TLS_KEY", requires_all = ["tls_cert", "tls_ca"])]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificates: the servers this component calls, and the clients that present a
    /// certificate, must have one they signed
    #[arg(long, env = "ORDERLY_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,

    /// How often the three files are checked for a change (a rotated certificate is taken
    /// within this, without a restart)
    #[arg(long, env = "ORDERLY_TLS_RELOAD_SECS", default_value_t = RELOAD_SECS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_reload_secs: u64,
}

/// Plaintext.
impl Default for TlsArgs {
    fn default() -> Self {
        Self {
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            tls_reload_secs: RELOAD_SECS,
        }
    }
}

/// The three files of a component's TLS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl From<TlsFiles> for TlsArgs {
    fn from(files: TlsFiles) -> Self {
        Self {
            tls_cert: Some(files.cert),
            tls_key: Some(files.key),
            tls_ca: Some(files.ca),
            ..Self::default()
        }
    }
}

impl TlsArgs {
    fn files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            ca: self.tls_ca.clone()?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS file {path}: {error}")]
    File { path: PathBuf, error: String },
    #[error("TLS: {0}")]
    Rustls(rustls::Error),
}

impl TlsError {
    fn file(path: &Path, error: impl Into<String>) -> Self {
        Self::File {
            path: path.to_owned(),
            error: error.into(),
        }
    }
}

/// A component's TLS, as its files say now.
#[derive(Clone)]
pub struct Tls {
    current: Reloaded<material::Configs>,
}

impl Tls {
    /// `component`'s TLS from `args` (none when they name no files), read again when the files
    /// change. Must be called within a tokio runtime.
    pub fn start(component: &'static str, args: &TlsArgs) -> Result<Option<Self>, TlsError> {
        let Some(files) = args.files() else {
            return Ok(None);
        };
        let paths = vec![files.cert.clone(), files.key.clone(), files.ca.clone()];
        let every = Duration::from_secs(args.tls_reload_secs);
        let current = Reloaded::start("tls", paths, every, move || {
            material::load(component, &files)
        })?;
        tracing::info!(component, "TLS on, mutual between components");
        Ok(Some(Self { current }))
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().server.clone()
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.current.read().client.clone()
    }
}
