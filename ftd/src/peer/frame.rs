//! What travels on the peer link: the [`Frame`] enum, its JSON encoding inside
//! length-delimited frames (`tokio_util::codec::LengthDelimitedCodec`: a 4-byte
//! big-endian length, then that many bytes of `serde_json`), and the [`Wire`] that
//! reads and writes them over any byte stream.
//!
//! The byte stream under the codec is a boxed [`Io`]: the mutual-TLS stream over the
//! socket (see the module docs of [`crate::peer`]), so every frame is authenticated
//! and a forged or replayed one fails in TLS before the codec sees it.

use crate::colo::spec::SecondarySpec;
use crate::coordinator::PeerMsg;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec, LengthDelimitedCodecError};

/// The protocol version both sides announce in [`Frame::Hello`]; a peer with another
/// version is refused. Bump it on any incompatible change to [`Frame`] or its
/// payloads. The shape of `Hello` and `Refused` must never change, so that peers of
/// different versions can still tell each other why they do not talk.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side sends or accepts (1 MiB); a bigger incoming frame is
/// malformed and drops the connection.
pub const MAX_FRAME: usize = 1 << 20;

/// One message on the peer link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Handshake, first frame each way: the dialer sends it, the listener checks it
    /// and answers with its own.
    Hello {
        version: u32,
        /// The sender's host name (as configured in ftd, not necessarily hostname(1)).
        host: String,
        /// Random per ftd process start: a new value means the peer restarted.
        boot: u64,
    },
    /// Handshake refused (wrong version or host name), then the connection closes.
    Refused { reason: String },
    /// Liveness, every `interval` each way. Any frame counts as a sign of life.
    Heartbeat { seq: u64 },
    /// A message for the peer's coordinator of one domain.
    Msg { domain: String, msg: PeerMsg },
    /// Work that needs an answer; answered by [`Frame::Response`] with the same id.
    Request { id: u64, body: Request },
    /// The answer to [`Frame::Request`] `id`: the result, or why it failed.
    Response {
        id: u64,
        result: Result<Response, String>,
    },
}

/// Requests one ftd makes of its peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Round-trip check; answered by [`Response::Pong`].
    Ping,
    /// Secondary -> primary: what the secondary of `domain` must look like;
    /// answered by [`Response::SecondarySpec`].
    SecondarySpec { domain: String },
    /// Create the secondary of `domain` from the primary's live XML; answered by
    /// [`Response::SecondaryReady`] once it waits for the primary's state.
    CreateSecondary {
        domain: String,
        primary_xml: String,
        /// Ports, paths and other settings of the secondary (free-form for now).
        params: serde_json::Value,
    },
}

impl Request {
    /// A short name for logs and errors (no payload).
    pub fn describe(&self) -> String {
        match self {
            Request::Ping => "Ping".into(),
            Request::SecondarySpec { domain } => format!("SecondarySpec({domain:?})"),
            Request::CreateSecondary { domain, .. } => format!("CreateSecondary({domain:?})"),
        }
    }
}

/// Successful answers to [`Request`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong,
    /// Answer to [`Request::SecondarySpec`] (boxed: it is much bigger than the rest).
    SecondarySpec(Box<SecondarySpec>),
    /// Answer to [`Request::CreateSecondary`]: the secondary waits; the primary
    /// mirrors its disk into this NBD export.
    SecondaryReady { nbd: NbdExport },
}

/// An NBD export on the peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NbdExport {
    pub host: String,
    pub port: u16,
    /// The export name.
    pub name: String,
}

/// Errors of the wire layer.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("peer link socket error: {0}")]
    Io(#[source] std::io::Error),
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// The frame is not JSON of a known [`Frame`] (garbage, or a newer protocol).
    #[error("malformed frame from the peer ({len} bytes, not a protocol-{PROTOCOL_VERSION} frame): {source}")]
    Malformed {
        len: usize,
        #[source]
        source: serde_json::Error,
    },
    /// The length prefix announces more than [`MAX_FRAME`] (garbage, or a peer bug).
    #[error("malformed frame from the peer: its length prefix is over the {MAX_FRAME}-byte limit")]
    Oversized,
    /// A frame to send is bigger than [`MAX_FRAME`].
    #[error("a {what} of {len} bytes is over the peer link's {MAX_FRAME}-byte frame limit; send less per message")]
    TooBig { what: String, len: usize },
    /// The TLS layer under the codec failed: a record that does not decrypt
    /// (`forged`: corrupted, forged or replayed bytes, or no TLS at all), or an
    /// alert from the peer.
    #[error("{reason}")]
    Tls { reason: String, forged: bool },
    /// A frame could not be serialized (a bug in its payload types).
    #[error("cannot encode a {what} for the peer link: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl FrameError {
    fn from_io(e: std::io::Error) -> FrameError {
        if let Some(f) = super::tls::fault(&e) {
            return FrameError::Tls {
                reason: f.reason,
                forged: f.forged,
            };
        }
        // rustls: the peer closed without TLS's close_notify. Frames carry their own
        // length, so a truncated stream cannot pass for a complete frame: this is
        // an ordinary close (a stopped ftd does not say goodbye).
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return FrameError::Closed;
        }
        let oversized = e
            .get_ref()
            .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>());
        if oversized {
            FrameError::Oversized
        } else {
            FrameError::Io(e)
        }
    }

    /// Did the peer send something this side cannot read?
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            FrameError::Malformed { .. }
                | FrameError::Oversized
                | FrameError::Tls { forged: true, .. }
        )
    }
}

/// A byte stream the codec can run over: the TLS stream (a plain `TcpStream` in
/// tests of fake peers).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Frames over a byte stream.
pub type Wire = Framed<Box<dyn Io>, LengthDelimitedCodec>;

/// Frame a byte stream with the peer link's codec.
pub fn wire(io: Box<dyn Io>) -> Wire {
    Framed::new(io, codec())
}

/// The length-delimited codec under [`Wire`]: a 4-byte big-endian length, at most
/// [`MAX_FRAME`]. Public so that the fuzz targets (`tests/fuzz`) split bytes into
/// frames exactly as the link does.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Serialize a frame, checking it fits.
pub fn encode(frame: &Frame) -> Result<Bytes, FrameError> {
    let what = || kind(frame).to_string();
    let v = serde_json::to_vec(frame).map_err(|source| FrameError::Encode {
        what: what(),
        source,
    })?;
    if v.len() > MAX_FRAME {
        return Err(FrameError::TooBig {
            what: what(),
            len: v.len(),
        });
    }
    Ok(Bytes::from(v))
}

/// Parse a frame.
pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
    serde_json::from_slice(bytes).map_err(|source| FrameError::Malformed {
        len: bytes.len(),
        source,
    })
}

/// The frame's variant name, for logs.
pub fn kind(frame: &Frame) -> &'static str {
    match frame {
        Frame::Hello { .. } => "Hello",
        Frame::Refused { .. } => "Refused",
        Frame::Heartbeat { .. } => "Heartbeat",
        Frame::Msg { .. } => "Msg",
        Frame::Request { .. } => "Request",
        Frame::Response { .. } => "Response",
    }
}

/// Read the next frame (cancel-safe: a partial frame stays buffered).
pub async fn read(wire: &mut Wire) -> Result<Frame, FrameError> {
    match wire.next().await {
        None => Err(FrameError::Closed),
        Some(Err(e)) => Err(FrameError::from_io(e)),
        Some(Ok(b)) => decode(&b),
    }
}

/// Write an encoded frame and flush it.
pub async fn write_bytes(wire: &mut Wire, bytes: Bytes) -> Result<(), FrameError> {
    wire.send(bytes).await.map_err(FrameError::from_io)
}

/// Encode, write and flush a frame.
pub async fn write(wire: &mut Wire, frame: &Frame) -> Result<(), FrameError> {
    write_bytes(wire, encode(frame)?).await
}
