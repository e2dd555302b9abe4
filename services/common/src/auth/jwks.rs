//! Where the keys that sign callers' tokens come from: a JWKS file, read again when it changes,
//! or an identity provider's JWKS URL, fetched at start, every `--auth-jwks-refresh-secs`, and
//! soon after a token names a key the set does not hold (how a provider's new signing key
//! arrives before the next scheduled fetch).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock, RwLockReadGuard, Weak},
    time::Duration,
};

use jsonwebtoken::jwk::JwkSet;
use reqwest::Url;
use tokio::sync::Notify;

use super::TokenError;
use crate::reload::Reloaded;

/// However many tokens name unknown keys, the provider is asked at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(5);

/// Larger than any key set: a provider answering more is refused, not buffered.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The key set tokens are checked against.
#[derive(Clone)]
pub enum KeySet {
    File(Reloaded<JwkSet>),
    Url(Fetched),
}

/// A key set fetched from a URL, kept fresh in the background.
#[derive(Clone)]
pub struct Fetched {
    current: Arc<RwLock<JwkSet>>,
    /// Wakes the refresher: a token named a key the set does not hold.
    unknown_key: Arc<Notify>,
}

/// Where `--auth-jwks` points.
enum Source {
    File(PathBuf),
    Url(Url),
}

impl Source {
    /// A URL when `setting` starts with a scheme, a file otherwise. Keys fetched over plain
    /// HTTP could be anyone's: only a loopback address may be asked without TLS.
    fn parse(setting: &str) -> Result<Self, TokenError> {
        if !setting.starts_with("https://") && !setting.starts_with("http://") {
            return Ok(Self::File(PathBuf::from(setting)));
        }
        let url = Url::parse(setting)
            .map_err(|error| TokenError(format!("JWKS URL {setting:?}: {error}")))?;
        let loopback = match url.host_str() {
            Some("localhost") => true,
            Some(host) => (host.trim_start_matches('[').trim_end_matches(']'))
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()),
            None => false,
        };
        if url.scheme() == "http" && !loopback {
            return Err(TokenError(format!(
                "JWKS URL {url}: use https (plain http only for a loopback address)"
            )));
        }
        Ok(Self::Url(url))
    }
}

impl KeySet {
    /// Loads the keys `setting` names (a file, or a URL fetched with the system's CA roots and
    /// `ca`, Orderly's own CA when TLS is on); then keeps them current in the background. An
    /// error here stops the component: it would refuse every token.
    pub async fn start(
        setting: &str,
        ca: Option<&Path>,
        file_every: Duration,
        url_every: Duration,
    ) -> Result<Self, TokenError> {
        match Source::parse(setting)? {
            Source::File(path) => {
                let files = vec![path.clone()];
                let keys = Reloaded::start("jwks", files, file_every, move || read_file(&path))?;
                Ok(Self::File(keys))
            }
            Source::Url(url) => {
                let client = http_client(ca)?;
                let first = fetch(&client, &url).await?;
                let fetched = Fetched {
                    current: Arc::new(RwLock::new(first)),
                    unknown_key: Arc::new(Notify::new()),
                };
                tokio::spawn(refresh(
                    client,
                    url,
                    Arc::downgrade(&fetched.current),
                    fetched.unknown_key.clone(),
                    url_every,
                ));
                Ok(Self::Url(fetched))
            }
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, JwkSet> {
        match self {
            Self::File(keys) => keys.read(),
            // A poisoned lock still holds a whole set: only a finished fetch is stored.
            Self::Url(fetched) => fetched
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// A token named a key the set does not hold: a URL's set is fetched again soon.
    pub fn unknown_key(&self) {
        if let Self::Url(fetched) = self {
            fetched.unknown_key.notify_one();
        }
    }
}

fn read_file(path: &Path) -> Result<JwkSet, TokenError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| TokenError(format!("JWKS {}: {error}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|error| TokenError(format!("JWKS {}: not a key set: {error}", path.display())))
}

fn http_client(ca: Option<&Path>) -> Result<reqwest::Client, TokenError> {
    let mut builder = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ca) = ca {
        let pem = std::fs::read(ca)
            .map_err(|error| TokenError(format!("CA {}: {error}", ca.display())))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|error| TokenError(format!("CA {}: {error}", ca.display())))?;
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder
        .build()
        .map_err(|error| TokenError(format!("JWKS client: {error}")))
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<JwkSet, TokenError> {
    let failed = |why: String| TokenError(format!("JWKS {url}: {why}"));
    let mut response = client
        .get(url.clone())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| failed(error.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| failed(error.to_string()))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(failed(format!("larger than {MAX_JWKS_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|error| failed(format!("not a key set: {error}")))
}

/// Fetches the set again every `every`, or soon after a token names an unknown key, for as
/// long as anything holds it. A fetch that fails keeps the keys in use.
async fn refresh(
    client: reqwest::Client,
    url: Url,
    current: Weak<RwLock<JwkSet>>,
    unknown_key: Arc<Notify>,
    every: Duration,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = unknown_key.notified() => {}
        }
        let Some(current) = current.upgrade() else {
            return;
        };
        match fetch(&client, &url).await {
            Ok(keys) => *current.write().unwrap_or_else(PoisonError::into_inner) = keys,
            Err(error) => tracing::warn!(%error, "JWKS not fetched; keeping the keys in use"),
        }
        drop(current);
        tokio::time::sleep(MIN_REFETCH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(setting: &str) -> Result<String, String> {
        match Source::parse(setting) {
            Ok(Source::File(path)) => Ok(format!("file {}", path.display())),
            Ok(Source::Url(url)) => Ok(format!("url {url}")),
            Err(error) => Err(error.to_string()),
        }
    }

    #[test]
    fn a_jwks_setting_is_a_file_or_a_url_and_plain_http_only_on_loopback() {
        assert_eq!(
            parsed("/etc/orderly/jwks.json").unwrap(),
            "file /etc/orderly/jwks.json"
        );
        let https = "https://idp.example.com/.well-known/jwks.json";
        assert_eq!(parsed(https).unwrap(), format!("url {https}"));
        for loopback in [
            "http://127.0.0.1:8080/k",
            "http://[::1]:8080/k",
            "http://localhost/k",
        ] {
            assert!(parsed(loopback).is_ok(), "{loopback}");
        }
        let refused = parsed("http://idp.example.com/jwks.json").unwrap_err();
        assert!(refused.contains("use https"), "{refused}");
        assert!(parsed("https://").is_err());
    }
}
