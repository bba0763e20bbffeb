//! The peer link's frames: the input is the byte stream a peer sends once TLS is
//! up, split by the link's own codec ([`frame::codec`]) and parsed by
//! [`frame::decode`], as `frame::read` does.
//!
//! Properties: no panic and no allocation beyond the frame limit; every frame that
//! decodes re-encodes ([`frame::encode`]) to bytes that decode to the same frame,
//! through the codec as well.

#![no_main]

use bytes::BytesMut;
use ftd::peer::frame::{self, FrameError, MAX_FRAME};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut codec = frame::codec();
    let mut buf = BytesMut::from(data);
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(bytes)) => {
                assert!(bytes.len() <= MAX_FRAME);
                if let Ok(f) = frame::decode(&bytes) {
                    round_trips(&f);
                }
            }
            // A partial frame: the link waits for more (here: the stream ends).
            Ok(None) => {
                let _ = codec.decode_eof(&mut buf);
                break;
            }
            // Oversized: the link drops the connection.
            Err(_) => break,
        }
    }
});

fn round_trips(f: &frame::Frame) {
    let bytes = match frame::encode(f) {
        Ok(b) => b,
        // serde_json may write a value longer than it was read (`1E2` as `100.0`),
        // so a frame near the limit may not fit again.
        Err(FrameError::TooBig { .. }) => return,
        Err(e) => panic!("a decoded {} frame does not encode: {e}", frame::kind(f)),
    };
    assert_eq!(frame::decode(&bytes).as_ref().ok(), Some(f));
    let mut codec = frame::codec();
    let mut wire = BytesMut::new();
    codec.encode(bytes.clone(), &mut wire).unwrap();
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some(&bytes[..])
    );
    assert!(wire.is_empty());
}
