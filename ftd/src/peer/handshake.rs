//! The handshake: the dialer sends [`Frame::Hello`], the listener checks it and
//! answers with its own Hello, which the dialer checks in turn. A check that fails
//! (other protocol version, not the host this side expects) is answered with
//! [`Frame::Refused`] carrying the reason, so both logs say why, and the connection
//! closes.

use super::frame::{self, Frame, FrameError, Wire, PROTOCOL_VERSION};

/// Who this side is and whom it expects.
#[derive(Debug, Clone)]
pub struct Identity {
    pub host: String,
    pub peer_host: String,
    pub boot: u64,
}

/// The peer as it introduced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerHello {
    pub host: String,
    pub boot: u64,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("peer {host:?} speaks peer-link protocol version {theirs}, this ftd speaks {ours}: run the same ftd version on both hosts")]
    Version {
        host: String,
        theirs: u32,
        ours: u32,
    },
    /// The peer is not the host this side is configured to pair with.
    #[error("the peer introduced itself as {got:?} but this host ({me:?}) is configured to pair with {expected:?}: check the peer host names and addresses in both hosts' ftd configuration")]
    WrongHost {
        me: String,
        expected: String,
        got: String,
    },
    /// The peer refused this side's Hello.
    #[error("the peer refused the handshake: {0}")]
    Refused(String),
    /// The peer sent something else than the expected Hello.
    #[error("the peer sent a {0} frame during the handshake instead of Hello: is something else listening on that address?")]
    Unexpected(&'static str),
    /// Reading or writing the handshake failed.
    #[error("handshake failed: {0}")]
    Frame(#[from] FrameError),
}

fn hello(me: &Identity) -> Frame {
    Frame::Hello {
        version: PROTOCOL_VERSION,
        host: me.host.clone(),
        boot: me.boot,
    }
}

/// Check the peer's first frame; on a failed check, tell the peer why.
async fn check(wire: &mut Wire, me: &Identity, got: Frame) -> Result<PeerHello, HandshakeError> {
    // The peer's free text made safe before it is logged (`inbound`).
    let got = match super::inbound::inbound(got) {
        super::inbound::Inbound::Deliver(f) => f,
        _ => return Err(HandshakeError::Unexpected("Msg or Request")),
    };
    let err = match got {
        Frame::Hello {
            version,
            host,
            boot,
        } => {
            if version != PROTOCOL_VERSION {
                HandshakeError::Version {
                    host: super::inbound::text(&host),
                    theirs: version,
                    ours: PROTOCOL_VERSION,
                }
            } else if host != me.peer_host {
                HandshakeError::WrongHost {
                    me: me.host.clone(),
                    expected: me.peer_host.clone(),
                    got: super::inbound::text(&host),
                }
            } else {
                return Ok(PeerHello { host, boot });
            }
        }
        Frame::Refused { reason } => return Err(HandshakeError::Refused(reason)),
        other => HandshakeError::Unexpected(frame::kind(&other)),
    };
    let refusal = Frame::Refused {
        reason: format!("{} refuses: {err}", me.host),
    };
    // Best effort: the connection closes either way.
    let _ = frame::write(wire, &refusal).await;
    Err(err)
}

/// The dialing side: send Hello, check the answer.
pub async fn dial(wire: &mut Wire, me: &Identity) -> Result<PeerHello, HandshakeError> {
    frame::write(wire, &hello(me)).await?;
    let got = frame::read(wire).await?;
    check(wire, me, got).await
}

/// The listening side: check the dialer's Hello, answer with ours.
pub async fn accept(wire: &mut Wire, me: &Identity) -> Result<PeerHello, HandshakeError> {
    let got = frame::read(wire).await?;
    let peer = check(wire, me, got).await?;
    frame::write(wire, &hello(me)).await?;
    Ok(peer)
}
