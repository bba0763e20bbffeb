//! Waiting for a condition: the one deadline loop of the lab, its tests, the demo,
//! the matrix and the bench. Nothing waits for a fixed time where a condition can
//! be looked at: a wait looks, sleeps `every`, and looks again until the condition
//! holds, it can no longer hold, or `timeout` has passed; the time-out error names
//! what was awaited and what the last look saw.
//!
//! [`wait_until`] blocks the calling thread; [`wait_until_async`] is the same for
//! async callers (D-Bus clients on tokio).

use crate::error::{LabError, Result};
use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// What one look at the awaited condition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Look<T> {
    /// It holds: the wait ends with this value.
    Ready(T),
    /// Not yet: what was seen (a time-out quotes the last one).
    Seen(String),
    /// It can no longer hold (a process exited, a connection broke): the wait
    /// ends at once with [`LabError::WaitFailed`].
    Failed(String),
}

impl<T> Look<T> {
    /// `Ready(v)` when `v` is `Some`, else `Seen(seen())`.
    pub fn when(v: Option<T>, seen: impl FnOnce() -> String) -> Look<T> {
        match v {
            Some(v) => Look::Ready(v),
            None => Look::Seen(seen()),
        }
    }
}

impl Look<()> {
    /// `Ready(())` when `cond` holds, else `Seen(seen())`.
    pub fn holds(cond: bool, seen: impl FnOnce() -> String) -> Look<()> {
        Look::when(cond.then_some(()), seen)
    }
}

/// An `Ok` is ready; an `Err` is what was seen, and the wait goes on.
impl<T, E: Display> From<std::result::Result<T, E>> for Look<T> {
    fn from(r: std::result::Result<T, E>) -> Look<T> {
        match r {
            Ok(v) => Look::Ready(v),
            Err(e) => Look::Seen(e.to_string()),
        }
    }
}

/// Where a wait stands after a look: done, or the error once it is over.
enum Step<T> {
    Done(T),
    Again,
    Over(LabError),
}

fn step<T>(what: &str, t0: Instant, timeout: Duration, look: Look<T>) -> Step<T> {
    let seen = match look {
        Look::Ready(v) => return Step::Done(v),
        Look::Failed(detail) => {
            return Step::Over(LabError::WaitFailed {
                what: what.to_string(),
                secs: t0.elapsed().as_secs_f64(),
                detail,
            })
        }
        Look::Seen(s) => s,
    };
    if t0.elapsed() >= timeout {
        return Step::Over(LabError::Timeout {
            what: what.to_string(),
            secs: t0.elapsed().as_secs_f64(),
            detail: if seen.is_empty() {
                String::new()
            } else {
                format!("last seen: {seen}")
            },
        });
    }
    Step::Again
}

/// Look every `every` until `look` is ready (its value), fails
/// ([`LabError::WaitFailed`]) or `timeout` has passed ([`LabError::Timeout`] with
/// `what` and the last thing seen). The first look is immediate.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut look: impl FnMut() -> Look<T>,
) -> Result<T> {
    let t0 = Instant::now();
    loop {
        match step(what, t0, timeout, look()) {
            Step::Done(v) => return Ok(v),
            Step::Over(e) => return Err(e),
            Step::Again => std::thread::sleep(every),
        }
    }
}

/// [`wait_until`] for async callers: `look` returns a future, the pause is
/// `tokio::time::sleep`.
pub async fn wait_until_async<T, F>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut look: impl FnMut() -> F,
) -> Result<T>
where
    F: Future<Output = Look<T>>,
{
    let t0 = Instant::now();
    loop {
        match step(what, t0, timeout, look().await) {
            Step::Done(v) => return Ok(v),
            Step::Over(e) => return Err(e),
            Step::Again => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_ready_look_ends_the_wait_with_its_value() {
        let mut n = 0;
        let v = wait_until("n to reach 3", MS * 1000, MS, || {
            n += 1;
            Look::when((n >= 3).then_some(n * 10), || format!("n={n}"))
        })
        .unwrap();
        assert_eq!((v, n), (30, 3));
    }

    #[test]
    fn a_time_out_names_the_wait_and_the_last_thing_seen() {
        let mut n = 0;
        let e = wait_until::<()>("the moon", MS * 30, MS * 5, || {
            n += 1;
            Look::Seen(format!("look {n}"))
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, LabError::Timeout { .. }), "{e:?}");
        assert!(msg.contains("waiting for the moon"), "{msg}");
        assert!(msg.ends_with(&format!("last seen: look {n}")), "{msg}");
        assert!(n >= 2, "looked {n} times");
    }

    #[test]
    fn a_failed_look_ends_the_wait_at_once() {
        let t0 = Instant::now();
        let e = wait_until::<()>("a child", Duration::from_secs(30), MS, || {
            Look::Failed("it exited (status 1)".into())
        })
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(matches!(e, LabError::WaitFailed { .. }), "{e:?}");
        assert!(e.to_string().contains("it exited (status 1)"), "{e}");
    }

    #[test]
    fn results_and_conditions_convert_to_looks() {
        let ok: Look<u8> = Ok::<u8, String>(1).into();
        let seen: Look<u8> = Err::<u8, &str>("busy").into();
        assert_eq!((ok, seen), (Look::Ready(1), Look::Seen("busy".into())));
        assert_eq!(Look::holds(false, || "no".into()), Look::Seen("no".into()));
        assert_eq!(Look::holds(true, || "no".into()), Look::Ready(()));
    }

    #[tokio::test]
    async fn the_async_wait_looks_until_ready() {
        let mut n = 0;
        let r = wait_until_async("n to reach 4", Duration::from_secs(60), MS, || {
            n += 1;
            let v = n;
            async move { Look::when((v >= 4).then_some(v), || format!("n={v}")) }
        })
        .await;
        assert_eq!(r.unwrap(), 4);
    }
}
