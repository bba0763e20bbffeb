//! Telling the death of the peer's ftd from its host's (`link`, "Host or ftd?"):
//! `DaemonLost` while the host answers, `Lost` when it does not (at once, or when
//! it stops answering later).

use super::proxy::Proxy;
use super::*;
use std::time::Instant;

/// Where a's knocks go: answered (accepted) until [`Gate::deafen`], dropped after
/// (a listener with a one-slot accept queue that nobody accepts from any more:
/// Linux drops the SYN then, as for a host that is gone).
struct Gate {
    addr: SocketAddr,
    _listener: std::sync::Arc<tokio::net::TcpListener>,
    accepting: tokio::task::JoinHandle<()>,
    queued: Vec<TcpStream>,
}

impl Gate {
    fn new() -> Gate {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(any_port()).unwrap();
        let l = std::sync::Arc::new(s.listen(0).unwrap());
        let addr = l.local_addr().unwrap();
        let l2 = l.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let _ = l2.accept().await;
            }
        });
        Gate {
            addr,
            _listener: l,
            accepting,
            queued: Vec::new(),
        }
    }

    /// Stop accepting, and fill the accept queue.
    async fn deafen(&mut self) {
        self.accepting.abort();
        while let Ok(Ok(c)) = timeout(ms(200), TcpStream::connect(self.addr)).await {
            self.queued.push(c);
            assert!(self.queued.len() < 16, "the accept queue does not fill up");
        }
    }
}

impl Side {
    async fn daemon_lost(&mut self) -> LostReason {
        match self.next().await {
            LinkEvent::DaemonLost { reason } => reason,
            other => panic!("expected DaemonLost, got {other:?}"),
        }
    }

    async fn lost_host(&mut self) -> LostReason {
        match self.next().await {
            LinkEvent::Lost { reason } => reason,
            other => panic!("expected Lost, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_killed_ftd_on_a_live_host_is_daemon_lost_until_it_is_back() {
    logs();
    let (mut a, b) = pair().await;
    let addr = b.h.local_addr().unwrap();
    let t = Instant::now();
    b.kill().await;
    let reason = a.daemon_lost().await;
    let took = t.elapsed();
    println!("ftd killed, host up: DaemonLost after {took:?} ({reason})");
    assert!(took < ms(600), "{took:?}");
    // Its host keeps answering (the port refuses): no Lost follows.
    a.quiet(ms(1500)).await;
    let mut b = spawn(b_cfg(addr));
    a.up().await;
    b.up().await;
}

#[tokio::test]
async fn the_host_of_a_lost_ftd_that_stops_answering_is_lost_after_detection() {
    logs();
    let mut gate = Gate::new();
    let mut b = spawn(b_cfg(any_port()));
    let mut cfg = a_cfg(b.h.local_addr().unwrap());
    cfg.probe_addr = gate.addr;
    let (detection, interval) = (cfg.detection, cfg.interval);
    let mut a = spawn(cfg);
    a.up().await;
    b.up().await;
    b.kill().await;
    a.daemon_lost().await;
    a.quiet(ms(800)).await;

    let t = Instant::now();
    gate.deafen().await;
    let reason = a.lost_host().await;
    let took = t.elapsed();
    println!("host stopped answering: Lost after {took:?} ({reason})");
    assert_eq!(reason, LostReason::HostSilent(detection));
    // One knock may still fill the queue; then `detection` without an answer.
    assert!(took <= detection + 2 * interval + ms(200), "{took:?}");
    a.quiet(ms(300)).await;
}

#[tokio::test]
async fn a_silent_peer_whose_host_does_not_answer_is_lost_at_the_usual_deadline() {
    logs();
    let mut gate = Gate::new();
    gate.deafen().await;
    let mut b = spawn(b_cfg(any_port()));
    let proxy = Proxy::start(b.h.local_addr().unwrap()).await;
    let mut cfg = a_cfg(proxy.addr);
    cfg.probe_addr = gate.addr;
    let (detection, interval) = (cfg.detection, cfg.interval);
    let mut a = spawn(cfg);
    a.up().await;
    b.up().await;
    tokio::time::sleep(ms(300)).await;
    let t = Instant::now();
    proxy.cut();
    let reason = a.lost_host().await;
    let took = t.elapsed();
    println!("path cut, host silent: Lost after {took:?} ({reason})");
    assert_eq!(reason, LostReason::Silent(detection));
    assert!(took <= detection + interval + ms(150), "{took:?}");
}

#[tokio::test]
async fn a_silent_peer_whose_host_answers_is_daemon_lost() {
    logs();
    let mut b = spawn(b_cfg(any_port()));
    let proxy = Proxy::start(b.h.local_addr().unwrap()).await;
    // The proxy's port stands for the peer's host: it keeps accepting.
    let mut a = spawn(a_cfg(proxy.addr));
    a.up().await;
    b.up().await;
    tokio::time::sleep(ms(300)).await;
    let t = Instant::now();
    proxy.cut();
    let reason = a.daemon_lost().await;
    println!("ftd silent, host up: DaemonLost after {:?}", t.elapsed());
    assert!(matches!(reason, LostReason::Silent(_)), "{reason}");
}

#[tokio::test]
async fn a_peer_host_that_never_answers_after_the_start_is_lost_then_up_when_it_comes() {
    logs();
    let mut gate = Gate::new();
    gate.deafen().await;
    // b's address, free until b starts.
    let addr = std::net::TcpListener::bind(any_port())
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = a_cfg(addr);
    cfg.probe_addr = gate.addr;
    let detection = cfg.detection;
    let t = Instant::now();
    let mut a = spawn(cfg);
    assert!(!a.h.host_lost());
    let reason = a.lost_host().await;
    let took = t.elapsed();
    println!("peer host silent since the start: Lost after {took:?} ({reason})");
    assert_eq!(reason, LostReason::Unreached(detection));
    assert!(took >= detection && took < detection + ms(400), "{took:?}");
    assert!(a.h.host_lost());
    a.quiet(ms(300)).await;
    let mut b = spawn(b_cfg(addr));
    a.up().await;
    b.up().await;
    assert!(!a.h.host_lost());
}
