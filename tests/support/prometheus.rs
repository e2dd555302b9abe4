//! Scraping a component's `/metrics` (Prometheus text format) and reading series from it.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Label pairs of one sample.
type Labels = Vec<(String, String)>;

/// One scrape: every sample as (name, labels, value).
pub struct Scrape {
    body: String,
    samples: Vec<(String, Labels, f64)>,
}

/// GETs `/metrics` from `addr` (HTTP/1.0, so the server closes when done).
pub async fn scrape(addr: SocketAddr) -> Scrape {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("no metrics endpoint at {addr}: {error}"));
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or(("", ""));
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "scrape failed: {head}"
    );
    Scrape {
        samples: body.lines().filter_map(parse_sample).collect(),
        body: body.to_owned(),
    }
}

impl Scrape {
    /// The series as served, for failure messages.
    pub fn text(&self) -> &str {
        &self.body
    }

    /// The sum of every sample of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, value)| value).sum()
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(sample, _, _)| sample == name)
    }

    /// Every sample of `name` with `labels`, as (labels, value).
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a [(String, String)], f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(sample, sample_labels, _)| {
                sample == name
                    && labels.iter().all(|(key, value)| {
                        sample_labels.iter().any(|(k, v)| k == key && v == value)
                    })
            })
            .map(|(_, labels, value)| (labels.as_slice(), *value))
    }
}

/// `name{a="x",b="y"} 1.5` or `name 1.5`; comments and blank lines are skipped.
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, labels)) = series.split_once('{') else {
        return Some((series.to_owned(), Vec::new(), value));
    };
    let labels = labels
        .trim_end_matches('}')
        .split("\",")
        .filter_map(|pair| {
            let (key, value) = pair.split_once("=\"")?;
            Some((key.to_owned(), value.trim_end_matches('"').to_owned()))
        })
        .collect();
    Some((name.to_owned(), labels, value))
}

#[test]
fn samples_parse_with_and_without_labels() {
    let (name, labels, value) = parse_sample(
        r#"orderly_consumer_lag{group="order",topic="orderly.sagas.v1",partition="2"} 3"#,
    )
    .unwrap();
    assert_eq!(name, "orderly_consumer_lag");
    assert_eq!(
        labels[1],
        ("topic".to_owned(), "orderly.sagas.v1".to_owned())
    );
    assert_eq!(value, 3.0);
    assert_eq!(
        parse_sample("orderly_sagas_started_total 12"),
        Some(("orderly_sagas_started_total".into(), vec![], 12.0))
    );
    assert_eq!(parse_sample("# HELP x y"), None);
}
