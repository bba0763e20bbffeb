//! The judge's rules, on views as corosync produces them in the three partitions
//! the lab tests (timings as measured there: token 1000 ms, consensus 1200 ms,
//! qdevice timeout 2000 ms, sync_timeout 2000 ms).

use super::*;

const PEER: u32 = 2;
const ME: u32 = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn params() -> Params {
    Params::derive(
        Timing {
            membership: ms(2200),
            qdevice_sync: ms(2000),
            qdevice_timeout: ms(2000),
        },
        ms(500),
    )
}

fn view(ring: u64, quorate: bool, members: &[u32], absent_since: Option<Instant>) -> View {
    View {
        connected: true,
        ring: (ME, ring),
        quorate,
        members: members.to_vec(),
        peer: PEER,
        peer_absent_since: absent_since,
        params: params(),
        problem: None,
    }
}

#[test]
fn params_follow_corosync_timings() {
    let p = params();
    assert_eq!(p.stop_wait, ms(2500));
    assert_eq!(p.settle, ms(4700));
    assert_eq!(p.give_up, ms(6700));
}

#[test]
fn primary_that_keeps_quorum_proceeds_at_once() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Primary, t0);
    // Heartbeats lost at t0; corosync still shows the old ring.
    let l = j.look(&view(9, true, &[ME, PEER], None), t0);
    assert_eq!(l.verdict, None);
    assert_eq!(l.again_at, Some(t0 + params().settle));
    // The new membership without the peer, quorate (the witness voted for us).
    let t1 = t0 + ms(1900);
    let l = j.look(&view(13, true, &[ME], Some(t1)), t1);
    assert_eq!(l.verdict, Some(Verdict::Proceed));
    assert!(j.done());
    assert_eq!(j.look(&view(13, true, &[ME], Some(t1)), t1).verdict, None);
}

#[test]
fn secondary_waits_until_the_peer_has_certainly_stopped() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Secondary, t0);
    let t1 = t0 + ms(1900);
    let l = j.look(&view(13, true, &[ME], Some(t1)), t1);
    assert_eq!(
        l.verdict, None,
        "the primary may not have cut its guest off yet"
    );
    assert_eq!(l.again_at, Some(t1 + ms(2500)));
    assert_eq!(
        j.look(&view(13, true, &[ME], Some(t1)), t1 + ms(2499))
            .verdict,
        None
    );
    assert_eq!(
        j.look(&view(13, true, &[ME], Some(t1)), t1 + ms(2500))
            .verdict,
        Some(Verdict::Proceed)
    );
}

#[test]
fn side_without_quorum_stops_at_once_then_gives_up() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Primary, t0);
    let t1 = t0 + ms(2300);
    let l = j.look(&view(13, false, &[ME], Some(t1)), t1);
    assert_eq!(l.verdict, Some(Verdict::Stop));
    assert_eq!(l.again_at, Some(t1 + ms(6700)));
    assert!(!j.done(), "Stop is not final: the vote may still come");
    assert_eq!(
        j.look(&view(13, false, &[ME], Some(t1)), t1 + ms(100))
            .verdict,
        None,
        "Stop is said once"
    );
    assert_eq!(
        j.look(&view(13, false, &[ME], Some(t1)), t1 + ms(6700))
            .verdict,
        Some(Verdict::Lost)
    );
}

#[test]
fn a_stopped_side_that_gets_the_vote_after_all_proceeds() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Secondary, t0);
    let t1 = t0 + ms(2200);
    assert_eq!(
        j.look(&view(13, false, &[ME], Some(t1)), t1).verdict,
        Some(Verdict::Stop)
    );
    // The witness's vote arrives 400 ms later: the secondary still waits for the
    // peer to have stopped, counted from when the peer left.
    let l = j.look(&view(13, true, &[ME], Some(t1)), t1 + ms(400));
    assert_eq!(l.verdict, None);
    assert_eq!(l.again_at, Some(t1 + ms(2500)));
    assert_eq!(
        j.look(&view(13, true, &[ME], Some(t1)), t1 + ms(2500))
            .verdict,
        Some(Verdict::Proceed)
    );
}

#[test]
fn no_corosync_means_no_quorum() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Primary, t0);
    let v = View::disconnected(params(), "corosync is not running".into());
    assert_eq!(j.look(&v, t0).verdict, Some(Verdict::Stop));
    assert_eq!(j.look(&v, t0 + ms(6700)).verdict, Some(Verdict::Lost));
}

#[test]
fn a_peer_that_stays_in_the_ring_is_alive() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Secondary, t0);
    let v = view(9, true, &[ME, PEER], None);
    assert_eq!(j.look(&v, t0 + ms(4699)).verdict, None);
    assert_eq!(j.look(&v, t0 + ms(4700)).verdict, Some(Verdict::PeerAlive));
}

#[test]
fn a_peer_that_left_and_came_back_is_not_called_alive() {
    let t0 = Instant::now();
    let mut j = Judge::new(Role::Primary, t0);
    assert_eq!(j.look(&view(9, true, &[ME, PEER], None), t0).verdict, None);
    // A short partition: both sides in a new ring, neither got the vote yet...
    let t1 = t0 + ms(2200);
    assert_eq!(
        j.look(&view(13, false, &[ME], Some(t1)), t1).verdict,
        Some(Verdict::Stop)
    );
    // ...then healed: the peer is back in a newer ring. It may have won meanwhile,
    // so this side is not told PeerAlive; it gives up unless the peers settle it.
    let v = view(17, true, &[ME, PEER], None);
    assert_eq!(j.look(&v, t1 + ms(3000)).verdict, None);
    assert_eq!(j.look(&v, t1 + ms(6700)).verdict, Some(Verdict::Lost));

    // Healed before this side ever lost quorum: no verdict at all.
    let mut j = Judge::new(Role::Secondary, t0);
    j.look(&view(13, true, &[ME], Some(t1)), t1);
    let l = j.look(&view(17, true, &[ME, PEER], None), t1 + ms(1000));
    assert_eq!(
        l,
        Look {
            verdict: None,
            again_at: None
        }
    );
}
