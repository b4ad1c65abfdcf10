//! The journal's files: segments of framed records, and how they are named, created,
//! read and synced. Format (version 1), documented in `docs/DESIGN.md` as well:
//!
//! - The journal is a directory of segment files, `journal/<first seq, 20 digits>.log`.
//!   A segment is named after the sequence number of its first event, so the names sort
//!   in journal order and a reader finds the segment after seq N under the name N+1.
//! - A segment is created zero-filled to `segment_bytes` and synced, then renamed into
//!   place and its directory synced: a later `fdatasync` then commits data only, never a
//!   new file size, and a zero-length frame marks where its records end.
//! - A record is one batch, written by one write: a frame of `FRAME_HEADER_BYTES` bytes,
//!   little-endian:
//!   `len: u32` (payload bytes, never 0), `crc: u32` (CRC32C of everything after it:
//!   the rest of the header and the payload), `first_seq: u64`, `count: u32` (events
//!   in it), then the payload (postcard events back to back), zero-padded to 8 bytes.
//!
//! A record is written whole by one write and acknowledged only after its sync, so after a
//! crash only the last record can be missing or torn, and no intact record can follow it.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FRAME_HEADER_BYTES: usize = 20;
/// Frames start at multiples of this, so a scan for a valid record after a bad one only
/// looks at aligned offsets.
pub const FRAME_ALIGN: usize = 8;
/// Largest payload of one record (a batch is one record): a segment's largest size. Only
/// rejects garbage; a real batch is far smaller (`--journal-batch-bytes-max`).
const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 30;
const SEGMENT_SUFFIX: &str = ".log";
/// A zero-filled file being made ready as the next segment.
pub const SPARE_NAME: &str = "next-segment.tmp";

pub fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &OsStr) -> Option<u64> {
    let name = name.to_str()?;
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The segments in `dir`, by first sequence number.
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(first_seq) = parse_segment_name(&entry.file_name()) {
            segments.push((first_seq, entry.path()));
        }
    }
    segments.sort_unstable_by_key(|(first_seq, _)| *first_seq);
    Ok(segments)
}

/// Makes a directory's entries (files created, renamed or deleted in it) durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Bytes a frame with this payload takes, padding included.
pub fn frame_bytes(payload_len: usize) -> usize {
    (FRAME_HEADER_BYTES + payload_len).next_multiple_of(FRAME_ALIGN)
}

/// Appends one framed record to `out`.
pub fn push_frame(out: &mut Vec<u8>, first_seq: u64, count: u32, payload: &[u8]) {
    let start = out.len();
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + frame_bytes(payload.len()), 0);
}

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A zero length: no record here, the segment's records end before it.
    End,
    Record {
        first_seq: u64,
        count: u32,
        payload: &'a [u8],
        /// Offset of the next frame.
        next: usize,
    },
    /// Not a whole, intact record: torn by a crash, or corrupt.
    Bad(String),
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Reads the frame at `at` in `bytes` (a segment's contents, or a tail of it).
pub fn read_frame(bytes: &[u8], at: usize) -> Frame<'_> {
    let Some(header) = bytes.get(at..at + FRAME_HEADER_BYTES) else {
        return if bytes.len() <= at || bytes[at..].iter().all(|&b| b == 0) {
            Frame::End
        } else {
            Frame::Bad("a frame header cut off by the end of the file".into())
        };
    };
    let len = le_u32(header, 0) as usize;
    if len == 0 {
        return Frame::End;
    }
    let count = le_u32(header, 16);
    if len > RECORD_PAYLOAD_BYTES_MAX || count == 0 {
        return Frame::Bad(format!("implausible frame (length {len}, {count} events)"));
    }
    let end = at + FRAME_HEADER_BYTES + len;
    let Some(payload) = bytes.get(at + FRAME_HEADER_BYTES..end) else {
        return Frame::Bad(format!(
            "a {len}-byte record cut off by the end of the file"
        ));
    };
    let crc = le_u32(header, 4);
    let actual = crc32c::crc32c_append(crc32c::crc32c(&header[8..]), payload);
    if crc != actual {
        return Frame::Bad(format!(
            "checksum mismatch (stored {crc:08x}, computed {actual:08x})"
        ));
    }
    Frame::Record {
        first_seq: le_u64(header, 8),
        count,
        payload,
        next: at + frame_bytes(len),
    }
}

/// Payload length a frame header claims (0: no record).
pub fn payload_len(header: &[u8]) -> usize {
    header.get(..4).map_or(0, |_| le_u32(header, 0) as usize)
}

/// The intact records from the start of a segment's contents, up to the first thing that
/// is not one: (offset, first seq, events). For tests and inspection.
pub fn records(bytes: &[u8]) -> Vec<(usize, u64, u32)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Frame::Record {
        first_seq,
        count,
        next,
        ..
    } = read_frame(bytes, at)
    {
        found.push((at, first_seq, count));
        at = next;
    }
    found
}

/// After a bad frame at `bad_at`: the offset of an intact record further on that follows
/// seq `after` (a torn write cannot leave one; corruption can), if any.
pub fn intact_record_after(bytes: &[u8], bad_at: usize, after: u64) -> Option<usize> {
    let mut at = bad_at.next_multiple_of(FRAME_ALIGN) + FRAME_ALIGN;
    while at + FRAME_HEADER_BYTES <= bytes.len() {
        if le_u32(bytes, at) != 0 && le_u64(bytes, at + 8) > after {
            if let Frame::Record { .. } = read_frame(bytes, at) {
                return Some(at);
            }
        }
        at += FRAME_ALIGN;
    }
    None
}

/// Creates a zero-filled file of `bytes` at `path` and makes it durable; removes it on
/// failure (a full disk must not keep a half-made spare).
pub fn create_zeroed(path: &Path, bytes: u64) -> std::io::Result<File> {
    let made = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let chunk = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            file.write_all(&zeros[..chunk])?;
            left -= chunk as u64;
        }
        file.sync_all()?;
        Ok(file)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: &[(u64, u32, &[u8])]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (first_seq, count, payload) in records {
            push_frame(&mut bytes, *first_seq, *count, payload);
        }
        bytes.resize(bytes.len() + 256, 0);
        bytes
    }

    #[test]
    fn frames_read_back_and_end_at_zeros() {
        let bytes = framed(&[(1, 2, b"hello"), (3, 1, b"a longer payload!")]);
        let Frame::Record {
            first_seq,
            count,
            payload,
            next,
        } = read_frame(&bytes, 0)
        else {
            panic!("first record");
        };
        assert_eq!((first_seq, count, payload), (1, 2, &b"hello"[..]));
        assert_eq!(next % FRAME_ALIGN, 0);
        let Frame::Record {
            first_seq, next, ..
        } = read_frame(&bytes, next)
        else {
            panic!("second record");
        };
        assert_eq!(first_seq, 3);
        assert_eq!(read_frame(&bytes, next), Frame::End);
    }

    #[test]
    fn any_flipped_bit_makes_a_frame_bad() {
        let clean = framed(&[(7, 1, b"payload")]);
        for byte in 0..FRAME_HEADER_BYTES + 7 {
            let mut bytes = clean.clone();
            bytes[byte] ^= 0x10;
            assert!(
                matches!(read_frame(&bytes, 0), Frame::Bad(_)),
                "flip in byte {byte} went unnoticed"
            );
        }
    }

    #[test]
    fn a_torn_tail_has_no_intact_record_after_it_and_corruption_does() {
        let mut bytes = framed(&[(1, 1, b"one"), (2, 1, b"two"), (3, 1, b"three")]);
        let second = frame_bytes(3);
        bytes[second + FRAME_HEADER_BYTES] ^= 1;
        assert!(matches!(read_frame(&bytes, second), Frame::Bad(_)));
        assert_eq!(
            intact_record_after(&bytes, second, 1),
            Some(2 * frame_bytes(3))
        );
        let mut torn = framed(&[(1, 1, b"one"), (2, 1, b"two")]);
        torn[second + FRAME_HEADER_BYTES] ^= 1;
        assert_eq!(intact_record_after(&torn, second, 1), None);
    }

    #[test]
    fn names_sort_as_sequence_numbers() {
        assert_eq!(segment_name(42), "00000000000000000042.log");
        assert_eq!(parse_segment_name(OsStr::new(&segment_name(42))), Some(42));
        assert_eq!(parse_segment_name(OsStr::new("42.log")), None);
        assert_eq!(parse_segment_name(OsStr::new(SPARE_NAME)), None);
    }
}
