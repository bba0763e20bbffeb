//! The protection annotation (crate `ftd-annotation`): the input is XML as ftd and
//! the hook get it, a bare element from `virDomainGetMetadata` ([`parse_element`])
//! or a whole domain XML on the hook's stdin ([`from_domain_xml`]).
//!
//! Properties: neither parser panics; an annotation either one accepts is valid
//! ([`Protection::validate`]) and reads back unchanged from what ftd writes
//! ([`to_element`] for `virDomainSetMetadata`, [`to_metadata_child`] in a domain
//! XML); every error has a message.

#![no_main]

use ftd_annotation::{
    from_domain_xml, parse_element, to_element, to_metadata_child, AnnotationError, Protection,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libvirt hands over text; the hook refuses stdin that is not UTF-8 before this.
    let Ok(xml) = std::str::from_utf8(data) else {
        return;
    };
    match parse_element(xml) {
        Ok(p) => round_trips(&p),
        Err(e) => explained(&e),
    }
    match from_domain_xml(xml) {
        Ok(Some(p)) => round_trips(&p),
        Ok(None) => {}
        Err(e) => explained(&e),
    }
});

fn round_trips(p: &Protection) {
    assert_eq!(p.validate(), Ok(()), "accepted an invalid {p:?}");
    let bare = to_element(p);
    assert_eq!(parse_element(&bare).as_ref(), Ok(p), "{bare}");
    let child = to_metadata_child(p);
    assert_eq!(parse_element(&child).as_ref(), Ok(p), "{child}");
    let domain = format!("<domain type='kvm'><name>g</name><metadata>{child}</metadata></domain>");
    assert_eq!(from_domain_xml(&domain), Ok(Some(p.clone())), "{domain}");
}

fn explained(e: &AnnotationError) {
    assert!(!e.to_string().is_empty(), "{e:?} has no message");
}
