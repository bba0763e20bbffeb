//! The witness: one copy of record per protected domain, kept outside the pair (in
//! etcd, on a third host or a three-node cluster), changed only by compare-and-swap.
//!
//! ## The record
//!
//! Per domain, a [`Record`] (`record.rs`, with its JSON): which host holds the domain
//! (runs its serving copy), an epoch that grows by one on every change, the path of
//! the disk that is the copy of record on that host, and whether a copy is meant to
//! run at all. It lives under `<prefix>/domains/<domain>` (prefix `/ftvirt/v1` unless
//! `arbiter.witness.prefix` says otherwise). The store gives each stored value a
//! [`Revision`]; a record read comes [`Versioned`] with it.
//!
//! ## The compare-and-swap rule
//!
//! A record changes only by [`Witness::swap`]`(domain, expected, new)`:
//!
//! - `expected` is the versioned record this host last saw (`None`: it saw none, the
//!   domain has no record yet). The swap writes `new` only if the stored record is
//!   still exactly that one (same revision; for `None`, no record), in one atomic
//!   step of the store ([`etcd`]: one transaction, compare `mod_revision`, then put,
//!   else get).
//! - `new` must follow `expected`: epoch `expected.epoch + 1` (1 for a first record),
//!   the same domain, every field valid ([`Record::check`]); otherwise the swap is
//!   refused before the store is asked ([`WitnessError::NotNext`],
//!   [`WitnessError::Invalid`]).
//! - The answer is [`Swap::Won`] with the new version, or [`Swap::Lost`] with what the
//!   store holds now, so the loser knows who won without another read. Of two hosts
//!   swapping from the same version, exactly one wins.
//! - A swap whose record is already stored (an earlier attempt was written but its
//!   answer lost, and the retry finds it) is `Won`: swaps can be retried safely. Two
//!   hosts never write the same record, since each names itself as the holder when it
//!   goes live.
//!
//! ## When the witness does not answer
//!
//! Every call has a deadline (`arbiter.witness.timeout`, 300 ms by default: a
//! failover must stay under a second). A call that gets no answer by then, or only
//! transport failures, fails with [`WitnessError::Unreachable`]: nobody may go live
//! on that; the caller waits and asks again. A stored value that is not a valid
//! record is [`WitnessError::BadRecord`] (someone wrote it by hand; it is never
//! overwritten blindly: a swap from it needs the malformed value's revision, which no
//! read hands out), and a refusal by the store (permissions, a bad request) is
//! [`WitnessError::Refused`].
//!
//! [`Witness`] is the seam: [`etcd::EtcdWitness`] is the real one, and
//! `crate::testing::FakeWitness` the in-memory one for the middle-tier tests.

pub mod claim;
pub mod etcd;
mod record;

pub use record::{
    is_domain_name, is_prefix, Keys, Record, RecordError, DEFAULT_PREFIX, MAX_EPOCH,
    MAX_RECORD_BYTES,
};

use std::time::Duration;

/// The default deadline of one witness call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);

/// The store's version of a stored value (etcd's `mod_revision`): changes on every
/// write, never repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub i64);

/// A value as read from the store, with the revision it was stored at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: Revision,
}

/// The outcome of a [`Witness::swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The new record is stored, at this revision.
    Won(Versioned<Record>),
    /// The stored record was not the one expected; this is what is stored now
    /// (`None`: no record).
    Lost(Option<Versioned<Record>>),
}

/// Why a witness call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WitnessError {
    /// No answer within the deadline, or only transport failures: nobody may go live
    /// on this; ask again.
    #[error(
        "the witness did not answer within {} ms ({detail}): nobody goes live until it \
         does; check that etcd runs at {endpoints} and that this host reaches it with its \
         certificate", deadline.as_millis()
    )]
    Unreachable {
        endpoints: String,
        deadline: Duration,
        detail: String,
    },
    /// The stored value under the domain's key is not a valid record.
    #[error(
        "the witness's record of {domain:?} (key {key}) is not valid: {source}; fix or \
         delete it by hand (etcdctl get {key}) after checking which host runs the domain"
    )]
    BadRecord {
        domain: String,
        key: String,
        #[source]
        source: RecordError,
    },
    /// The record to write, or the domain name, is not valid (a caller's bug).
    #[error("refusing to ask the witness about {domain:?}: {source}")]
    Invalid {
        domain: String,
        #[source]
        source: RecordError,
    },
    /// The new record's epoch or domain does not follow the expected record.
    #[error(
        "the new record of {domain:?} must have epoch {want} (the expected record's + 1) \
         and name domain {domain:?}; it has epoch {epoch} and names {named:?}"
    )]
    NotNext {
        domain: String,
        want: u64,
        epoch: u64,
        named: String,
    },
    /// The store answered with a refusal that waiting will not fix.
    #[error(
        "the witness refused the request: {detail}; check etcd's log and this host's certificate"
    )]
    Refused { detail: String },
}

impl WitnessError {
    /// An unanswered call: the caller waits and asks again.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, WitnessError::Unreachable { .. })
    }
}

/// The copy-of-record store, as ftd uses it. Every call ends within the
/// implementation's deadline.
#[async_trait::async_trait]
pub trait Witness: Send + Sync + std::fmt::Debug {
    /// `domain`'s record, `None` when it has none.
    async fn read(&self, domain: &str) -> Result<Option<Versioned<Record>>, WitnessError>;

    /// Store `new` if `domain`'s record is still `expected` (see the module doc).
    async fn swap(
        &self,
        domain: &str,
        expected: Option<&Versioned<Record>>,
        new: &Record,
    ) -> Result<Swap, WitnessError>;
}

/// The checks of a swap's arguments, made before any store is asked.
pub fn check_swap(
    domain: &str,
    expected: Option<&Versioned<Record>>,
    new: &Record,
) -> Result<(), WitnessError> {
    let invalid = |source| WitnessError::Invalid {
        domain: domain.into(),
        source,
    };
    if !is_domain_name(domain) {
        return Err(invalid(RecordError::BadDomain(domain.into())));
    }
    new.check().map_err(invalid)?;
    let want = expected.map_or(1, |e| e.value.epoch.saturating_add(1));
    if new.epoch != want || new.domain != domain {
        return Err(WitnessError::NotNext {
            domain: domain.into(),
            want,
            epoch: new.epoch,
            named: new.domain.clone(),
        });
    }
    Ok(())
}

/// A lost compare: `Won` if the stored record is the one we meant to write (an
/// earlier attempt of this swap stored it), else `Lost` with it.
pub fn settle_lost(new: &Record, now: Option<Versioned<Record>>) -> Swap {
    match now {
        Some(v) if v.value == *new => Swap::Won(v),
        other => Swap::Lost(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(r: Record, rev: i64) -> Versioned<Record> {
        Versioned {
            value: r,
            revision: Revision(rev),
        }
    }

    #[test]
    fn a_swap_must_follow_the_expected_record() {
        let first = Record::first("web1", "hosta", "/d", true).unwrap();
        assert_eq!(check_swap("web1", None, &first), Ok(()));
        let seen = v(first.clone(), 7);
        let next = first.next("hostb", "/e", true);
        assert_eq!(check_swap("web1", Some(&seen), &next), Ok(()));
        // Not +1.
        assert_eq!(
            check_swap("web1", None, &next),
            Err(WitnessError::NotNext {
                domain: "web1".into(),
                want: 1,
                epoch: 2,
                named: "web1".into()
            })
        );
        assert!(matches!(
            check_swap("web1", Some(&seen), &first),
            Err(WitnessError::NotNext {
                want: 2,
                epoch: 1,
                ..
            })
        ));
        // Another domain's record.
        assert!(matches!(
            check_swap("web2", None, &first),
            Err(WitnessError::NotNext { .. })
        ));
        // An invalid record or domain never reaches the store.
        let mut bad = next.clone();
        bad.holder = "a b".into();
        assert!(matches!(
            check_swap("web1", Some(&seen), &bad),
            Err(WitnessError::Invalid {
                source: RecordError::BadHolder(_),
                ..
            })
        ));
        assert!(matches!(
            check_swap("a/b", None, &first),
            Err(WitnessError::Invalid {
                source: RecordError::BadDomain(_),
                ..
            })
        ));
    }

    #[test]
    fn a_lost_compare_that_finds_our_record_is_won() {
        let first = Record::first("web1", "hosta", "/d", true).unwrap();
        let ours = first.next("hosta", "/d", true);
        let theirs = first.next("hostb", "/e", true);
        assert_eq!(
            settle_lost(&ours, Some(v(ours.clone(), 9))),
            Swap::Won(v(ours.clone(), 9))
        );
        assert_eq!(
            settle_lost(&ours, Some(v(theirs.clone(), 9))),
            Swap::Lost(Some(v(theirs, 9)))
        );
        assert_eq!(settle_lost(&ours, None), Swap::Lost(None));
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = WitnessError::Unreachable {
            endpoints: "10.0.0.3:2379".into(),
            deadline: DEFAULT_TIMEOUT,
            detail: "connection refused".into(),
        };
        assert!(e.is_unreachable());
        assert_eq!(
            e.to_string(),
            "the witness did not answer within 300 ms (connection refused): nobody goes live \
             until it does; check that etcd runs at 10.0.0.3:2379 and that this host reaches \
             it with its certificate"
        );
        let e = WitnessError::BadRecord {
            domain: "web1".into(),
            key: "/ftvirt/v1/domains/web1".into(),
            source: RecordError::BadEpoch(0),
        };
        assert!(!e.is_unreachable());
        assert!(
            e.to_string()
                .contains("etcdctl get /ftvirt/v1/domains/web1"),
            "{e}"
        );
    }
}
