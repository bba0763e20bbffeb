//! The secondary's memory need and the CPU check's decision, on the lab
//! guest's live XML and KVM variants of it.

use super::*;

const LIVE: &str = include_str!("../testdata/lab-guest-live.xml");
const LAB_CPU: &str = "<cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='require' name='hypervisor'/>
    <feature policy='require' name='lahf_lm'/>
  </cpu>";

/// The lab guest as a KVM guest with `cpu` in place of its `<cpu>`.
fn kvm(cpu: &str) -> String {
    assert!(LIVE.contains(LAB_CPU), "the test data changed");
    LIVE.replacen("<domain type='qemu'", "<domain type='kvm'", 1)
        .replace(LAB_CPU, cpu)
}

#[test]
fn the_secondary_needs_twice_the_guest_and_qemus_headroom() {
    let m = MemoryNeed::default();
    assert_eq!((m.percent, m.headroom_mib), (200, 128));
    assert_eq!(m.bytes(512 * 1024), (1024 + 128) * MIB);
    let ratio_only = MemoryNeed {
        percent: 150,
        headroom_mib: 0,
    };
    assert_eq!(ratio_only.bytes(2 << 20), 3 << 30);
    // A size no host has saturates instead of wrapping.
    assert_eq!(m.bytes(u64::MAX), u64::MAX);
}

#[test]
fn too_little_memory_is_refused_with_the_numbers_and_the_fix() {
    let m = MemoryNeed {
        percent: 200,
        headroom_mib: 0,
    };
    assert_eq!(m.check("b", "g", 512 * 1024, 1024 * MIB), Ok(()));
    let e = m
        .check("b", "g", 512 * 1024, 900 * MIB + 5)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "host b has 900 MiB available, the secondary of g (512 MiB) needs about 1024 MiB"
        ),
        "{e}"
    );
    assert!(
        e.contains("free memory on b or lower g's memory (virsh setmaxmem g"),
        "{e}"
    );
    // The headroom counts, and shows.
    let e = MemoryNeed::default()
        .check("b", "g", 512 * 1024, 1100 * MIB)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("needs about 1152 MiB") && e.contains("128 MiB for QEMU"),
        "{e}"
    );
}

#[test]
fn a_tcg_guest_skips_the_cpu_check() {
    match cpu_check("b", "ftguest", LIVE).unwrap() {
        CpuCheck::Skip(why) => assert!(why.contains("'qemu'") && why.contains("TCG"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_kvm_guest_cpu_is_compared_as_its_definition_names_it() {
    let cpu = "<cpu mode='custom' match='exact' check='full'>\
               <model fallback='forbid'>Skylake-Server</model>\
               <feature policy='require' name='avx512f'/></cpu>";
    let CpuCheck::Compare(g) = cpu_check("b", "ftguest", &kvm(cpu)).unwrap() else {
        panic!("a KVM guest with a model is compared");
    };
    assert_eq!(g.xml, cpu, "the element as written");
    assert_eq!(
        (g.arch.as_str(), g.machine.as_str(), g.virt_type.as_str()),
        ("x86_64", "pc-i440fx-7.2", "kvm")
    );
    assert!(g
        .emulator
        .as_deref()
        .is_some_and(|e| e.ends_with("/qemu-system-x86_64")));
    // No mode means custom.
    let bare = "<cpu><model>Haswell</model></cpu>";
    assert!(matches!(
        cpu_check("b", "ftguest", &kvm(bare)).unwrap(),
        CpuCheck::Compare(g) if g.xml == bare
    ));
}

#[test]
fn a_kvm_guest_without_a_model_runs_qemus_default_and_skips() {
    for cpu in [
        "",
        "<cpu><topology sockets='1' cores='2' threads='1'/></cpu>",
    ] {
        match cpu_check("b", "ftguest", &kvm(cpu)).unwrap() {
            CpuCheck::Skip(why) => assert!(why.contains("default"), "{why}"),
            other => panic!("{cpu}: {other:?}"),
        }
    }
}

#[test]
fn a_host_cpu_mode_is_refused_as_not_comparable_with_the_fix() {
    for mode in ["host-passthrough", "maximum", "host-model"] {
        let e = cpu_check("b", "g", &kvm(&format!("<cpu mode='{mode}'/>")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("domain g uses <cpu mode='{mode}'>")),
            "{e}"
        );
        assert!(
            e.contains("host b's CPU") && e.contains("virsh edit"),
            "{e}"
        );
    }
}

#[test]
fn an_unreadable_definition_is_an_error_not_a_skip() {
    let e = cpu_check("b", "g", "<domain type='kvm'>").unwrap_err();
    assert!(matches!(e, Unfit::Definition(_)), "{e:?}");
}

#[test]
fn an_incompatible_cpu_says_what_to_do_before_libvirts_feature_list() {
    let e = Unfit::CpuIncompatible {
        host: "b".into(),
        domain: "g".into(),
        why: "Host CPU does not provide required features: avx512f, pku".into(),
    }
    .to_string();
    let fix = e.find("virsh hypervisor-cpu-baseline").unwrap();
    let features = e.find("avx512f, pku").unwrap();
    assert!(
        e.starts_with("host b cannot run domain g's CPU;") && fix < features,
        "{e}"
    );
    assert!(e.ends_with("required features: avx512f, pku"), "{e}");
}
