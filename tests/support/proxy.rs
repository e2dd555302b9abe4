//! A loopback TCP fault proxy: listens on 127.0.0.1:0, forwards every connection to a target,
//! and injects network faults switched at runtime by the test (delay, blackhole, reset, dropped
//! replies). Tokio only; bounded in connections and buffers; stops when dropped.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore, watch},
    task::{JoinHandle, JoinSet},
};

/// More connections than any test opens; beyond it new ones are reset.
const MAX_CONNECTIONS: usize = 256;
/// Bytes read (and held) at once per direction.
const CHUNK: usize = 16 * 1024;

/// What the link does to the bytes crossing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    PassThrough,
    /// Every chunk waits this long before it is forwarded (each direction keeps its order).
    Delay(Duration),
    /// Connections are accepted and kept, but nothing crosses in either direction; what was
    /// in flight is held and delivered after heal, as TCP would after a partition.
    Blackhole,
    /// Every connection is closed with RST (SO_LINGER 0) and new ones are reset at once.
    Reset,
    /// Requests reach the target; its replies are discarded. A connection that lost replies is
    /// reset when this fault ends (its byte stream is broken, as it would be on a real network).
    DropReplies,
}

/// A running proxy; dropping it stops the listener and every connection.
pub struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    fault: watch::Sender<Fault>,
    accepted: Arc<AtomicU64>,
    accepting: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target` (which may not listen yet:
    /// a connection made before it does is simply closed).
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (fault, watching) = watch::channel(Fault::PassThrough);
        let target = Arc::new(Mutex::new(target));
        let accepted = Arc::new(AtomicU64::new(0));
        let accepting = tokio::spawn(accept(listener, target.clone(), watching, accepted.clone()));
        Self {
            addr,
            target,
            fault,
            accepted,
            accepting,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forwards new connections to `target` (for a proxy started before its target's address
    /// was known: a client given the proxy's address connects lazily).
    pub fn retarget(&self, target: SocketAddr) {
        *self.target.lock().expect("proxy target") = target;
    }

    /// Switches the fault for existing and new connections.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn heal(&self) {
        self.set(Fault::PassThrough);
    }

    /// Connections clients have made so far, whatever became of them.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.accepting.abort();
    }
}

async fn accept(
    listener: TcpListener,
    target: Arc<Mutex<SocketAddr>>,
    fault: watch::Receiver<Fault>,
    accepted: Arc<AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nodelay(true);
        let slot = slots.clone().try_acquire_owned();
        if *fault.borrow() == Fault::Reset || slot.is_err() {
            reset(&client);
            continue;
        }
        let fault = fault.clone();
        let Ok(target) = target.lock().map(|target| *target) else {
            return;
        };
        connections.spawn(async move {
            let _slot = slot;
            relay(client, target, fault).await;
        });
    }
}

/// Closes with RST instead of FIN once the socket is dropped.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Reply,
}

async fn relay(mut client: TcpStream, target: SocketAddr, mut fault: watch::Receiver<Fault>) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        reset(&client);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let lost_replies = LostReplies::default();
    let must_reset = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let requests = pump(
            &mut client_read,
            &mut upstream_write,
            Direction::Request,
            fault.clone(),
            &lost_replies,
        );
        let replies = pump(
            &mut upstream_read,
            &mut client_write,
            Direction::Reply,
            fault.clone(),
            &lost_replies,
        );
        tokio::select! {
            _ = futures::future::join(requests, replies) => false,
            () = broken(&mut fault, &lost_replies) => true,
        }
    };
    if must_reset {
        reset(&client);
        reset(&upstream);
    }
}

/// Whether a connection has discarded replies, with a wake-up for whoever watches it.
#[derive(Default)]
struct LostReplies {
    lost: AtomicBool,
    changed: Notify,
}

impl LostReplies {
    fn mark(&self) {
        if !self.lost.swap(true, Ordering::Relaxed) {
            self.changed.notify_one();
        }
    }
}

/// Resolves when this connection must die: a Reset fault, a stopped proxy, or the end of a
/// DropReplies fault that cost it replies.
async fn broken(fault: &mut watch::Receiver<Fault>, lost_replies: &LostReplies) {
    loop {
        let current = *fault.borrow_and_update();
        let lost = lost_replies.lost.load(Ordering::Relaxed);
        if current == Fault::Reset || (lost && current != Fault::DropReplies) {
            return;
        }
        tokio::select! {
            changed = fault.changed() => if changed.is_err() { return },
            () = lost_replies.changed.notified() => {}
        }
    }
}

/// Copies one direction chunk by chunk, applying the fault in force when the chunk is read.
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    direction: Direction,
    mut fault: watch::Receiver<Fault>,
    lost_replies: &LostReplies,
) {
    let mut buffer = vec![0; CHUNK];
    loop {
        // Not reading while blackholed leaves the bytes in the sender's socket buffers.
        if flowing(&mut fault).await.is_none() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        // The fault may have changed while the read waited: hold the chunk through a blackhole.
        let Some(current) = flowing(&mut fault).await else {
            return;
        };
        match current {
            Fault::Delay(by) => tokio::time::sleep(by).await,
            Fault::DropReplies if direction == Direction::Reply => {
                lost_replies.mark();
                continue;
            }
            Fault::PassThrough | Fault::DropReplies | Fault::Blackhole | Fault::Reset => {}
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Waits while the link carries nothing (blackhole; reset until the connection is torn down);
/// None once the proxy is gone.
async fn flowing(fault: &mut watch::Receiver<Fault>) -> Option<Fault> {
    loop {
        let current = *fault.borrow_and_update();
        if !matches!(current, Fault::Blackhole | Fault::Reset) {
            return Some(current);
        }
        fault.changed().await.ok()?;
    }
}

#[cfg(test)]
mod tests {
    use std::{io::ErrorKind, sync::Mutex};

    use super::*;

    /// How long a test waits to be sure nothing arrives.
    const QUIET: Duration = Duration::from_millis(300);

    /// An echo server that also keeps everything it received (to see requests that arrive
    /// even when their replies are dropped).
    async fn echo_server() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buffer = [0; 1024];
                    while let Ok(read @ 1..) = socket.read(&mut buffer).await {
                        seen.lock().unwrap().extend_from_slice(&buffer[..read]);
                        if socket.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, received)
    }

    async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(message).await?;
        let mut answer = vec![0; message.len()];
        stream.read_exact(&mut answer).await?;
        Ok(answer)
    }

    /// Nothing arrives for `QUIET`.
    async fn assert_silent(stream: &mut TcpStream) {
        let mut byte = [0; 1];
        let read = tokio::time::timeout(QUIET, stream.read(&mut byte)).await;
        assert!(read.is_err(), "expected silence, got {read:?}");
    }

    async fn assert_reset(stream: &mut TcpStream) {
        let mut byte = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("the reset arrives at once");
        let kind = read.map(drop).expect_err("a reset, not data or EOF").kind();
        assert_eq!(kind, ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn proxy_passes_bytes_through_both_ways() {
        let (echo, received) = echo_server().await;
        let proxy = Proxy::start(echo).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello").await.unwrap(), b"hello");
        assert_eq!(*received.lock().unwrap(), b"hello");
    }

    #[tokio::test]
    async fn proxy_delays_each_chunk_in_each_direction() {
        let (echo, _) = echo_server().await;
        let proxy = Proxy::start(echo).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.set(Fault::Delay(Duration::from_millis(200)));
        let started = tokio::time::Instant::now();
        assert_eq!(round_trip(&mut stream, b"slow").await.unwrap(), b"slow");
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "request and reply delayed"
        );
        proxy.heal();
        let started = tokio::time::Instant::now();
        round_trip(&mut stream, b"fast").await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(200), "healed");
    }

    #[tokio::test]
    async fn proxy_blackhole_keeps_connections_but_forwards_nothing_until_heal() {
        let (echo, received) = echo_server().await;
        let proxy = Proxy::start(echo).await;
        let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut old, b"before").await.unwrap();
        proxy.set(Fault::Blackhole);
        let mut new = TcpStream::connect(proxy.addr())
            .await
            .expect("a blackhole still accepts");
        old.write_all(b"held").await.unwrap();
        new.write_all(b"also").await.unwrap();
        assert_silent(&mut old).await;
        assert_silent(&mut new).await;
        assert_eq!(
            *received.lock().unwrap(),
            b"before",
            "nothing went upstream"
        );

        proxy.heal();
        let mut answer = [0; 4];
        old.read_exact(&mut answer).await.unwrap();
        assert_eq!(
            &answer, b"held",
            "held bytes are delivered after heal, as TCP would"
        );
        new.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"also");
    }

    #[tokio::test]
    async fn proxy_reset_kills_every_connection_and_refuses_new_ones() {
        let (echo, _) = echo_server().await;
        let proxy = Proxy::start(echo).await;
        let mut old = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut old, b"before").await.unwrap();
        proxy.set(Fault::Reset);
        assert_reset(&mut old).await;
        let mut new = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_reset(&mut new).await;

        proxy.heal();
        let mut healed = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut healed, b"after").await.unwrap(), b"after");
    }

    #[tokio::test]
    async fn proxy_drop_replies_forwards_requests_and_discards_answers() {
        let (echo, received) = echo_server().await;
        let proxy = Proxy::start(echo).await;
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.set(Fault::DropReplies);
        stream.write_all(b"request").await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while received.lock().unwrap().as_slice() != b"request" {
            assert!(
                tokio::time::Instant::now() < deadline,
                "request never arrived"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_silent(&mut stream).await;

        // The connection lost bytes: healing resets it; new connections work.
        proxy.heal();
        assert_reset(&mut stream).await;
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"again").await.unwrap(), b"again");
    }

    #[tokio::test]
    async fn proxy_stops_when_dropped() {
        let (echo, _) = echo_server().await;
        let proxy = Proxy::start(echo).await;
        let addr = proxy.addr();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        round_trip(&mut stream, b"hi").await.unwrap();
        drop(proxy);
        let mut byte = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("the connection ends");
        assert!(!matches!(read, Ok(1..)), "no data after drop: {read:?}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "still listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
