//! Protecting a domain, end to end on the fakes: the calls each host makes, in
//! order, and what each side reports.

use super::*;
use crate::annotation::NAMESPACE;

/// The primary's QMP sequence, from Enable to COLO running (see colo/plan.rs).
const PRIMARY_PROTECT: &[&str] = &[
    // The spec the secondary asks for.
    "query-block",
    "qom-get",
    "qom-get",
    // Sync: the pivot under a fresh quorum, then the mirror to the secondary.
    "query-block",
    "blockdev-add",
    "blockdev-add",
    "blockdev-mirror",
    "query-block-jobs",
    "block-job-complete",
    "query-block-jobs",
    // The TLS objects, then the mirror into b's export.
    "object-del",
    "object-add",
    "object-del",
    "object-add",
    "object-del",
    "object-add",
    "blockdev-del",
    "blockdev-add",
    "blockdev-mirror",
    "query-block-jobs",
    // StartColo.
    "stop",
    "block-job-cancel",
    "query-block-jobs",
    "blockdev-del",
    "blockdev-add",
    "x-blockdev-change",
    "chardev-add",
    "chardev-add",
    "chardev-add",
    "chardev-add",
    "chardev-add",
    "chardev-add",
    "object-add",
    "object-add",
    "object-add",
    "object-add",
    // Both proxy sockets have b connected (through TLS).
    "query-chardev",
    "migrate-set-capabilities",
    "migrate-set-parameters",
    "migrate",
    "query-colo-status",
];

#[tokio::test(start_paused = true)]
async fn enable_protects_with_the_planned_calls_in_order() {
    let w = World::new().await;
    w.protect().await;
    let a = w.a.qmp("g");
    assert_eq!(
        &a[..PRIMARY_PROTECT.len()],
        PRIMARY_PROTECT,
        "a's QMP: {a:#?}"
    );
    // libvirt's side on a: the checks before anything changed, the IOThread
    // colo-compare needs, the definition pointed at the new image, the mark.
    let calls = w.a.fake.calls();
    let pos = |what: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {calls:#?}"))
    };
    assert!(pos("metadata g") < pos("qmp g query-block"));
    assert!(
        pos("define g") < pos("qmp g object-add"),
        "the definition follows the pivot"
    );
    assert!(pos("iothread g add 900") < pos("qmp g migrate"));
    assert!(pos("set-metadata g set") > pos("metadata g"));
    assert!(w.a.fake.metadata_of("g", NAMESPACE).is_some(), "a marks g");
    // b: images, a clean start of the incoming copy, then the NBD export.
    let b = w.b.fake.calls();
    let i = |what: &str| {
        b.iter()
            .position(|c| c.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {b:#?}"))
    };
    assert!(i("destroy g") < i("qemu-img"));
    assert!(i("qemu-img") < i("create g"));
    assert!(i("create g") < i("qmp g query-status"));
    assert!(i("qmp g nbd-server-start") < i("qmp g nbd-server-add"));
    // It listens for the primary's state only once its TLS is set.
    assert!(i("qmp g nbd-server-add") < i("qmp g migrate-set-parameters"));
    assert!(i("qmp g migrate-set-parameters") < i("qmp g migrate-incoming"));
    assert_eq!(w.b.fake.colo_mode("g"), "secondary");
    // Status on both sides.
    let sa = w.a.status("g").await.unwrap();
    assert!(sa.wanted && sa.peer_up && sa.checkpoints == 1, "{sa:?}");
    assert!(sa.last_checkpoint_age.is_some());
    let sb = w.b.status("g").await.unwrap();
    assert_eq!(sb.state, State::Secondary);
}

#[tokio::test(start_paused = true)]
async fn the_configured_interval_is_set_after_the_first_checkpoint() {
    let w = World::new().await;
    w.protect().await;
    w.wait("the interval set", || async {
        w.a.fake
            .calls()
            .iter()
            .filter(|c| c.as_str() == "qmp g migrate-set-parameters")
            .count()
            == 2
    })
    .await;
    let params = w.a.fake.dom("g").unwrap().params;
    assert_eq!(params["x-checkpoint-delay"], 2000);
    // More checkpoints are counted, one STOP/RESUME each.
    w.cluster.checkpoint("g");
    w.cluster.checkpoint("g");
    w.wait("3 checkpoints", || async {
        w.a.status("g").await.is_some_and(|s| s.checkpoints == 3)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_secondary_that_cannot_start_fails_the_attempt_and_the_primary_runs_on() {
    let w = World::new().await;
    w.b.fake
        .fail("create", Some("unsupported configuration: no IOMMU"));
    assert_eq!(
        w.a.daemon.enable("g", Default::default()).await,
        Ok(State::Preparing)
    );
    w.wait("a failed", || async {
        w.a.state("g").await == Some(State::Failed)
    })
    .await;
    let s = w.a.status("g").await.unwrap();
    let err = s.last_error.unwrap_or_default();
    assert!(
        err.contains("no IOMMU") && err.contains("tries again"),
        "{err}"
    );
    assert!(w.a.fake.runs("g"), "the primary keeps running");
    assert_eq!(w.a.fake.colo_mode("g"), "none");
    // The retry protects once the cause is gone.
    w.b.fake.fail("create", None);
    w.wait("COLO after the retry", || async {
        w.a.fake.colo_mode("g") == "primary"
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn bad_requests_are_refused_with_what_to_fix_and_change_nothing() {
    let w = World::new().await;
    let e =
        w.a.daemon
            .enable("nope", Default::default())
            .await
            .unwrap_err();
    assert_eq!(e, crate::domain::CommandError::NoSuchDomain("nope".into()));
    assert!(w.a.daemon.disable("nope").await.is_err());
    let opts = ftd_proxy::EnableOptions {
        peer: Some("c".into()),
        ..Default::default()
    };
    let e = w.a.daemon.enable("g", opts).await.unwrap_err().to_string();
    assert!(e.contains("\"c\" is not one of this ftd's peers"), "{e}");
    // A broken annotation names the command that fixes it.
    w.a.fake
        .add_domain("h", &w.a.dir.join("images/h.qcow2"), true);
    use crate::host::Hypervisor;
    w.a.fake
        .set_metadata(
            "h",
            Some("<protection peer='b' checkpoint-interval='x'/>"),
            "ft",
            NAMESPACE,
        )
        .await
        .unwrap();
    let e =
        w.a.daemon
            .enable("h", Default::default())
            .await
            .unwrap_err()
            .to_string();
    assert!(e.contains("virsh metadata h") && !e.contains("  "), "{e}");
    // Nothing was started on b, nothing changed in a's QEMU (h, marked and
    // running, was only read: ftd took it for a domain to re-attach).
    assert!(!w.b.fake.calls().iter().any(|c| c.starts_with("create")));
    assert!(w.a.qmp("g").is_empty(), "{:?}", w.a.qmp("g"));
    let h = w.a.qmp("h");
    assert!(
        h.iter().all(|c| c.starts_with("query-") || c == "qom-list"),
        "{h:?}"
    );
    // Failover of an unprotected domain is refused.
    assert!(matches!(
        w.a.daemon.failover("g").await,
        Err(crate::domain::CommandError::Refused(_))
    ));
}
