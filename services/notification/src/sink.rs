//! Where notifications go: the log always, then a JSON-lines file (one object per notification)
//! that other tools can tail, or, when configured, an HTTP webhook receiving each notification
//! as a JSON POST.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
};

use crate::store::notifications;

pub enum Sink {
    File(PathBuf),
    Webhook(Box<webhook::Webhook>),
}

impl Sink {
    pub fn channel(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Webhook(_) => "webhook",
        }
    }

    /// Delivers one notification. A crash between this and the database commit delivers it
    /// again on redelivery (at least once); the record in the database stays single.
    pub async fn deliver(&self, notification: &notifications::Model) -> Result<(), Failure> {
        tracing::info!(
            order_id = %notification.order_id,
            customer_id = notification.customer_id,
            kind = notification.kind,
            message = notification.message,
            "notification sent"
        );
        let body = json_line(notification);
        match self {
            Self::File(path) => append_line(path, &body)
                .map_err(|error| Failure::Transient(format!("{}: {error}", path.display()))),
            Self::Webhook(webhook) => webhook.post(body).await,
        }
    }
}

/// Why a notification was not delivered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// It may work later (a receiver down or overloaded): retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// The receiver refused it and will again (a 4xx answer): dead-lettered, to be redriven once
    /// the receiver is repaired.
    #[error("{0}")]
    Permanent(String),
}

mod webhook {
    //! POSTs each notification as JSON. A timeout, an unreachable receiver, a 5xx, 408 or 429
    //! answer may pass: it is retried. Any other 4xx answer will not: it is permanent.

    use std::time::Duration;

    use hyper::StatusCode;

    use super::Failure;

    use http_body_util::Full;
    use hyper::{Request, body::Bytes, header::CONTENT_TYPE};
    use hyper_util::{
        client::legacy::{Client, connect::HttpConnector},
        rt::TokioExecutor,
    };

    const TIMEOUT: Duration = Duration::from_secs(5);

    pub struct Webhook {
        url: hyper::Uri,
        client: Client<HttpConnector, Full<Bytes>>,
    }

    impl Webhook {
        pub fn new(url: &str) -> Result<Self, String> {
            let url: hyper::Uri = url
                .parse()
                .map_err(|error| format!("invalid webhook URL {url:?}: {error}"))?;
            if url.scheme_str() != Some("http") {
                return Err(format!(
                    "webhook URL {url} must start with http:// (put TLS in front with a proxy)"
                ));
            }
            Ok(Self {
                url,
                client: Client::builder(TokioExecutor::new()).build_http(),
            })
        }

        pub async fn post(&self, body: String) -> Result<(), Failure> {
            let request = Request::post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|error| Failure::Permanent(error.to_string()))?;
            let answer = tokio::time::timeout(TIMEOUT, self.client.request(request))
                .await
                .map_err(|_| {
                    Failure::Transient(format!(
                        "webhook {} did not answer within {TIMEOUT:?}",
                        self.url
                    ))
                })?
                .map_err(|error| Failure::Transient(format!("webhook {}: {error}", self.url)))?;
            let status = answer.status();
            if status.is_success() {
                return Ok(());
            }
            let failure = format!("webhook {} answered {status}", self.url);
            Err(if is_permanent(status) {
                Failure::Permanent(failure)
            } else {
                Failure::Transient(failure)
            })
        }
    }

    /// A refusal that asking again will not change.
    pub fn is_permanent(status: StatusCode) -> bool {
        status.is_client_error()
            && status != StatusCode::REQUEST_TIMEOUT
            && status != StatusCode::TOO_MANY_REQUESTS
    }
}

pub use webhook::Webhook;

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

fn json_line(notification: &notifications::Model) -> String {
    format!(
        r#"{{"notification_id":"{}","order_id":"{}","customer_id":{},"kind":"{}","message":{},"sent_at":"{}"}}"#,
        notification.id,
        notification.order_id,
        json_string(&notification.customer_id),
        notification.kind,
        json_string(&notification.message),
        notification.sent_at.to_rfc3339(),
    )
}

/// A JSON string literal (escapes quotes, backslashes and control characters).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_that_asking_again_will_not_change_are_permanent() {
        use hyper::StatusCode;
        for status in [
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::GONE,
        ] {
            assert!(webhook::is_permanent(status), "{status}");
        }
        for status in [
            StatusCode::REQUEST_TIMEOUT,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            assert!(!webhook::is_permanent(status), "{status}");
        }
    }

    #[test]
    fn json_strings_escape_what_json_requires() {
        assert_eq!(json_string(r#"say "hi"\n"#), r#""say \"hi\"\\n""#);
        assert_eq!(json_string("tab\there"), r#""tab\u0009here""#);
    }
}
