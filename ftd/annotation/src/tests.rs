use super::*;

/// A running lab guest's live XML, as libvirt wrote it (no annotation).
const LIVE: &str = include_str!("../../src/colo/testdata/lab-guest-live.xml");

/// `LIVE` with a `<metadata>` holding `elements`, where libvirt puts it.
fn live_with(elements: &str) -> String {
    let at = LIVE.find("  <memory").expect("fixture has <memory>");
    format!(
        "{}  <metadata>\n{elements}\n  </metadata>\n{}",
        &LIVE[..at],
        &LIVE[at..]
    )
}

fn err(xml: &str) -> String {
    parse_element(xml).unwrap_err().to_string()
}

fn el(attrs: &str) -> String {
    format!("<ft:protection xmlns:ft='{NAMESPACE}' {attrs}/>")
}

#[test]
fn reads_every_setting() {
    let p = parse_element(
        r#"<ft:protection xmlns:ft="https://ftvirt.org/xmlns/ftd/1" peer="b" checkpoint-interval="2000" auto-reprotect="yes"/>"#,
    )
    .unwrap();
    assert_eq!(
        p,
        Protection {
            peer: "b".into(),
            checkpoint_interval_ms: Some(2000),
            auto_reprotect: Some(true),
        }
    );
    assert_eq!(
        parse_element(&el("peer='b'")).unwrap(),
        Protection::new("b")
    );
}

#[test]
fn matches_the_namespace_whatever_the_prefix() {
    for xml in [
        format!("<x:protection xmlns:x='{NAMESPACE}' peer='b'/>"),
        format!("<protection xmlns='{NAMESPACE}' peer='b'/>"),
        format!("<ft:protection xmlns:ft='{NAMESPACE}' peer='b'></ft:protection>"),
        format!("<ft:protection xmlns:ft='{NAMESPACE}' peer='b'>\n  </ft:protection>"),
    ] {
        assert_eq!(parse_element(&xml).unwrap(), Protection::new("b"), "{xml}");
    }
}

#[test]
fn a_missing_or_empty_peer_says_how_to_name_one() {
    assert_eq!(
        err(&el("checkpoint-interval='2000'")),
        "<ft:protection> has no peer attribute: add peer=\"HOST\" naming one of ftd's peers"
    );
    assert_eq!(
        parse_element(&el("peer=''")),
        Err(AnnotationError::EmptyPeer)
    );
    assert_eq!(
        parse_element(&el("peer='  '")),
        Err(AnnotationError::EmptyPeer)
    );
    assert!(err(&el("peer=''")).contains("set peer=\"HOST\""));
}

#[test]
fn an_unknown_attribute_suggests_the_nearest_known_one() {
    for (attr, want) in [
        (
            "checkpoint_interval='2000'",
            "did you mean checkpoint-interval?",
        ),
        (
            "checkpoint-intervall='2000'",
            "did you mean checkpoint-interval?",
        ),
        ("interval='2000'", "did you mean checkpoint-interval?"),
        ("intervall='2000'", "did you mean checkpoint-interval?"),
        ("checkpoint='2000'", "did you mean checkpoint-interval?"),
        ("reprotect='yes'", "did you mean auto-reprotect?"),
        ("host='b'", "did you mean peer?"),
        ("autoreprotect='yes'", "did you mean auto-reprotect?"),
        ("Auto-Reprotect='yes'", "did you mean auto-reprotect?"),
        ("peers='b'", "did you mean peer?"),
    ] {
        let e = err(&el(&format!("peer='b' {attr}")));
        let name = attr.split('=').next().unwrap();
        assert!(
            e.starts_with(&format!(
                "<ft:protection> has an unknown attribute {name}: {want}"
            )),
            "{attr}: {e}"
        );
        assert!(
            e.contains("known attributes: peer, checkpoint-interval, auto-reprotect"),
            "{e}"
        );
    }
    assert_eq!(
        err(&el("peer='b' colour='red'")),
        "<ft:protection> has an unknown attribute colour: known attributes are peer, \
         checkpoint-interval, auto-reprotect"
    );
    // A prefixed attribute is another attribute in XML: say to drop the prefix.
    let e = err(&el("ft:peer='b'"));
    assert!(
        e.contains("unknown attribute ft:peer: attributes of the annotation take no prefix, write peer=\"...\""),
        "{e}"
    );
}

#[test]
fn checkpoint_interval_is_milliseconds_in_range() {
    for ok in ["100", "2000", "60000", " 500 "] {
        let p = parse_element(&el(&format!("peer='b' checkpoint-interval='{ok}'"))).unwrap();
        assert_eq!(p.checkpoint_interval_ms, Some(ok.trim().parse().unwrap()));
    }
    for bad in ["abc", "2s", "-5", "1.5", ""] {
        let e = err(&el(&format!("peer='b' checkpoint-interval='{bad}'")));
        assert_eq!(
            e,
            format!(
                "<ft:protection> checkpoint-interval=\"{bad}\" is not a number of milliseconds: \
                 write milliseconds from 100 to 60000, e.g. checkpoint-interval=\"2000\""
            )
        );
    }
    for bad in ["0", "99", "60001", "18446744073709551615"] {
        let e = err(&el(&format!("peer='b' checkpoint-interval='{bad}'")));
        assert!(
            e.starts_with(&format!("<ft:protection> checkpoint-interval=\"{bad}\" is out of range: write milliseconds from 100 to 60000")),
            "{e}"
        );
    }
}

#[test]
fn auto_reprotect_is_yes_or_no() {
    for (v, want) in [
        ("yes", true),
        ("true", true),
        ("no", false),
        ("false", false),
    ] {
        let p = parse_element(&el(&format!("peer='b' auto-reprotect='{v}'"))).unwrap();
        assert_eq!(p.auto_reprotect, Some(want), "{v}");
    }
    for bad in ["on", "1", "maybe", ""] {
        assert_eq!(
            err(&el(&format!("peer='b' auto-reprotect='{bad}'"))),
            format!(
                "<ft:protection> auto-reprotect=\"{bad}\" is not yes or no: write \
                 auto-reprotect=\"yes\" or auto-reprotect=\"no\" (true and false also work)"
            )
        );
    }
}

#[test]
fn another_version_is_refused_not_half_read() {
    let e =
        err("<ft:protection xmlns:ft='https://ftvirt.org/xmlns/ftd/2' peer='b' new-thing='x'/>");
    assert!(
        e.starts_with("unsupported annotation version: https://ftvirt.org/xmlns/ftd/2 (this ftvirt reads https://ftvirt.org/xmlns/ftd/1)"),
        "{e}"
    );
    let in_domain =
        live_with("    <ft:protection xmlns:ft='https://ftvirt.org/xmlns/ftd/2' peer='b'/>");
    assert!(matches!(
        from_domain_xml(&in_domain),
        Err(AnnotationError::Version { namespace }) if namespace.ends_with("/ftd/2")
    ));
}

#[test]
fn other_elements_are_not_the_annotation() {
    assert!(
        err(&format!("<ft:protect xmlns:ft='{NAMESPACE}' peer='b'/>"))
            .contains("found <protect> in namespace https://ftvirt.org/xmlns/ftd/1")
    );
    assert!(err("<protect peer='b'/>").contains("found <protect> (no namespace)"));
    assert!(err("<o:protection xmlns:o='urn:other' peer='b'/>").contains("in namespace urn:other"));
    assert!(err("<ft:protection").starts_with("annotation XML: "));
    assert!(err("").starts_with("annotation XML: "));
    let e = err(&format!(
        "<ft:protection xmlns:ft='{NAMESPACE}' peer='b'><ft:x/></ft:protection>"
    ));
    assert!(
        e.contains("has an element <x>") && e.contains("settings are attributes"),
        "{e}"
    );
    let e = err(&format!(
        "<ft:protection xmlns:ft='{NAMESPACE}' peer='b'>2000</ft:protection>"
    ));
    assert!(e.contains("has text inside"), "{e}");
}

#[test]
fn a_live_domain_without_metadata_is_not_marked() {
    assert_eq!(from_domain_xml(LIVE), Ok(None));
    // Other applications' metadata only.
    let other = live_with("    <app1:foo xmlns:app1='http://app1.org/app1/'>fizz</app1:foo>");
    assert_eq!(from_domain_xml(&other), Ok(None));
}

#[test]
fn a_live_domain_with_the_annotation_is_marked() {
    let xml = live_with(
        "    <app1:foo xmlns:app1='http://app1.org/app1/'>fizz</app1:foo>\n    \
         <ft:protection xmlns:ft=\"https://ftvirt.org/xmlns/ftd/1\" peer=\"b\" checkpoint-interval=\"2000\" auto-reprotect=\"yes\"/>",
    );
    let p = from_domain_xml(&xml).unwrap().expect("marked");
    assert_eq!(p.peer, "b");
    assert_eq!(p.checkpoint_interval_ms, Some(2000));
    assert_eq!(p.auto_reprotect, Some(true));
    // libvirt may pick its own prefix.
    let xml = live_with(&format!(
        "    <x:protection xmlns:x='{NAMESPACE}' peer='b'/>"
    ));
    assert_eq!(from_domain_xml(&xml), Ok(Some(Protection::new("b"))));
    // A broken annotation is an error, not "unmarked".
    let xml = live_with(&format!("    <ft:protection xmlns:ft='{NAMESPACE}'/>"));
    assert_eq!(from_domain_xml(&xml), Err(AnnotationError::MissingPeer));
}

#[test]
fn only_domain_metadata_counts() {
    assert!(matches!(
        from_domain_xml("<network/>"),
        Err(AnnotationError::Xml(m)) if m.contains("<network>")
    ));
    assert!(matches!(
        from_domain_xml("not xml"),
        Err(AnnotationError::Xml(_))
    ));
    // The element outside <metadata> (e.g. in a device) is not the annotation.
    let xml = LIVE.replace(
        "<devices>",
        &format!("<devices><ft:protection xmlns:ft='{NAMESPACE}' peer='b'/>"),
    );
    assert_eq!(from_domain_xml(&xml), Ok(None));
}

#[test]
fn to_element_and_to_metadata_child_round_trip() {
    let full = Protection {
        peer: "b".into(),
        checkpoint_interval_ms: Some(2000),
        auto_reprotect: Some(true),
    };
    assert_eq!(
        to_element(&full),
        r#"<protection peer="b" checkpoint-interval="2000" auto-reprotect="yes"/>"#
    );
    assert_eq!(
        to_metadata_child(&full),
        r#"<ft:protection xmlns:ft="https://ftvirt.org/xmlns/ftd/1" peer="b" checkpoint-interval="2000" auto-reprotect="yes"/>"#
    );
    for p in [
        full.clone(),
        Protection::new("b"),
        Protection::new("host-2.example.org"),
        Protection::new(r#"odd&<>"'name"#),
        Protection {
            peer: "b".into(),
            checkpoint_interval_ms: Some(100),
            auto_reprotect: Some(false),
        },
        Protection {
            peer: "b".into(),
            checkpoint_interval_ms: None,
            auto_reprotect: Some(true),
        },
        Protection {
            peer: "b".into(),
            checkpoint_interval_ms: Some(60_000),
            auto_reprotect: None,
        },
    ] {
        // The metadata API's form (libvirt binds and strips the namespace).
        let bare = to_element(&p);
        assert_eq!(parse_element(&bare).unwrap(), p, "{bare}");
        // The domain XML's form.
        let child = to_metadata_child(&p);
        assert_eq!(parse_element(&child).unwrap(), p, "{child}");
        assert_eq!(
            from_domain_xml(&live_with(&child)).unwrap(),
            Some(p.clone()),
            "{child}"
        );
        // Bound to KEY, the bare element is the child.
        let bound = bare.replacen(
            "<protection",
            &format!("<{KEY}:protection xmlns:{KEY}=\"{NAMESPACE}\""),
            1,
        );
        assert_eq!(bound, child);
    }
}

#[test]
fn a_bare_element_counts_only_alone() {
    // As virDomainGetMetadata returns it: the namespace was the one asked for.
    assert_eq!(
        parse_element(r#"<protection peer="b" checkpoint-interval="2000" auto-reprotect="yes"/>"#)
            .unwrap()
            .checkpoint_interval_ms,
        Some(2000)
    );
    assert_eq!(
        parse_element("<protection/>"),
        Err(AnnotationError::MissingPeer)
    );
    // In a domain's <metadata>, a namespace-less element is nobody's (libvirt
    // deletes those).
    assert_eq!(
        from_domain_xml(&live_with("<protection peer='b'/>")),
        Ok(None)
    );
}

#[test]
fn validate_checks_settings_built_in_code() {
    assert_eq!(Protection::new("b").validate(), Ok(()));
    assert_eq!(
        Protection::new("").validate(),
        Err(AnnotationError::EmptyPeer)
    );
    let mut p = Protection::new("b");
    p.checkpoint_interval_ms = Some(50);
    assert!(p
        .validate()
        .unwrap_err()
        .to_string()
        .contains("\"50\" is out of range"));
}

#[test]
fn distance_is_levenshtein() {
    assert_eq!(distance("peer", "peer"), 0);
    assert_eq!(distance("peers", "peer"), 1);
    assert_eq!(distance("", "abc"), 3);
    assert_eq!(distance("kitten", "sitting"), 3);
}

/// Found by the fuzz target `annotation` (tests/fuzz): a peer holding a line break
/// (`&#10;`) was written back raw, and XML reads a raw line break in an attribute as
/// a space, so the annotation ftd wrote did not read back as what it had read.
#[test]
fn white_space_in_a_value_reads_back_unchanged() {
    let found = "<protection peer=\"hma#in!>ke:x xmlns:app='https:/xample.org/appec\t&#10;\
                 pr/ihma#in!>ke:x xmlns:app='https:/xam:protet/4a[es\"/>";
    let p = parse_element(found).unwrap();
    assert!(p.peer.contains(" \npr/"), "{:?}", p.peer);
    assert_eq!(parse_element(&to_element(&p)), Ok(p.clone()));
    assert_eq!(parse_element(&to_metadata_child(&p)), Ok(p));
    let p = Protection::new("a\tb\r\nc");
    assert_eq!(to_element(&p), "<protection peer=\"a&#9;b&#13;&#10;c\"/>");
    assert_eq!(parse_element(&to_element(&p)), Ok(p));
}
