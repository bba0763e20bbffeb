//! The files in `examples/` are what they say: the annotated domain XML carries a
//! valid annotation that names its settings, and its devices are ones ftd can
//! protect. (`examples/ftd.yaml` is checked by the config module's tests.)

use ftd::annotation::{self, Protection};
use ftd::colo::layout::DomainLayout;
use std::path::PathBuf;

fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_annotated_domain_example_is_marked_and_protectable() {
    let xml = example("protected-domain.xml");
    assert_eq!(
        annotation::from_domain_xml(&xml).unwrap(),
        Some(Protection {
            peer: "hostb".into(),
            checkpoint_interval_ms: Some(2000),
            auto_reprotect: Some(true),
        })
    );
    let l = DomainLayout::parse(&xml).unwrap();
    assert_eq!((l.name.as_str(), l.vcpus), ("web1", 2));
    l.check_replicable(&xml).unwrap();
    // The comment's documentation matches the annotation's rules.
    let range = annotation::CHECKPOINT_INTERVAL_MS;
    assert!(xml.contains(&format!(
        "milliseconds, {} to {}",
        range.start(),
        range.end()
    )));
}
