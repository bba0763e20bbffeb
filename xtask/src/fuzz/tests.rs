//! Options, and the fuzz crate's files each target needs.

use super::*;

fn parse(args: &[&str]) -> Result<Options> {
    Options::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

#[test]
fn options_default_to_every_target_for_a_minute() {
    let o = parse(&[]).unwrap();
    assert_eq!((o.seconds, o.sanitizer.as_str()), (60, "address"));
    assert_eq!(o.targets().unwrap(), TARGETS.to_vec());
    assert_eq!(parse(&["--quick"]).unwrap().seconds, QUICK_SECONDS);
    let o = parse(&[
        "--seconds",
        "5",
        "--only",
        "qmp,config",
        "--sanitizer",
        "none",
    ])
    .unwrap();
    assert_eq!(o.seconds, 5);
    assert_eq!(o.sanitizer, "none");
    // In the table's order, whatever the order given.
    let names: Vec<_> = o.targets().unwrap().iter().map(|t| t.name).collect();
    assert_eq!(names, ["config", "qmp"]);
}

#[test]
fn bad_options_say_what_to_write() {
    let e = |a: &[&str]| parse(a).unwrap_err().to_string();
    assert!(e(&["--only", "yaml"])
        .contains("the targets are annotation, config, qmp, peer_frame, secondary_spec"));
    assert!(e(&["--seconds", "0"]).contains("above 0"));
    assert!(e(&["--seconds"]).contains("needs a number"));
    assert!(e(&["--sanitizer", "memory"]).contains("address or none"));
    assert!(e(&["--fast"]).contains("unknown option"));
}

#[test]
fn every_target_has_seeds_a_dictionary_and_its_real_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let fuzz = root.join(FUZZ_DIR);
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"", t.name)),
            "{}",
            t.name
        );
        assert!(fuzz.join(format!("fuzz_targets/{}.rs", t.name)).is_file());
        assert!(fuzz.join(format!("dict/{}.dict", t.name)).is_file());
        let seeds = std::fs::read_dir(fuzz.join("seeds").join(t.name)).unwrap();
        assert!(seeds.count() > 0, "{} has no seeds", t.name);
        for f in t.real_inputs {
            assert!(root.join(f).is_file(), "{f}");
        }
    }
}
