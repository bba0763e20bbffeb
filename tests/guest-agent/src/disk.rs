//! Raw sector I/O on the log disk: reads that bypass the page cache (`O_DIRECT`) and
//! durable writes (`pwrite` + `fdatasync`).
//!
//! The reads are what makes `LAST` and `GET` honest: they show what the virtual disk
//! holds, not what the guest kernel remembers. `O_DIRECT` needs the buffer, the file
//! offset and the length aligned to the device's logical block size; every read here is
//! widened to [`ALIGN`] (4 KiB, a multiple of any block size we meet) and uses a buffer
//! aligned to it.

use crate::record::SECTOR;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of direct reads: buffer address, offset and length.
pub const ALIGN: usize = 4096;

/// A zeroed byte buffer whose start is aligned to [`ALIGN`] (safe code: a larger
/// `Vec` and an offset into it).
#[derive(Debug)]
struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN);
        assert!(off < ALIGN, "cannot align a byte buffer");
        AlignedBuf { raw, off, len }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// Read side of the disk, safe to share between threads (positional reads only).
#[derive(Debug)]
pub struct DirectReader {
    file: File,
    direct: bool,
}

impl DirectReader {
    /// Open `path` for reading with `O_DIRECT`. Where the file system refuses
    /// `O_DIRECT` (`EINVAL`, e.g. tmpfs before Linux 6.6, used by host-side tests) fall
    /// back to ordinary reads through the page cache; [`DirectReader::is_direct`] says
    /// which one we got. On the guest's `/dev/vda` `O_DIRECT` always works.
    pub fn open(path: &Path) -> io::Result<Self> {
        match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(file) => Ok(DirectReader { file, direct: true }),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let file = OpenOptions::new().read(true).open(path)?;
                Ok(DirectReader {
                    file,
                    direct: false,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Whether reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// `count` sectors starting at sector `first`. Bytes past the end of the disk or
    /// file read as zeroes (which no record decodes from).
    pub fn read_sectors(&self, first: u64, count: usize) -> io::Result<Vec<u8>> {
        let want_start = sector_offset(first)?;
        let want_len = count * SECTOR;
        let start = want_start - want_start % ALIGN as u64;
        let head = (want_start - start) as usize;
        let len = (head + want_len).div_ceil(ALIGN) * ALIGN;
        let mut buf = AlignedBuf::new(len);
        let bytes = buf.as_mut_slice();
        let mut done = 0;
        while done < len {
            let want = len - done;
            match self.file.read_at(&mut bytes[done..], start + done as u64) {
                Ok(n) => {
                    done += n;
                    // Short read: end of the disk or file. Stop here rather than issue
                    // a direct read at an offset that may no longer be aligned.
                    if n < want {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(bytes[head..head + want_len].to_vec())
    }
}

/// Write side of the disk. Not shared: the log keeps it behind its mutex.
#[derive(Debug)]
pub struct SyncWriter {
    file: File,
}

impl SyncWriter {
    /// Open `path` read-write (no `O_CREAT`: the disk must exist).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SyncWriter { file })
    }

    /// Write one sector and return only once `fdatasync` says it is on the disk.
    pub fn write_sector_durable(&self, sector: u64, data: &[u8; SECTOR]) -> io::Result<()> {
        self.file.write_all_at(data, sector_offset(sector)?)?;
        self.file.sync_data()
    }
}

fn sector_offset(sector: u64) -> io::Result<u64> {
    sector
        .checked_mul(SECTOR as u64)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "sector number too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffer_is_aligned() {
        for len in [512, 4096, 12288] {
            let mut b = AlignedBuf::new(len);
            let s = b.as_mut_slice();
            assert_eq!(s.len(), len);
            assert_eq!(s.as_ptr() as usize % ALIGN, 0);
        }
    }

    #[test]
    fn unaligned_sector_reads_and_past_the_end() {
        let t = crate::testutil::TempDisk::new("disk-read", 16 * SECTOR as u64);
        let w = SyncWriter::open(t.path()).unwrap();
        let mut s = [0u8; SECTOR];
        s[..5].copy_from_slice(b"sec 9");
        w.write_sector_durable(9, &s).unwrap();
        let r = DirectReader::open(t.path()).unwrap();
        let got = r.read_sectors(9, 1).unwrap();
        assert_eq!(&got[..5], b"sec 9");
        let got = r.read_sectors(8, 3).unwrap();
        assert_eq!(got.len(), 3 * SECTOR);
        assert_eq!(&got[SECTOR..SECTOR + 5], b"sec 9");
        // Past the end of the file: zeroes, not an error.
        let got = r.read_sectors(100, 2).unwrap();
        assert!(got.iter().all(|&b| b == 0));
    }
}
