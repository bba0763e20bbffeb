//! The secondary's host checks it can run the secondary (its free memory, a
//! KVM guest's CPU) before anything is created on it, and before the primary
//! pivots its disk or rewrites its definition: a refusal leaves both hosts as
//! they were, names the numbers or features, and the retry protects once the
//! cause is gone.

use super::*;

/// A KVM guest CPU requiring two features.
const KVM_CPU: &str = "<cpu mode='custom' match='exact' check='full'>\
     <model fallback='forbid'>Skylake-Server</model>\
     <feature policy='require' name='avx512f'/>\
     <feature policy='require' name='pku'/></cpu>";

/// `g` on `a` redefined as the lab's guest with `cpu`, of domain type `kind`.
fn redefine_g(w: &World, kind: &str, cpu: &str) -> String {
    let xml = crate::testing::domain_xml("g", &w.a.dir.join("images/g.qcow2"))
        .replacen(
            "<domain type='qemu'>",
            &format!("<domain type='{kind}'>"),
            1,
        )
        .replacen("<devices>", &format!("{cpu}<devices>"), 1);
    assert!(xml.contains(kind) && xml.contains(cpu));
    w.a.fake.add_domain_xml("g", &xml, true);
    xml
}

/// Enable `g` and wait for the attempt to fail; its error.
async fn refused(w: &World) -> String {
    assert_eq!(
        w.a.daemon.enable("g", Default::default()).await,
        Ok(State::Preparing)
    );
    w.wait("a failed", || async {
        w.a.state("g").await == Some(State::Failed)
    })
    .await;
    w.a.status("g")
        .await
        .unwrap()
        .last_error
        .unwrap_or_default()
}

/// Nothing was made on `b` (the clean-up after the refusal finds no domain
/// and no files), and `a` only answered questions: its disk not pivoted, its
/// definition as it was (`xml`), no COLO.
fn nothing_changed(w: &World, xml: &str) {
    let b = w.b.fake.calls();
    for made in ["qemu-img", "create g"] {
        assert!(
            !b.iter().any(|c| c.starts_with(made)),
            "{made} on b: {b:#?}"
        );
    }
    let checked = b.iter().position(|c| c == "meminfo").expect("checked");
    let destroyed = b.iter().position(|c| c.starts_with("destroy g"));
    assert!(destroyed.is_none_or(|d| d > checked), "{b:#?}");
    assert!(w.b.fake.dom("g").is_none(), "b never had g");
    let dir = w.b.dir.join("overlays/g");
    assert!(!dir.exists(), "{} was made", dir.display());
    let a = w.a.fake.calls();
    assert!(
        !a.iter()
            .any(|c| c.starts_with("define") || c.starts_with("qemu-img")),
        "{a:#?}"
    );
    // The spec's questions, and the Undo's `cont` of a guest that runs.
    let qmp = w.a.qmp("g");
    assert!(
        qmp.iter()
            .all(|c| matches!(c.as_str(), "query-block" | "qom-get" | "cont")),
        "{qmp:?}"
    );
    let g = w.a.fake.dom("g").unwrap();
    assert_eq!(g.inactive_xml, xml, "a's definition is unchanged");
    assert!(w.a.fake.runs("g"));
    assert_eq!(w.a.fake.colo_mode("g"), "none");
}

#[tokio::test(start_paused = true)]
async fn a_secondary_host_short_of_memory_refuses_before_anything_changes() {
    let w = World::new().await;
    let xml = w.a.fake.dom("g").unwrap().inactive_xml;
    w.b.fake.set_mem_available(900 << 20);
    let e = refused(&w).await;
    assert!(
        e.contains(
            "host b has 900 MiB available, the secondary of g (512 MiB) needs about 1152 MiB"
        ) && e.contains("free memory on b or lower g's memory"),
        "{e}"
    );
    assert!(w.b.call_index("meminfo").is_some());
    nothing_changed(&w, &xml);
    // Once memory is freed on b, the retry protects.
    w.b.fake.set_mem_available(2 << 30);
    w.wait("COLO after the retry", || async {
        w.a.fake.colo_mode("g") == "primary"
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_kvm_guest_whose_cpu_the_secondary_host_runs_is_protected() {
    let w = World::new().await;
    redefine_g(&w, "kvm", KVM_CPU);
    w.b.fake
        .set_cpu_features(Some(&["avx512f", "pku", "x2apic"]));
    w.protect().await;
    let compared = w.b.call_index("compare-cpu g kvm").expect("compared");
    assert!(compared < w.b.call_index("qemu-img").unwrap());
    // Where a refused attempt leaves nothing.
    assert!(w.b.dir.join("overlays/g").is_dir());
    let live = w.b.fake.dom("g").unwrap().live_xml;
    let first = live.lines().next().unwrap_or_default();
    assert!(
        first.contains("type='kvm'") && live.contains("name='avx512f'"),
        "the secondary runs the primary's CPU: {live}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_kvm_guest_whose_cpu_the_secondary_host_lacks_is_refused_naming_the_features() {
    let w = World::new().await;
    let xml = redefine_g(&w, "kvm", KVM_CPU);
    w.b.fake.set_cpu_features(Some(&["pku", "x2apic"]));
    let e = refused(&w).await;
    assert!(
        e.contains("host b cannot run domain g's CPU")
            && e.contains("does not provide required features: avx512f")
            && !e.contains("pku"),
        "{e}"
    );
    nothing_changed(&w, &xml);
}

#[tokio::test(start_paused = true)]
async fn a_kvm_guest_on_the_hosts_own_cpu_is_refused_as_not_comparable() {
    let w = World::new().await;
    let xml = redefine_g(&w, "kvm", "<cpu mode='host-passthrough' check='none'/>");
    let e = refused(&w).await;
    assert!(
        e.contains("domain g uses <cpu mode='host-passthrough'>, which libvirt cannot compare"),
        "{e}"
    );
    assert!(w.b.call_index("compare-cpu").is_none());
    nothing_changed(&w, &xml);
}

#[tokio::test(start_paused = true)]
async fn a_tcg_guest_is_protected_without_a_cpu_comparison() {
    let w = World::new().await;
    // A host lacking the guest CPU's features does not matter under TCG.
    redefine_g(&w, "qemu", KVM_CPU);
    w.b.fake.set_cpu_features(Some(&[]));
    w.protect().await;
    assert!(
        w.b.call_index("compare-cpu").is_none(),
        "{:#?}",
        w.b.fake.calls()
    );
    assert!(w.b.call_index("meminfo").unwrap() < w.b.call_index("destroy g").unwrap());
}
