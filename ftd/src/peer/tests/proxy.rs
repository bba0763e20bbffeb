//! A TCP proxy between the two links that can cut the path without closing it (a
//! power cut or a network partition as seen from the survivors: no FIN, no RST,
//! just silence), inject bytes into the dialer -> listener direction, and record
//! that direction (to replay it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

type Injector = Arc<Mutex<Option<mpsc::Sender<Vec<u8>>>>>;
type Recording = Arc<Mutex<Vec<u8>>>;

#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    /// Bumped by `cut`: connections from an earlier epoch freeze.
    epoch: watch::Sender<u64>,
    /// Injects into the newest connection's dialer -> listener direction.
    inject: Injector,
    /// What the dialer sent on the newest connection.
    recorded: Arc<Mutex<Recording>>,
    cancel: CancellationToken,
}

impl Proxy {
    /// Listen on an ephemeral port and forward every connection to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (epoch, _) = watch::channel(0u64);
        let inject: Injector = Arc::new(Mutex::new(None));
        let recorded: Arc<Mutex<Recording>> = Arc::default();
        let cancel = CancellationToken::new();
        let (ep, inj, c) = (epoch.subscribe(), inject.clone(), cancel.clone());
        let rec = recorded.clone();
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
                let recording = Recording::default();
                *rec.lock().unwrap() = recording.clone();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let up = pump(
                    cr,
                    sw,
                    Some(irx),
                    Some(recording),
                    ep.clone(),
                    mine,
                    c.clone(),
                );
                tokio::spawn(up);
                tokio::spawn(pump(sr, cw, None, None, ep.clone(), mine, c.clone()));
            }
        });
        Proxy {
            addr,
            epoch,
            inject,
            recorded,
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

impl Proxy {
    /// Everything the dialer sent on the newest connection so far.
    pub fn recorded(&self) -> Vec<u8> {
        self.recorded.lock().unwrap().lock().unwrap().clone()
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
    record: Option<Recording>,
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
                    if let Some(r) = &record {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
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
