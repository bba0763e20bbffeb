//! Messages and requests both ways; sending while down. Volume and requests go
//! over TCP and TLS; timeouts and sending while down are the link's logic, on
//! the in-memory net with paused time.

use super::*;
use crate::coordinator::PeerMsg;
use tokio::time::Instant;

#[tokio::test]
async fn messages_flow_both_ways_in_order() {
    logs();
    let (mut a, mut b) = pair().await;
    let msgs = [
        PeerMsg::HostSecondary,
        PeerMsg::SecondaryReady,
        PeerMsg::SecondaryFailed("boom".into()),
        PeerMsg::PrimaryProtected,
    ];
    const N: usize = 200;
    for i in 0..N {
        a.h.send(format!("a{i}"), msgs[i % 4].clone()).unwrap();
        b.h.send(format!("b{i}"), msgs[(i + 1) % 4].clone())
            .unwrap();
    }
    for i in 0..N {
        assert_eq!(b.msg().await, (format!("a{i}"), msgs[i % 4].clone()));
        assert_eq!(a.msg().await, (format!("b{i}"), msgs[(i + 1) % 4].clone()));
    }
}

/// Answer the requests arriving at `side` like a secondary host would.
pub(super) fn serve(mut side: Side) -> tokio::task::JoinHandle<Side> {
    tokio::spawn(async move {
        while let Some(ev) = side.ev.recv().await {
            let LinkEvent::Request { body, reply } = ev else {
                continue;
            };
            let answer = match body {
                Request::Ping => Ok(Response::Pong),
                Request::SecondarySpec { domain } => Err(format!("{domain:?} is not protected")),
                Request::CreateSecondary { domain, .. } if domain == "nope" => {
                    Err(format!("domain {domain:?} cannot be replicated"))
                }
                Request::CreateSecondary { domain, params, .. } => Ok(Response::SecondaryReady {
                    nbd: NbdExport {
                        host: "127.0.0.1".into(),
                        port: params["nbd_port"].as_u64().unwrap() as u16,
                        name: domain,
                    },
                }),
            };
            let _ = reply.send(answer);
        }
        side
    })
}

#[tokio::test]
async fn requests_get_their_answers_both_ways() {
    logs();
    let (a, b) = pair().await;
    let (ah, bh) = (a.h.clone(), b.h.clone());
    let (_sa, _sb) = (serve(a), serve(b));

    let t = std::time::Instant::now();
    assert_eq!(
        ah.request(Request::Ping, SOON).await.unwrap(),
        Response::Pong
    );
    println!("Ping round trip: {:?}", t.elapsed());
    assert_eq!(
        bh.request(Request::Ping, SOON).await.unwrap(),
        Response::Pong
    );

    let create = |domain: &str| Request::CreateSecondary {
        domain: domain.into(),
        primary_xml: "<domain type='kvm'>...</domain>".repeat(1000),
        params: serde_json::json!({ "nbd_port": 10809 }),
    };
    let r = ah.request(create("vm1"), SOON).await.unwrap();
    assert_eq!(
        r,
        Response::SecondaryReady {
            nbd: NbdExport {
                host: "127.0.0.1".into(),
                port: 10809,
                name: "vm1".into()
            }
        }
    );
    let e = ah.request(create("nope"), SOON).await.unwrap_err();
    assert!(
        matches!(&e, PeerError::Remote { message, .. } if message.contains("cannot be replicated")),
        "{e}"
    );

    // Many at once, answered out of order by nobody in particular: ids match.
    let many = (0..50).map(|_| ah.request(Request::Ping, SOON));
    for r in futures::future::join_all(many).await {
        assert_eq!(r.unwrap(), Response::Pong);
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_times_out_when_the_peer_never_answers() {
    logs();
    let (_net, a, mut b) = mem_pair().await;
    let t = Instant::now();
    let ask = a.h.request(Request::Ping, ms(300));
    let (answer, held) = tokio::join!(ask, async {
        match b.next().await {
            LinkEvent::Request { body, reply } => (body, reply),
            other => panic!("expected Request, got {other:?}"),
        }
    });
    let took = t.elapsed();
    let e = answer.unwrap_err();
    assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("no answer within 300ms"), "{e}");
    assert_eq!(took, ms(300));

    // The late answer is dropped (logged); the link stays up and serves requests.
    assert_eq!(held.0, Request::Ping);
    held.1.send(Ok(Response::Pong)).unwrap();
    let (ah, bh) = (a.h.clone(), b.h.clone());
    let _sb = serve(b);
    assert_eq!(
        ah.request(Request::Ping, SOON).await.unwrap(),
        Response::Pong
    );
    assert!(ah.is_up() && bh.is_up());

    // A dropped reply handle is an error answer, not a hang.
    let (_net, a2, mut b2) = mem_pair().await;
    let ask = a2.h.request(Request::Ping, SOON);
    let (answer, ()) = tokio::join!(ask, async {
        match b2.next().await {
            LinkEvent::Request { reply, .. } => drop(reply),
            other => panic!("expected Request, got {other:?}"),
        }
    });
    let e = answer.unwrap_err();
    assert!(e.to_string().contains("without answering"), "{e}");
}

/// "At once": without waiting for any timer (the paused clock does not move).
#[tokio::test(start_paused = true)]
async fn send_while_down_fails_at_once() {
    logs();
    // The peer's ftd is not running.
    let net = MemoryNet::new();
    let a = mem_spawn(&net, memory::config("a", "b"));
    let t = Instant::now();
    let e = a.h.send("vm1", PeerMsg::TakeOver).unwrap_err();
    assert!(matches!(e, PeerError::Down { .. }), "{e}");
    let e = a.h.request(Request::Ping, SOON).await.unwrap_err();
    assert!(matches!(e, PeerError::Down { .. }), "{e}");
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert!(!a.h.is_up());

    // And right after a loss.
    let (net, mut a, _b) = mem_pair().await;
    net.kill_daemon("b");
    a.lost().await;
    let t = Instant::now();
    assert!(matches!(
        a.h.send("vm1", PeerMsg::TakeOver),
        Err(PeerError::Down { .. })
    ));
    let e = a.h.request(Request::Ping, SOON).await.unwrap_err();
    assert!(matches!(e, PeerError::Down { .. }), "{e}");
    assert_eq!(t.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn messages_queued_for_a_lost_session_are_not_delivered_to_the_next() {
    logs();
    let (mut a, b) = pair().await;
    let addr = b.h.local_addr().unwrap();
    b.kill().await;
    a.lost().await;
    let mut b = spawn(b_cfg(addr));
    a.up().await;
    b.up().await;
    // A command made for the old session (generation 1) is refused by the link task.
    let stale = super::handle::Command::Send {
        gen: 1,
        frame: frame::encode(&Frame::Msg {
            domain: "old".into(),
            msg: PeerMsg::TakeOver,
        })
        .unwrap(),
    };
    a.h.cmds.try_send(stale).unwrap();
    a.h.send("new", PeerMsg::HostSecondary).unwrap();
    assert_eq!(b.msg().await, ("new".into(), PeerMsg::HostSecondary));
}
