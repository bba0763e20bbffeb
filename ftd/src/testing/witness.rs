//! [`FakeWitness`]: the witness in memory, for the middle tier. It keeps the same
//! rules as etcd's ([`crate::witness`]): values stored as JSON bytes with a revision
//! that grows on every write, the swap's checks (`check_swap`), compare on the
//! revision, a lost swap that finds its own record is won, and a stored value is
//! parsed as untrusted. Faults: [`FakeWitness::set_reachable`]`(false)` makes every
//! call fail as `Unreachable` once its deadline has passed (tokio's clock, so paused
//! tests cost nothing); [`FakeWitness::put_raw`] stores anything, as a person with
//! etcdctl could. Every call is logged ([`FakeWitness::calls`]).

use crate::witness::{
    check_swap, settle_lost, Keys, Record, Revision, Swap, Versioned, Witness, WitnessError,
    DEFAULT_TIMEOUT,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// One call made to the fake, with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WitnessCall {
    Read {
        domain: String,
        at: Instant,
        outcome: Result<Option<Versioned<Record>>, WitnessError>,
    },
    Swap {
        domain: String,
        /// The expected record's epoch (`None`: none expected).
        expected: Option<u64>,
        new: Record,
        at: Instant,
        outcome: Result<Swap, WitnessError>,
    },
}

/// The witness in memory; clones share it (two hosts' ftds share one witness).
#[derive(Debug, Clone)]
pub struct FakeWitness {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    keys: Keys,
    deadline: Duration,
    reachable: bool,
    /// Key -> (value, mod revision).
    store: HashMap<String, (Vec<u8>, i64)>,
    revision: i64,
    calls: Vec<WitnessCall>,
}

impl Default for FakeWitness {
    fn default() -> Self {
        FakeWitness::new()
    }
}

impl FakeWitness {
    /// An empty witness under the default prefix, with the default deadline.
    pub fn new() -> FakeWitness {
        FakeWitness {
            inner: Arc::new(Mutex::new(Inner {
                keys: Keys::default(),
                deadline: DEFAULT_TIMEOUT,
                reachable: true,
                store: HashMap::new(),
                revision: 1,
                calls: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake witness poisoned")
    }

    /// Whether calls are answered (`false`: each fails as `Unreachable` after the
    /// deadline).
    pub fn set_reachable(&self, reachable: bool) {
        self.lock().reachable = reachable;
    }

    /// The deadline an unreachable call waits out (as `arbiter.witness.timeout`).
    pub fn set_deadline(&self, deadline: Duration) {
        self.lock().deadline = deadline;
    }

    /// Store `value` under `domain`'s key as is, as etcdctl would.
    pub fn put_raw(&self, domain: &str, value: &[u8]) {
        let mut g = self.lock();
        let key = g.keys.domain(domain).expect("a valid domain name");
        g.revision += 1;
        let rev = g.revision;
        g.store.insert(key, (value.to_vec(), rev));
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<WitnessCall> {
        self.lock().calls.clone()
    }

    /// `domain`'s stored record, read directly (no call logged).
    pub fn record(&self, domain: &str) -> Option<Record> {
        let g = self.lock();
        let key = g.keys.domain(domain).ok()?;
        g.store
            .get(&key)
            .and_then(|(v, _)| Record::parse(domain, v).ok())
    }

    /// Wait out the deadline if unreachable.
    async fn answer(&self) -> Result<(), WitnessError> {
        let (reachable, deadline) = {
            let g = self.lock();
            (g.reachable, g.deadline)
        };
        if reachable {
            return Ok(());
        }
        tokio::time::sleep(deadline).await;
        Err(WitnessError::Unreachable {
            endpoints: "the fake witness".into(),
            deadline,
            detail: "set_reachable(false)".into(),
        })
    }
}

impl Inner {
    fn get(&self, domain: &str) -> Result<Option<Versioned<Record>>, WitnessError> {
        let key = self
            .keys
            .domain(domain)
            .map_err(|source| WitnessError::Invalid {
                domain: domain.into(),
                source,
            })?;
        let Some((value, rev)) = self.store.get(&key) else {
            return Ok(None);
        };
        let value = Record::parse(domain, value).map_err(|source| WitnessError::BadRecord {
            domain: domain.into(),
            key,
            source,
        })?;
        Ok(Some(Versioned {
            value,
            revision: Revision(*rev),
        }))
    }

    /// The transaction: compare the revision, put, else get.
    fn swap(
        &mut self,
        domain: &str,
        expected: Option<&Versioned<Record>>,
        new: &Record,
    ) -> Result<Swap, WitnessError> {
        check_swap(domain, expected, new)?;
        let key = self.keys.domain(domain).expect("checked by check_swap");
        let current = self.store.get(&key).map(|(_, rev)| Revision(*rev));
        if current == expected.map(|e| e.revision) {
            self.revision += 1;
            self.store.insert(key, (new.to_json(), self.revision));
            return Ok(Swap::Won(Versioned {
                value: new.clone(),
                revision: Revision(self.revision),
            }));
        }
        Ok(settle_lost(new, self.get(domain)?))
    }
}

#[async_trait::async_trait]
impl Witness for FakeWitness {
    async fn read(&self, domain: &str) -> Result<Option<Versioned<Record>>, WitnessError> {
        let outcome = match self.answer().await {
            Ok(()) => self.lock().get(domain),
            Err(e) => Err(e),
        };
        self.lock().calls.push(WitnessCall::Read {
            domain: domain.into(),
            at: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }

    async fn swap(
        &self,
        domain: &str,
        expected: Option<&Versioned<Record>>,
        new: &Record,
    ) -> Result<Swap, WitnessError> {
        let outcome = match self.answer().await {
            Ok(()) => self.lock().swap(domain, expected, new),
            Err(e) => Err(e),
        };
        self.lock().calls.push(WitnessCall::Swap {
            domain: domain.into(),
            expected: expected.map(|e| e.value.epoch),
            new: new.clone(),
            at: Instant::now(),
            outcome: outcome.clone(),
        });
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::witness::RecordError;

    fn first(holder: &str) -> Record {
        Record::first("web1", holder, "/d", true).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn one_of_two_swaps_from_the_same_version_wins() {
        let w = FakeWitness::new();
        assert_eq!(w.read("web1").await, Ok(None));
        let Swap::Won(v1) = w.swap("web1", None, &first("hosta")).await.unwrap() else {
            panic!("the first record is won");
        };
        let a = v1.value.next("hosta", "/d", true);
        let b = v1.value.next("hostb", "/e", true);
        let (ra, rb) = tokio::join!(w.swap("web1", Some(&v1), &a), w.swap("web1", Some(&v1), &b));
        let won = |r: &Result<Swap, WitnessError>| matches!(r, Ok(Swap::Won(_)));
        assert!(won(&ra) ^ won(&rb), "{ra:?} {rb:?}");
        let Ok(Swap::Lost(Some(now))) = rb else {
            panic!("b lost to a: {rb:?}")
        };
        assert_eq!(now.value, a);
        // The loser's retry from the old version still loses; the winner's is won.
        assert!(matches!(
            w.swap("web1", Some(&v1), &b).await,
            Ok(Swap::Lost(Some(_)))
        ));
        assert!(matches!(
            w.swap("web1", Some(&v1), &a).await,
            Ok(Swap::Won(_))
        ));
        assert_eq!(w.record("web1"), Some(a));
        assert_eq!(w.calls().len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn unreachable_waits_out_the_deadline() {
        let w = FakeWitness::new();
        w.set_reachable(false);
        let t0 = Instant::now();
        let e = w.read("web1").await.unwrap_err();
        assert!(e.is_unreachable());
        assert_eq!(t0.elapsed(), DEFAULT_TIMEOUT);
        w.set_deadline(Duration::from_millis(120));
        let t0 = Instant::now();
        assert!(w.read("web1").await.unwrap_err().is_unreachable());
        assert_eq!(t0.elapsed(), Duration::from_millis(120));
        assert!(w
            .swap("web1", None, &first("hosta"))
            .await
            .unwrap_err()
            .is_unreachable());
        assert_eq!(w.record("web1"), None);
        w.set_reachable(true);
        assert!(matches!(
            w.swap("web1", None, &first("hosta")).await,
            Ok(Swap::Won(_))
        ));
        assert!(matches!(
            &w.calls()[..],
            [
                WitnessCall::Read {
                    outcome: Err(_),
                    ..
                },
                WitnessCall::Read {
                    outcome: Err(_),
                    ..
                },
                WitnessCall::Swap {
                    outcome: Err(_),
                    ..
                },
                WitnessCall::Swap {
                    outcome: Ok(Swap::Won(_)),
                    expected: None,
                    ..
                },
            ]
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_malformed_value_is_a_bad_record() {
        let w = FakeWitness::new();
        w.put_raw("web1", br#"{"domain":"web1","holder":"hosta","epoch":0}"#);
        let e = w.read("web1").await.unwrap_err();
        assert!(
            matches!(
                e,
                WitnessError::BadRecord {
                    source: RecordError::Json(_),
                    ..
                }
            ),
            "{e}"
        );
        // A swap cannot replace it blindly either.
        let e = w.swap("web1", None, &first("hosta")).await.unwrap_err();
        assert!(matches!(e, WitnessError::BadRecord { .. }), "{e}");
    }
}
