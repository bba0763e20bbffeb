//! Inputs the fuzz target `config` (tests/fuzz, `cargo xtask fuzz`) found wrong,
//! kept as regression tests.

use super::*;

/// libyaml places the end of a text without a final line break one line past its
/// last; an error there pointed at a line the file does not have.
#[test]
fn an_error_at_the_end_of_a_file_without_a_final_newline_points_inside_it() {
    let e = err("# f# fttd.yd");
    assert!(
        e.starts_with("/etc/ftvirt/ftd.yaml:1:13: missing key \"host\""),
        "{e}"
    );
    // With the newline, the end is the start of the (empty) next line.
    let e = err("# f# fttd.yd\n");
    assert!(
        e.starts_with("/etc/ftvirt/ftd.yaml:2:1: missing key"),
        "{e}"
    );
}

#[test]
fn positions_beyond_the_text_move_to_its_end() {
    let p = |line, column| Position { line, column };
    assert_eq!(p(2, 1).within("abc"), p(1, 4));
    assert_eq!(p(1, 2).within("abc"), p(1, 2));
    assert_eq!(p(3, 1).within("a\r\nb\rc"), p(3, 1));
    assert_eq!(p(4, 1).within("a\u{2028}b"), p(2, 2));
    assert_eq!(p(1, 1).within(""), p(1, 1));
}

/// An address zbus cannot read was accepted here, then failed when ftd connected,
/// with no file or line.
#[test]
fn a_bus_address_zbus_cannot_read_is_refused_at_its_line() {
    let e = err(&format!("{HOST}bus:\n  connect: unix:paph=/run/rt7ck\n"));
    assert!(
        e.starts_with(
            "/etc/ftvirt/ftd.yaml:5:12: bus.connect must be system, session, or a D-Bus \
             address such as unix:path=/run/ftvirt/bus, not \"unix:paph=/run/rt7ck\""
        ),
        "{e}"
    );
    let e = err(&format!("{HOST}bus:\n  connect: foo:bar=1\n"));
    assert!(e.contains("bus.connect must be"), "{e}");
    for ok in [
        "unix:path=/run/ftvirt/bus",
        "unix:abstract=ftvirt",
        "tcp:host=127.0.0.1,port=4000",
    ] {
        let c = Config::from_str(&format!("{HOST}bus:\n  connect: '{ok}'\n"), ORIGIN).unwrap();
        assert_eq!(c.bus.connect, BusKind::Address(ok.into()));
    }
}
