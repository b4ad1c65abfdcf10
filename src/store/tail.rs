//! Following the journal while it is written: the compactor reads what the writer made
//! durable, record by record, across segment rolls. It reads only up to the writer's last
//! durable sequence number, so it never sees a record being written.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::events::Event;
use super::packing::decode_packed;
use super::segment::{self, Frame, FRAME_HEADER_BYTES};

pub struct Tail {
    dir: PathBuf,
    /// Sequence number of the next event to read.
    next_seq: u64,
    /// The segment being read and the offset of its next frame.
    current: Option<(File, u64)>,
    buf: Vec<u8>,
}

impl Tail {
    /// Reads from the event `next_seq` on, which starts a segment (the writer starts a
    /// new one at every start).
    pub fn new(dir: PathBuf, next_seq: u64) -> Self {
        Self {
            dir,
            next_seq,
            current: None,
            buf: Vec::new(),
        }
    }

    /// Hands every event up to `durable_seq`, at most `records_max` records, to `apply`;
    /// returns the number of events read.
    pub fn read(
        &mut self,
        durable_seq: u64,
        records_max: usize,
        apply: &mut dyn FnMut(u64, Event),
    ) -> Result<usize, String> {
        let mut events = 0;
        let mut records = 0;
        while self.next_seq <= durable_seq && records < records_max {
            let (file, offset) = match self.current.as_mut() {
                Some((file, offset)) => (file, offset),
                None => {
                    let name = segment::segment_name(self.next_seq);
                    let file = File::open(self.dir.join(&name))
                        .map_err(|e| format!("opening journal segment {name}: {e}"))?;
                    let (file, offset) = self.current.insert((file, 0));
                    (&mut *file, offset)
                }
            };
            self.buf.resize(FRAME_HEADER_BYTES, 0);
            let read = read_at_most(file, &mut self.buf, *offset)?;
            self.buf.truncate(read);
            if matches!(segment::read_frame(&self.buf, 0), Frame::End) {
                // The writer moved on to a segment that starts with the next event.
                self.current = None;
                continue;
            }
            let len = segment::payload_len(&self.buf);
            self.buf.resize(FRAME_HEADER_BYTES + len, 0);
            let read = read_at_most(file, &mut self.buf, *offset)?;
            self.buf.truncate(read);
            let (first_seq, payload, next) = match segment::read_frame(&self.buf, 0) {
                Frame::Record {
                    first_seq,
                    payload,
                    next,
                    ..
                } => (first_seq, payload, next),
                Frame::End => return Err("a journal record changed while it was read".into()),
                Frame::Bad(reason) => {
                    return Err(format!(
                        "journal record at seq {} is bad: {reason}",
                        self.next_seq
                    ))
                }
            };
            if first_seq != self.next_seq {
                return Err(format!(
                    "journal record starts at seq {first_seq}, expected {}",
                    self.next_seq
                ));
            }
            let decoded: Vec<Event> =
                decode_packed(payload).map_err(|e| format!("journal seq {first_seq}: {e}"))?;
            for (seq, event) in (first_seq..).zip(decoded) {
                apply(seq, event);
                self.next_seq = seq + 1;
                events += 1;
            }
            *offset += next as u64;
            records += 1;
        }
        Ok(events)
    }
}

/// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> Result<usize, String> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(format!("reading the journal: {err}")),
        }
    }
    Ok(filled)
}
