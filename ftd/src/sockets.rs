//! Dropping QEMU's TCP connections to a lost peer host.
//!
//! A host that dies sends no RST: QEMU's connections to it (the COLO migration
//! stream, the NBD replication, the network proxy) stay open and a read or a
//! write on them waits forever. Worse, QEMU 7.2 reads the RAM part of a
//! checkpoint (secondary) and writes it (primary) holding its big lock, so a
//! host lost in the middle of a checkpoint leaves the survivor's QEMU with every
//! QMP command, `x-colo-lost-heartbeat` included, waiting behind that read: the
//! takeover hangs. QEMU's own answer is `yank`, but it must go out-of-band on a
//! monitor of our own, which a primary started by its user does not have.
//!
//! So before a takeover, or before leaving COLO because the peer is gone, ftd
//! destroys those sockets from outside with the kernel's `SOCK_DESTROY`
//! (`ss -K`, iproute2; needs `CONFIG_INET_DIAG_DESTROY`, which Debian's kernels
//! have): QEMU's blocked call returns an error at once, exactly as if the peer
//! had reset the connection, and COLO's own error path takes it from there.
//! Only sockets between this host and the peer's replication address on the
//! domain's COLO ports are touched, never ftd's peer link or anything else.

use crate::host::tool::SS;

/// The `ss` filter for TCP sockets to `peer` with one of `ports` at either end.
pub fn filter(peer: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| format!("sport = :{p} or dport = :{p}"))
        .collect();
    format!("dst {peer} and ( {} )", ports.join(" or "))
}

/// Destroy this host's TCP sockets to `peer` on `ports`; returns how many.
/// An error says why nothing could be done (no `ss`, no kernel support); the
/// caller goes on regardless, with QEMU left to its own timeouts.
pub async fn cut(peer: &str, ports: &[u16]) -> Result<usize, String> {
    if ports.is_empty() {
        return Ok(0);
    }
    let f = filter(peer, ports);
    let out = SS
        .run(["-K", "-t", "-n", "-H", &f])
        .await
        .map_err(|e| e.to_string())?;
    judge(
        &f,
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// What one `ss -K` run did. `ss` exits 0 even when it could not open its
/// netlink socket or was not allowed to destroy anything (under a sandbox
/// without `AF_NETLINK` or `CAP_NET_ADMIN`, review 8.4): that is an error here,
/// never "no socket to cut".
fn judge(f: &str, success: bool, stdout: &str, stderr: &str) -> Result<usize, String> {
    if !success {
        return Err(format!("`ss -K {f}` failed: {}", stderr.trim()));
    }
    if stderr.contains("Operation not supported") {
        return Err(format!(
            "the kernel cannot destroy sockets (CONFIG_INET_DIAG_DESTROY): {}",
            stderr.trim()
        ));
    }
    if stderr.contains("Cannot open netlink socket") || stderr.contains("Operation not permitted") {
        return Err(format!(
            "`ss -K` could not reach the kernel's socket table ({}): ftd needs AF_NETLINK and \
             CAP_NET_ADMIN (see its systemd unit)",
            stderr.lines().next().unwrap_or_default().trim()
        ));
    }
    Ok(count(stdout))
}

/// `ss -H` prints one line per socket it destroyed.
fn count(stdout: &str) -> usize {
    stdout.lines().filter(|l| !l.trim().is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_filter_names_the_peer_and_every_port_at_both_ends() {
        assert_eq!(
            filter("10.200.0.11", &[9998, 9999]),
            "dst 10.200.0.11 and ( sport = :9998 or dport = :9998 or sport = :9999 or dport = :9999 )"
        );
    }

    #[test]
    fn ss_without_netlink_or_the_capability_is_an_error_though_it_exits_0() {
        let e = judge(
            "f",
            true,
            "",
            "Cannot open netlink socket: Address family not supported by protocol\n",
        )
        .unwrap_err();
        assert!(e.contains("AF_NETLINK and CAP_NET_ADMIN"), "{e}");
        let e = judge(
            "f",
            true,
            "",
            "RTNETLINK answers: Operation not permitted\n",
        )
        .unwrap_err();
        assert!(e.contains("CAP_NET_ADMIN"), "{e}");
        assert!(judge(
            "f",
            true,
            "",
            "RTNETLINK answers: Operation not supported\n"
        )
        .unwrap_err()
        .contains("CONFIG_INET_DIAG_DESTROY"));
        assert_eq!(judge("f", true, "ESTAB 0 0 a b\n", "").unwrap(), 1);
        assert!(judge("f", false, "", "boom").is_err());
    }

    #[test]
    fn destroyed_sockets_are_counted_from_the_listing() {
        let out = "ESTAB 0 0 10.200.0.12:9998 10.200.0.11:40522\n\
                   ESTAB 0 0 10.200.0.12:9999 10.200.0.11:40530\n";
        assert_eq!(count(out), 2);
        assert_eq!(count(""), 0);
    }

    /// A blocked read on a connection whose peer will never answer returns as
    /// soon as its socket is destroyed (loopback, this process's own sockets).
    #[tokio::test]
    async fn a_blocked_read_returns_when_its_socket_is_cut() {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let _client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut server, _) = l.accept().await.unwrap();
        let read = tokio::spawn(async move {
            let mut b = [0u8; 8];
            server.read(&mut b).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!read.is_finished(), "nothing was sent: the read must wait");
        let n = cut("127.0.0.1", &[port]).await.unwrap();
        assert!(n >= 1, "no socket destroyed");
        let r = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the read still waits after the cut")
            .unwrap();
        assert!(
            matches!(&r, Ok(0) | Err(_)),
            "the read must end (EOF or error): {r:?}"
        );
    }
}
