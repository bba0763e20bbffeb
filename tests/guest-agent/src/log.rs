//! The durable log on the raw disk: record `n` lives in sector
//! [`LOG_BASE_SECTOR`]` + n` (format in [`crate::record`]), records are numbered from 1
//! and only ever appended in order.
//!
//! - `append` (the `PUT` command) takes the writer mutex, so appends from all
//!   connections are serialised; it accepts only `last + 1`, writes the sector and
//!   returns after `fdatasync`. Only then does the in-memory `last` move.
//! - `scan_last` (`LAST`) and `get` (`GET`) read the disk back with `O_DIRECT`
//!   ([`crate::disk::DirectReader`]); they never trust memory.
//!
//! The first [`LOG_BASE_SECTOR`] sectors (1 MiB) are left alone, so a partition table or
//! anything else a test puts at the start of the disk survives.

use crate::disk::{DirectReader, SyncWriter};
use crate::record::{self, TooLong, SECTOR};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Mutex;

/// Sector of the (unused) record 0; record `n` is at `LOG_BASE_SECTOR + n`.
pub const LOG_BASE_SECTOR: u64 = 2048;
/// Sectors per direct read while scanning (128 KiB).
const SCAN_CHUNK_SECTORS: usize = 256;

/// Why a `PUT` was refused or failed.
#[derive(Debug)]
pub enum AppendError {
    /// `n` is not `last + 1`; nothing was written.
    OutOfOrder { expected: u64, got: u64 },
    /// The payload is longer than [`record::MAX_PAYLOAD`]; nothing was written.
    TooLong(TooLong),
    /// The write or the `fdatasync` failed; the record may or may not be on disk, and
    /// `last` did not move (a retry of the same `n` overwrites it).
    Io(io::Error),
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::OutOfOrder { expected, got } => write!(f, "expected {expected} got {got}"),
            AppendError::TooLong(t) => t.fmt(f),
            AppendError::Io(e) => write!(f, "disk write failed: {e}"),
        }
    }
}

#[derive(Debug)]
struct Writer {
    disk: SyncWriter,
    /// Highest record whose `fdatasync` has returned.
    last: u64,
}

/// The log on one disk or file.
#[derive(Debug)]
pub struct DurableLog {
    reader: DirectReader,
    writer: Mutex<Writer>,
}

impl DurableLog {
    /// Open the disk and find `last` by scanning it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let reader = DirectReader::open(path)?;
        let disk = SyncWriter::open(path)?;
        let last = scan(&reader)?;
        Ok(DurableLog {
            reader,
            writer: Mutex::new(Writer { disk, last }),
        })
    }

    /// Whether reads bypass the page cache (false only on file systems without
    /// `O_DIRECT`, see [`DirectReader::open`]).
    pub fn reads_are_direct(&self) -> bool {
        self.reader.is_direct()
    }

    /// The highest record this process has made durable (or found at start-up).
    pub fn last_durable(&self) -> u64 {
        self.lock().last
    }

    /// The highest contiguous valid record, read back from the disk.
    pub fn scan_last(&self) -> io::Result<u64> {
        scan(&self.reader)
    }

    /// The payload of record `n` as the disk holds it, `None` if that sector does not
    /// hold a valid record `n`.
    pub fn get(&self, n: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(sector) = LOG_BASE_SECTOR.checked_add(n).filter(|_| n > 0) else {
            return Ok(None);
        };
        let bytes = self.reader.read_sectors(sector, 1)?;
        Ok(record::decode(&bytes, n).ok())
    }

    /// Append record `n` durably; returns once `fdatasync` has returned.
    pub fn append(&self, n: u64, payload: &[u8]) -> Result<(), AppendError> {
        let mut w = self.lock();
        let expected = w.last + 1;
        if n != expected {
            return Err(AppendError::OutOfOrder { expected, got: n });
        }
        let sector = record::encode(n, payload).map_err(AppendError::TooLong)?;
        w.disk
            .write_sector_durable(LOG_BASE_SECTOR + n, &sector)
            .map_err(AppendError::Io)?;
        w.last = n;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        // A panic while holding the lock leaves `last` consistent (it moves last).
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Read records 1, 2, ... in chunks until the first sector that is not the next record.
fn scan(reader: &DirectReader) -> io::Result<u64> {
    let mut last = 0u64;
    loop {
        let first = LOG_BASE_SECTOR + last + 1;
        let chunk = reader.read_sectors(first, SCAN_CHUNK_SECTORS)?;
        for sector in chunk.chunks_exact(SECTOR) {
            if record::decode(sector, last + 1).is_err() {
                return Ok(last);
            }
            last += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDisk;

    #[test]
    fn empty_disk_has_no_records() {
        let t = TempDisk::new("log-empty", 4 << 20);
        let log = DurableLog::open(t.path()).unwrap();
        assert_eq!(log.last_durable(), 0);
        assert_eq!(log.scan_last().unwrap(), 0);
        assert_eq!(log.get(1).unwrap(), None);
        assert_eq!(log.get(0).unwrap(), None);
        assert_eq!(log.get(u64::MAX).unwrap(), None);
    }

    #[test]
    fn put_then_last_and_get_and_reopen() {
        let t = TempDisk::new("log-put", 4 << 20);
        let log = DurableLog::open(t.path()).unwrap();
        // More than one scan chunk, to cover the chunk boundary.
        let n_records = SCAN_CHUNK_SECTORS as u64 + 10;
        for n in 1..=n_records {
            log.append(n, format!("record {n}").as_bytes()).unwrap();
        }
        assert_eq!(log.last_durable(), n_records);
        assert_eq!(log.scan_last().unwrap(), n_records);
        assert_eq!(log.get(3).unwrap().unwrap(), b"record 3");
        assert_eq!(log.get(n_records + 1).unwrap(), None);
        drop(log);
        let log = DurableLog::open(t.path()).unwrap();
        assert_eq!(log.last_durable(), n_records);
    }

    #[test]
    fn out_of_order_and_too_long_are_rejected_without_writing() {
        let t = TempDisk::new("log-order", 4 << 20);
        let log = DurableLog::open(t.path()).unwrap();
        let e = log.append(2, b"x").unwrap_err();
        assert_eq!(e.to_string(), "expected 1 got 2");
        log.append(1, b"a").unwrap();
        assert_eq!(
            log.append(1, b"again").unwrap_err().to_string(),
            "expected 2 got 1"
        );
        let e = log.append(2, &[b'y'; 401]).unwrap_err();
        assert_eq!(e.to_string(), "payload too long: 401 bytes (max 400)");
        assert_eq!(log.scan_last().unwrap(), 1);
        assert_eq!(log.get(1).unwrap().unwrap(), b"a");
        assert_eq!(log.get(2).unwrap(), None);
    }

    #[test]
    fn corruption_ends_the_contiguous_log() {
        let t = TempDisk::new("log-corrupt", 4 << 20);
        let log = DurableLog::open(t.path()).unwrap();
        for n in 1..=5 {
            log.append(n, b"payload").unwrap();
        }
        // Flip one payload byte of record 3 behind the log's back.
        let off = (LOG_BASE_SECTOR + 3) * SECTOR as u64 + record::HEADER_LEN as u64;
        t.poke(off, b"X");
        assert_eq!(log.scan_last().unwrap(), 2);
        assert_eq!(log.get(3).unwrap(), None);
        assert_eq!(log.get(4).unwrap().unwrap(), b"payload");
        let reopened = DurableLog::open(t.path()).unwrap();
        assert_eq!(reopened.last_durable(), 2);
        // Appending resumes at 3 and repairs the hole.
        reopened.append(3, b"again").unwrap();
        assert_eq!(reopened.scan_last().unwrap(), 5);
    }
}
