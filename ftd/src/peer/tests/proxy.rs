//! A TCP proxy between the two links that can cut the path without closing it (a
//! power cut or a network partition as seen from the survivors: no FIN, no RST,
//! just silence) and inject bytes into the dialer -> listener direction.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

type Injector = Arc<Mutex<Option<mpsc::Sender<Vec<u8>>>>>;

#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    /// Bumped by `cut`: connections from an earlier epoch freeze.
    epoch: watch::Sender<u64>,
    /// Injects into the newest connection's dialer -> listener direction.
    inject: Injector,
    cancel: CancellationToken,
}

impl Proxy {
    /// Listen on an ephemeral port and forward every connection to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (epoch, _) = watch::channel(0u64);
        let inject: Injector = Arc::new(Mutex::new(None));
        let cancel = CancellationToken::new();
        let (ep, inj, c) = (epoch.subscribe(), inject.clone(), cancel.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    _ = c.cancelled() => return,
                    r = listener.accept() => r.unwrap(),
                };
                let Ok(server) = TcpStream::connect(target).await else {
                    continue; // the target is down: close the client
                };
                let mine = *ep.borrow();
                let (itx, irx) = mpsc::channel(8);
                *inj.lock().unwrap() = Some(itx);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, Some(irx), ep.clone(), mine, c.clone()));
                tokio::spawn(pump(sr, cw, None, ep.clone(), mine, c.clone()));
            }
        });
        Proxy {
            addr,
            epoch,
            inject,
            cancel,
        }
    }

    /// Freeze every current connection: nothing more is forwarded either way and
    /// the sockets stay open. New connections are forwarded.
    pub fn cut(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Send `bytes` to the listener on the newest connection, between frames.
    pub async fn inject(&self, bytes: Vec<u8>) {
        let tx = self.inject.lock().unwrap().clone();
        tx.expect("no connection through the proxy yet")
            .send(bytes)
            .await
            .expect("the connection is gone");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn pump(
    mut r: OwnedReadHalf,
    mut w: OwnedWriteHalf,
    mut inject: Option<mpsc::Receiver<Vec<u8>>>,
    mut epoch: watch::Receiver<u64>,
    mine: u64,
    cancel: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let injected = async {
            match inject.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = epoch.changed() => {
                if changed.is_err() {
                    return;
                }
                if *epoch.borrow() != mine {
                    // Frozen: keep both sockets open, forward nothing.
                    cancel.cancelled().await;
                    return;
                }
            }
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => {
                    let _ = w.shutdown().await;
                    return;
                }
                Ok(n) => {
                    if w.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            Some(bytes) = injected => {
                if w.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}
