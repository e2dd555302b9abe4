//! Where notifications go: the log always, and a JSON-lines file (one object per notification)
//! that other tools can tail.

use std::{
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
};

use crate::store::notifications;

#[derive(Clone, Debug)]
pub struct Sink {
    file: PathBuf,
}

impl Sink {
    pub fn new(file: PathBuf) -> Self {
        Self { file }
    }

    pub fn channel(&self) -> &'static str {
        "file"
    }

    /// Delivers one notification. A crash between this and the database commit delivers it
    /// again on redelivery (at least once); the record in the database stays single.
    pub fn deliver(&self, notification: &notifications::Model) -> std::io::Result<()> {
        tracing::info!(
            order_id = %notification.order_id,
            customer_id = notification.customer_id,
            kind = notification.kind,
            message = notification.message,
            "notification sent"
        );
        append_line(&self.file, &json_line(notification))
    }
}

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
