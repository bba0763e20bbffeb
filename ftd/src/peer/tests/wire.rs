//! Frames, roles and configuration checks.

use super::*;
use crate::coordinator::PeerMsg;

#[test]
fn the_host_whose_name_sorts_first_dials() {
    assert_eq!(a_cfg(unused()).role(), Role::Dial);
    assert_eq!(b_cfg(unused()).role(), Role::Listen);
}

#[test]
fn frames_are_tagged_json_and_hello_keeps_its_shape() {
    let h = Frame::Hello {
        version: 1,
        host: "a".into(),
        boot: u64::MAX,
    };
    let bytes = frame::encode(&h).unwrap();
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"Hello":{"version":1,"host":"a","boot":18446744073709551615}}"#
    );
    let all = [
        h,
        Frame::Refused { reason: "x".into() },
        Frame::Heartbeat { seq: 3 },
        Frame::Msg {
            domain: "d".into(),
            msg: PeerMsg::SecondaryFailed("disk".into()),
        },
        Frame::Request {
            id: 9,
            body: Request::CreateSecondary {
                domain: "d".into(),
                primary_xml: "<domain/>".into(),
                params: serde_json::json!({"mirror_port": 9000}),
            },
        },
        Frame::Response {
            id: 9,
            result: Ok(Response::SecondaryReady {
                nbd: NbdExport {
                    host: "10.0.0.2".into(),
                    port: 10809,
                    name: "parent0".into(),
                },
            }),
        },
        Frame::Response {
            id: 10,
            result: Err("no".into()),
        },
    ];
    for f in all {
        assert_eq!(frame::decode(&frame::encode(&f).unwrap()).unwrap(), f);
    }
    let e = frame::decode(br#"{"Teleport":{}}"#).unwrap_err();
    assert!(
        e.is_malformed() && e.to_string().contains("unknown variant"),
        "{e}"
    );
}

/// A number in a frame's free-form params reads back as the number sent (serde_json
/// with float_roundtrip; the fuzz targets found the default parser one off).
#[test]
fn numbers_in_params_cross_the_link_unchanged() {
    let bytes = br#"{"Request":{"id":1,"body":{"CreateSecondary":{"domain":"d","primary_xml":"","params":{"x":13333166666651666666666}}}}}"#;
    let f = frame::decode(bytes).unwrap();
    let Frame::Request {
        body: Request::CreateSecondary { params, .. },
        ..
    } = &f
    else {
        panic!("{f:?}")
    };
    assert_eq!(params["x"], serde_json::json!(1.3333166666651668e22));
    assert_eq!(frame::decode(&frame::encode(&f).unwrap()).unwrap(), f);
}

#[test]
fn a_frame_over_the_limit_is_refused_before_sending() {
    let f = Frame::Msg {
        domain: "x".repeat(MAX_FRAME),
        msg: PeerMsg::TakeOver,
    };
    let e = frame::encode(&f).unwrap_err();
    assert!(e.to_string().contains("frame limit"), "{e}");
}

#[tokio::test]
async fn bad_configuration_and_busy_address_fail_at_spawn() {
    let mut c = a_cfg(unused());
    c.detection = c.interval;
    let e = PeerLink::spawn(c, CancellationToken::new()).unwrap_err();
    assert!(e.to_string().contains("longer than the heartbeat"), "{e}");
    let e = PeerLink::spawn(
        PeerConfig::new("a", "a", unused(), unused(), creds("a")),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("its own name"), "{e}");
    let e = PeerLink::spawn(
        PeerConfig::new("a", "b", unused(), unused(), creds("c")),
        CancellationToken::new(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"c\"'s, not this host's"), "{e}");

    let b = spawn(b_cfg(any_port()));
    let e =
        PeerLink::spawn(b_cfg(b.h.local_addr().unwrap()), CancellationToken::new()).unwrap_err();
    assert!(e.to_string().contains("cannot listen for the peer"), "{e}");
}

/// The fuzz target `peer_frame` starts from encoded frames committed in
/// tests/fuzz/seeds/peer_frame: they must stay frames of this protocol, and cover
/// every kind of frame.
#[test]
fn the_fuzz_seeds_are_frames_of_this_protocol() {
    use tokio_util::codec::Decoder;
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/seeds/peer_frame");
    let mut kinds = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut buf = bytes::BytesMut::from(&std::fs::read(&path).unwrap()[..]);
        let mut codec = frame::codec();
        while let Some(b) = codec.decode(&mut buf).unwrap() {
            let f = frame::decode(&b).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            kinds.insert(frame::kind(&f));
        }
        assert!(
            buf.is_empty(),
            "{}: a partial frame at the end",
            path.display()
        );
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "Heartbeat",
            "Hello",
            "Msg",
            "Refused",
            "Request",
            "Response"
        ]
    );
}
