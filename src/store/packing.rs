//! Values encoded back to back (postcard) into bounded records: journal batches and
//! snapshot chunks are read this way, and snapshot chunks packed this way.

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
    record_bytes_max: usize,
}

impl Packer {
    pub fn new(record_bytes_max: usize) -> Self {
        Self {
            open: Vec::new(),
            record_bytes_max,
        }
    }

    /// Appends `value`. Returns the record it closed first to make room, if any.
    /// Encodes straight into the open record, with no buffer of its own per value.
    pub fn push<T: serde::Serialize>(
        &mut self,
        value: &T,
    ) -> Result<Option<Vec<u8>>, postcard::Error> {
        let start = self.open.len();
        if let Err(err) = postcard::to_io(value, &mut self.open) {
            self.open.truncate(start);
            return Err(err);
        }
        if start == 0 || self.open.len() <= self.record_bytes_max {
            return Ok(None);
        }
        let value = self.open.split_off(start);
        Ok(Some(std::mem::replace(&mut self.open, value)))
    }

    /// Closes the record being filled; None if it is empty.
    pub fn close(&mut self) -> Option<Vec<u8>> {
        (!self.open.is_empty()).then(|| std::mem::take(&mut self.open))
    }
}
