//! What the peer link (or, with [`Capture::of`], any part of ftd) logs, captured
//! so a test can check that a refusal says who and why. `#[tokio::test]` runs every task on the test's thread, so a
//! thread-local subscriber sees them all; lines are echoed to the test's output.

use super::SOON;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::subscriber::DefaultGuard;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        print!("{}", String::from_utf8_lossy(b));
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Capture {
    buf: Buf,
    _guard: DefaultGuard,
}

impl Capture {
    /// Capture `ftd::peer`'s logs on this thread until dropped.
    pub fn start() -> Capture {
        Capture::of("ftd::peer=debug")
    }

    /// Capture the logs `filter` lets through (an `EnvFilter` directive).
    pub fn of(filter: &str) -> Capture {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        Capture {
            buf,
            _guard: tracing::subscriber::set_default(sub),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.0.lock().unwrap()).into_owned()
    }

    /// Wait until a line contains every one of `parts`; return it.
    pub async fn line(&self, parts: &[&str]) -> String {
        let t = Instant::now();
        loop {
            let text = self.text();
            if let Some(l) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.to_string();
            }
            if t.elapsed() > SOON {
                panic!("no log line with {parts:?} within {SOON:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
