//! A webhook receiver on loopback for the notification service: answers each request with the
//! status `answer` gives for it (by its number, from 0), and hands over every body it accepted
//! (answered 2xx).

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

pub async fn receiver(
    answer: impl Fn(u64) -> u16 + Send + 'static,
) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notifications", listener.local_addr().unwrap());
    let (bodies, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for request in 0.. {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = read_body(&mut socket).await;
            let status = answer(request);
            let _ = socket
                .write_all(
                    format!(
                        "HTTP/1.1 {status} {}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        reason(status)
                    )
                    .as_bytes(),
                )
                .await;
            if let (Some(body), 200..=299) = (body, status) {
                let _ = bodies.send(body);
            }
        }
    });
    (url, received)
}

/// One request per connection is enough for hyper's client: reads its headers and body.
async fn read_body(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut raw = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let read = socket.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return None;
        }
        raw.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>())
                })
                .and_then(Result::ok)
                .unwrap_or(0);
            if body.len() >= length {
                return Some(body.to_owned());
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}
