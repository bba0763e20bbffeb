//! One durable-log record per 512-byte sector: encoding, decoding and the checksum.
//!
//! Sector layout (integers little-endian):
//!
//! | offset | length | field                                              |
//! |--------|--------|----------------------------------------------------|
//! | 0      | 8      | magic `FTVREC01`                                   |
//! | 8      | 8      | record number `n`                                  |
//! | 16     | 4      | payload length                                     |
//! | 20     | 4      | reserved, zero                                     |
//! | 24     | 8      | FNV-1a 64 over bytes 0..24, then over the payload  |
//! | 32     | len    | payload, then zero padding up to 512 bytes         |
//!
//! A sector holds record `n` only if the magic, the number and the checksum all match;
//! anything else (zeroes, an older record, a torn or corrupted write) is "no record".

use std::fmt;

/// The unit of the log and of the disk addressing.
pub const SECTOR: usize = 512;
/// First bytes of every record sector.
pub const MAGIC: [u8; 8] = *b"FTVREC01";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 32;
/// Largest payload a `PUT` may carry (fits one sector with room to spare).
pub const MAX_PAYLOAD: usize = 400;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64, continued from `hash` (start with [`fnv1a64_start`]).
pub fn fnv1a64(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The FNV-1a 64 offset basis.
pub const fn fnv1a64_start() -> u64 {
    FNV_OFFSET
}

/// Why a sector does not hold the record that was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The sector buffer is not 512 bytes long.
    ShortSector(usize),
    /// No record magic: never written (zeroes) or overwritten.
    BadMagic,
    /// A valid-looking record, but for another number.
    WrongNumber { found: u64 },
    /// The stored payload length is larger than [`MAX_PAYLOAD`].
    BadLength(u32),
    /// Header or payload bytes do not match the checksum.
    BadChecksum,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::ShortSector(n) => write!(f, "sector buffer has {n} bytes, not {SECTOR}"),
            Invalid::BadMagic => write!(f, "no record magic"),
            Invalid::WrongNumber { found } => write!(f, "sector holds record {found}"),
            Invalid::BadLength(l) => write!(f, "payload length {l} exceeds {MAX_PAYLOAD}"),
            Invalid::BadChecksum => write!(f, "checksum mismatch"),
        }
    }
}

/// The payload is longer than [`MAX_PAYLOAD`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload too long: {} bytes (max {MAX_PAYLOAD})", self.0)
    }
}

fn checksum(header: &[u8], payload: &[u8]) -> u64 {
    fnv1a64(fnv1a64(fnv1a64_start(), &header[..24]), payload)
}

/// The sector image of record `n`.
pub fn encode(n: u64, payload: &[u8]) -> Result<[u8; SECTOR], TooLong> {
    if payload.len() > MAX_PAYLOAD {
        return Err(TooLong(payload.len()));
    }
    let mut s = [0u8; SECTOR];
    s[0..8].copy_from_slice(&MAGIC);
    s[8..16].copy_from_slice(&n.to_le_bytes());
    // MAX_PAYLOAD fits in u32.
    s[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let sum = checksum(&s, payload);
    s[24..32].copy_from_slice(&sum.to_le_bytes());
    s[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    Ok(s)
}

/// The payload of record `n` if `sector` holds exactly that record.
pub fn decode(sector: &[u8], n: u64) -> Result<Vec<u8>, Invalid> {
    if sector.len() != SECTOR {
        return Err(Invalid::ShortSector(sector.len()));
    }
    if sector[0..8] != MAGIC {
        return Err(Invalid::BadMagic);
    }
    let len = u32::from_le_bytes(sector[16..20].try_into().expect("4 bytes"));
    if len as usize > MAX_PAYLOAD {
        return Err(Invalid::BadLength(len));
    }
    let payload = &sector[HEADER_LEN..HEADER_LEN + len as usize];
    let stored = u64::from_le_bytes(sector[24..32].try_into().expect("8 bytes"));
    if checksum(sector, payload) != stored {
        return Err(Invalid::BadChecksum);
    }
    let found = u64::from_le_bytes(sector[8..16].try_into().expect("8 bytes"));
    if found != n {
        return Err(Invalid::WrongNumber { found });
    }
    Ok(payload.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_vectors() {
        assert_eq!(fnv1a64(fnv1a64_start(), b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(fnv1a64_start(), b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(fnv1a64_start(), b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn round_trip() {
        let s = encode(7, b"hello world").unwrap();
        assert_eq!(&s[0..8], b"FTVREC01");
        assert_eq!(decode(&s, 7).unwrap(), b"hello world");
        let empty = encode(1, b"").unwrap();
        assert_eq!(decode(&empty, 1).unwrap(), b"");
        let full = vec![b'x'; MAX_PAYLOAD];
        assert_eq!(decode(&encode(2, &full).unwrap(), 2).unwrap(), full);
    }

    #[test]
    fn payload_limit() {
        assert_eq!(
            encode(1, &[0; MAX_PAYLOAD + 1]),
            Err(TooLong(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn rejects_wrong_number_zeroes_and_short() {
        let s = encode(7, b"x").unwrap();
        assert_eq!(decode(&s, 8), Err(Invalid::WrongNumber { found: 7 }));
        assert_eq!(decode(&[0; SECTOR], 1), Err(Invalid::BadMagic));
        assert_eq!(decode(&s[..100], 7), Err(Invalid::ShortSector(100)));
    }

    #[test]
    fn checksum_catches_payload_and_header_corruption() {
        let good = encode(3, b"payload").unwrap();
        let mut s = good;
        s[HEADER_LEN + 2] ^= 0x01;
        assert_eq!(decode(&s, 3), Err(Invalid::BadChecksum));
        let mut s = good;
        s[16] = 3; // shorter length, still in range
        assert_eq!(decode(&s, 3), Err(Invalid::BadChecksum));
        let mut s = good;
        s[8] = 4; // the number is covered by the checksum too
        assert_eq!(decode(&s, 4), Err(Invalid::BadChecksum));
        let mut s = good;
        s[17] = 0xff;
        assert!(matches!(decode(&s, 3), Err(Invalid::BadLength(_))));
    }
}
