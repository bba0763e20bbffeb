//! What an authenticated peer, buggy or compromised, can make this host keep
//! (issue 14, item 2). `a`'s peer handle plays the peer, sending what it likes.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_spec_request_takes_no_slot_of_a_domain_not_protected_from_here() {
    let w = World::new().await;
    w.b.fake
        .add_domain("y", &w.b.dir.join("images/y.qcow2"), true);
    let _ = w.b.daemon.disable("y").await;
    assert_eq!(w.b.state("y").await, Some(State::Unprotected));
    let r =
        w.a.peer
            .request(
                crate::peer::Request::SecondarySpec { domain: "y".into() },
                Duration::from_secs(5),
            )
            .await;
    let e = r.expect_err("refused").to_string();
    assert!(e.contains("not protected from here"), "{e}");
    assert_eq!(w.b.ports.taken(), 0);
}
