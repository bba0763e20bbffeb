//! Knocking at the peer's host: is it alive although its ftd does not talk?
//!
//! A TCP connection attempt to the peer's address ([`super::PeerConfig::probe_addr`],
//! by default the peer link's own address) that is *accepted* or *refused* (a
//! RST) was answered by the peer host's kernel: the host lives, whatever its ftd
//! does. An attempt that times out, or fails otherwise (no route, host
//! unreachable), was not: the host is down, or cut off. A knock sends no byte: an
//! accepted connection is closed at once.
//!
//! On the in-memory net of tests ([`super::memory`]) the net answers for the host:
//! a knock is answered unless the host is down or the path to it is cut.

use super::memory;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at, Instant};

/// Where to knock.
#[derive(Debug, Clone)]
pub(crate) enum Knocker {
    /// A TCP connection attempt to this address.
    Tcp(SocketAddr),
    /// The peer's host on a [`memory::MemoryNet`].
    Memory(memory::Port),
}

/// One attempt, bounded by `deadline`: did the host answer?
pub(crate) async fn knock(at: &Knocker, deadline: Instant) -> bool {
    let addr = match at {
        Knocker::Tcp(addr) => *addr,
        Knocker::Memory(port) => return port.knock(deadline).await,
    };
    match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        Err(_) => false,
    }
}

/// Knock every `every` until the host answers (true) or `deadline` passes (false).
pub(crate) async fn answers_before(at: Knocker, every: Duration, deadline: Instant) -> bool {
    loop {
        let t = Instant::now();
        if knock(&at, deadline).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep_until((t + every).min(deadline)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn accepted_and_refused_are_answers() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = Knocker::Tcp(l.local_addr().unwrap());
        assert!(knock(&open, soon(1000)).await, "accepted");
        drop(l);
        assert!(knock(&open, soon(1000)).await, "refused");
    }

    #[tokio::test]
    async fn a_host_that_drops_connection_attempts_does_not_answer() {
        let d = deaf().await;
        let at = Knocker::Tcp(d.addr);
        let t = Instant::now();
        // Knocking stops at the deadline (the bound only catches a hang).
        let knocking = answers_before(at, Duration::from_millis(50), soon(300));
        let answered = tokio::time::timeout(Duration::from_secs(30), knocking)
            .await
            .expect("knocking went on past its deadline");
        assert!(!answered);
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }

    /// An address whose SYNs are dropped (while this lives): a listener with a
    /// full accept queue that never accepts (Linux drops the SYN then, no RST).
    struct Deaf {
        addr: SocketAddr,
        _listener: tokio::net::TcpListener,
        _held: Vec<TcpStream>,
    }

    async fn deaf() -> Deaf {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let l = s.listen(0).unwrap();
        let addr = l.local_addr().unwrap();
        let mut held = Vec::new();
        // Fill the queue: attempts go through until it is full, then hang.
        while let Ok(Ok(c)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
        {
            held.push(c);
            assert!(held.len() < 16, "the accept queue does not fill up");
        }
        Deaf {
            addr,
            _listener: l,
            _held: held,
        }
    }
}
