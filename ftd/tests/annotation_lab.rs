//! The protection annotation through the libvirt driver against a real libvirtd:
//! set on a running domain, it is in the live and the persistent definition (virsh
//! sees it too), it parses back to what was set, and removing it removes it.

use ftd::annotation::{self, Protection, KEY, NAMESPACE};
use ftd::libvirt::Libvirt;
use ftvirt_lab::{GuestSpec, Lab, LabConfig};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn the_annotation_is_set_read_and_removed_through_libvirt() {
    let Some(lab) = Lab::for_test(LabConfig::hosts(&["a"])) else {
        return;
    };
    lab.boot_guest("a", &GuestSpec::standard("g", 0))
        .expect("boot");
    let host = lab.host("a").unwrap();
    let lv = Libvirt::new(&host.uri(), Duration::from_secs(10));

    // Unmarked to begin with.
    assert_eq!(lv.metadata("g", NAMESPACE).await.unwrap(), None);
    let live = lv.xml("g", false).await.unwrap();
    assert_eq!(annotation::from_domain_xml(&live).unwrap(), None);

    let want = Protection {
        peer: "b".into(),
        checkpoint_interval_ms: Some(2000),
        auto_reprotect: Some(true),
    };
    lv.set_metadata("g", Some(&annotation::to_element(&want)), KEY, NAMESPACE)
        .await
        .unwrap();

    // Through the driver: libvirt returns the element as it took it, bare.
    let el = lv.metadata("g", NAMESPACE).await.unwrap().expect("set");
    eprintln!("virDomainGetMetadata: {el}");
    assert_eq!(el.trim(), annotation::to_element(&want));
    assert_eq!(annotation::parse_element(&el).unwrap(), want);
    // libvirt binds the namespace itself and refuses an element that declares it.
    let e = lv
        .set_metadata(
            "g",
            Some(&annotation::to_metadata_child(&want)),
            KEY,
            NAMESPACE,
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("failed to create a new XML namespace"),
        "{e}"
    );
    // Through virsh, on the live and the persistent definitions.
    let by_virsh = host.virsh(&["metadata", "g", NAMESPACE]).unwrap();
    assert_eq!(annotation::parse_element(by_virsh.trim()).unwrap(), want);
    let live = lv.xml("g", false).await.unwrap();
    assert_eq!(
        annotation::from_domain_xml(&live).unwrap(),
        Some(want.clone())
    );
    let inactive = host.virsh(&["dumpxml", "--inactive", "g"]).unwrap();
    assert!(
        inactive.contains(&format!("<{KEY}:protection xmlns:{KEY}=\"{NAMESPACE}\"")),
        "{inactive}"
    );
    assert_eq!(
        annotation::from_domain_xml(&inactive).unwrap(),
        Some(want.clone())
    );

    // Setting again replaces (libvirt keeps one element per namespace).
    let other = Protection::new("c");
    lv.set_metadata("g", Some(&annotation::to_element(&other)), KEY, NAMESPACE)
        .await
        .unwrap();
    let live = lv.xml("g", false).await.unwrap();
    assert_eq!(live.matches("protection").count(), 1, "{live}");
    assert_eq!(annotation::from_domain_xml(&live).unwrap(), Some(other));

    // Persistent: it survives the domain's restart.
    lv.set_metadata("g", Some(&annotation::to_element(&want)), KEY, NAMESPACE)
        .await
        .unwrap();
    lv.destroy("g").await.unwrap();
    assert_eq!(
        annotation::parse_element(&lv.metadata("g", NAMESPACE).await.unwrap().unwrap()).unwrap(),
        want,
        "shut off: read from the persistent definition"
    );
    lv.start("g").await.unwrap();
    let live = lv.xml("g", false).await.unwrap();
    assert_eq!(
        annotation::from_domain_xml(&live).unwrap(),
        Some(want.clone())
    );

    // Removed from both definitions.
    lv.set_metadata("g", None, KEY, NAMESPACE).await.unwrap();
    assert_eq!(lv.metadata("g", NAMESPACE).await.unwrap(), None);
    for flag in [None, Some("--inactive")] {
        let mut args = vec!["dumpxml", "g"];
        args.extend(flag);
        let xml = host.virsh(&args).unwrap();
        assert_eq!(annotation::from_domain_xml(&xml).unwrap(), None, "{flag:?}");
    }
    assert!(host.virsh(&["metadata", "g", NAMESPACE]).is_err());

    // Shut off: set and remove work on the persistent definition alone.
    lv.destroy("g").await.unwrap();
    lv.set_metadata("g", Some(&annotation::to_element(&want)), KEY, NAMESPACE)
        .await
        .unwrap();
    let inactive = host.virsh(&["dumpxml", "--inactive", "g"]).unwrap();
    assert_eq!(annotation::from_domain_xml(&inactive).unwrap(), Some(want));
    lv.set_metadata("g", None, KEY, NAMESPACE).await.unwrap();
    assert_eq!(lv.metadata("g", NAMESPACE).await.unwrap(), None);

    let missing = lv.metadata("no-such-domain", NAMESPACE).await.unwrap_err();
    assert!(
        missing.to_string().contains("not defined on this host"),
        "{missing}"
    );
    lab.shutdown().unwrap();
}
