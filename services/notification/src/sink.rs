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
    pub async fn deliver(&self, notification: &notifications::Model) -> Result<(), String> {
        tracing::info!(
            order_id = %notification.order_id,
            customer_id = notification.customer_id,
            kind = notification.kind,
            message = notification.message,
            "notification sent"
        );
        let body = json_line(notification);
        match self {
            Self::File(path) => {
                append_line(path, &body).map_err(|error| format!("{}: {error}", path.display()))
            }
            Self::Webhook(webhook) => webhook.post(body).await,
        }
    }
}

mod webhook {
    //! POSTs each notification as JSON; any non-2xx answer or timeout is a failure to retry.

    use std::time::Duration;

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

        pub async fn post(&self, body: String) -> Result<(), String> {
            let request = Request::post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|error| error.to_string())?;
            let answer = tokio::time::timeout(TIMEOUT, self.client.request(request))
                .await
                .map_err(|_| format!("webhook {} did not answer within {TIMEOUT:?}", self.url))?
                .map_err(|error| format!("webhook {}: {error}", self.url))?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(format!("webhook {} answered {}", self.url, answer.status()))
            }
        }
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
    fn json_strings_escape_what_json_requires() {
        assert_eq!(json_string(r#"say "hi"\n"#), r#""say \"hi\"\\n""#);
        assert_eq!(json_string("tab\there"), r#""tab\u0009here""#);
    }
}
