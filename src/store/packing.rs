//! Values encoded back to back (postcard) into bounded records: journal records and
//! snapshot chunks are both packed this way.

/// Decodes values encoded back to back in one record.
pub fn decode_packed<T: serde::de::DeserializeOwned>(
    value: &[u8],
) -> Result<Vec<T>, postcard::Error> {
    let mut items = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (item, tail) = postcard::take_from_bytes::<T>(rest)?;
        items.push(item);
        rest = tail;
    }
    Ok(items)
}

/// Packs values into records of at most `record_bytes_max` (a single larger value gets a
/// record of its own); [`decode_packed`] reads them back.
pub struct Packer {
    open: Vec<u8>,
    /// Values in the open record.
    open_values: u32,
    record_bytes_max: usize,
}

/// A record the packer closed: its bytes and how many values it holds.
pub struct Packed {
    pub bytes: Vec<u8>,
    pub values: u32,
}

impl Packer {
    pub fn new(record_bytes_max: usize) -> Self {
        Self {
            open: Vec::new(),
            open_values: 0,
            record_bytes_max,
        }
    }

    /// Appends `value`. Returns the record it closed first to make room, if any.
    /// Encodes straight into the open record, with no buffer of its own per value.
    pub fn push<T: serde::Serialize>(
        &mut self,
        value: &T,
    ) -> Result<Option<Packed>, postcard::Error> {
        let start = self.open.len();
        if let Err(err) = postcard::to_io(value, &mut self.open) {
            self.open.truncate(start);
            return Err(err);
        }
        if start == 0 || self.open.len() <= self.record_bytes_max {
            self.open_values += 1;
            return Ok(None);
        }
        let value = self.open.split_off(start);
        let closed = Packed {
            bytes: std::mem::replace(&mut self.open, value),
            values: std::mem::replace(&mut self.open_values, 1),
        };
        Ok(Some(closed))
    }

    /// Closes the record being filled; None if it is empty.
    pub fn close(&mut self) -> Option<Packed> {
        (!self.open.is_empty()).then(|| Packed {
            bytes: std::mem::take(&mut self.open),
            values: std::mem::take(&mut self.open_values),
        })
    }

    /// Bytes in the record being filled.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }
}
