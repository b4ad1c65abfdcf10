//! What a change left a SKU at: the availability a channel would read right after it, and
//! the SKU's version. The actor makes one mark per change it applies, and the journal
//! writes it in the same record as the change (the journal is the outbox), so the
//! availability events built from marks are exactly the durable changes: none is lost or
//! invented across a crash. See docs/DESIGN.md, "Availability broadcast".

use serde::{Deserialize, Serialize};

use super::state::SkuState;
use crate::domain::{Channel, SaleId};

/// The flash sale a SKU is on and whether its window is open: outside it the SKU cannot
/// be held, so channels are told when it opens and closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleWindow {
    pub sale: SaleId,
    pub open: bool,
}

/// How a SKU's availability reads at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockLevel {
    InStock,
    /// At or under the SKU's low-stock threshold, not zero.
    Low,
    SoldOut,
}

impl StockLevel {
    pub fn of(available: u64, low_stock_threshold: u64) -> Self {
        match available {
            0 => Self::SoldOut,
            units if units <= low_stock_threshold => Self::Low,
            _ => Self::InStock,
        }
    }
}

/// A crossing the change made, for alerts and webhooks: from some stock to none, from
/// none back (only after a sell-out, not a new SKU's first stock), or down into low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StockSignal {
    SoldOut,
    BackInStock,
    LowStock,
}

/// A SKU's availability after one change, as journaled with the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockMark {
    /// Changes applied to the SKU so far, this one included; survives restarts.
    pub version: u64,
    pub at_ms: u64,
    /// Units the SKU has available, all channels together.
    pub available: u64,
    /// Units a channel without a quota of its own can take: the free pool.
    pub pool: u64,
    /// Units each channel with a quota or units in play can take.
    pub channels: Vec<(Channel, u64)>,
    pub low_stock_threshold: u64,
    pub signal: Option<StockSignal>,
    /// The sale the SKU is on, if any, and whether its window is open.
    pub sale: Option<SaleWindow>,
}

impl StockMark {
    /// The availability `state` shows, without version, time or signal: what a restart
    /// compares to tell whether the last mark still describes the SKU.
    pub fn reading(state: &SkuState) -> Reading {
        let channels = state
            .quotas
            .keys()
            .chain(
                state
                    .channels
                    .keys()
                    .filter(|c| !state.quotas.contains_key(*c)),
            )
            .map(|channel| (channel.clone(), state.channel_available(channel)))
            .collect();
        Reading {
            available: state.available(),
            pool: state.pool_available(),
            channels,
            low_stock_threshold: state.low_stock_threshold,
            sale: state.sale_window.clone(),
        }
    }

    /// Units `channel` can take.
    pub fn channel_available(&self, channel: &Channel) -> u64 {
        self.channels
            .iter()
            .find(|(named, _)| named == channel)
            .map_or(self.pool, |(_, units)| *units)
    }

    pub fn level(&self) -> StockLevel {
        StockLevel::of(self.available, self.low_stock_threshold)
    }

    /// The digest of what this mark reads (see [`Reading::digest`]).
    pub fn digest(&self) -> u32 {
        digest(
            self.available,
            self.pool,
            &self.channels,
            self.low_stock_threshold,
            self.sale.as_ref(),
        )
    }
}

impl SkuState {
    /// Whether the SKU's last mark no longer says what the SKU has (a crash took a
    /// reservation it counted). A SKU that never made a mark has nothing to correct.
    pub fn last_mark_outdated(&self) -> bool {
        self.published.version > 0 && StockMark::reading(self).digest() != self.published.digest
    }
}

/// Availability as read from a state, before it is stamped into a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub available: u64,
    pub pool: u64,
    pub channels: Vec<(Channel, u64)>,
    pub low_stock_threshold: u64,
    pub sale: Option<SaleWindow>,
}

impl Reading {
    pub fn mark(self, version: u64, at_ms: u64, signal: Option<StockSignal>) -> StockMark {
        StockMark {
            version,
            at_ms,
            available: self.available,
            pool: self.pool,
            channels: self.channels,
            low_stock_threshold: self.low_stock_threshold,
            signal,
            sale: self.sale,
        }
    }

    /// A CRC-32C of the reading's fields: stable across builds (it is kept in snapshots),
    /// cheap, and four bytes a SKU.
    pub fn digest(&self) -> u32 {
        digest(
            self.available,
            self.pool,
            &self.channels,
            self.low_stock_threshold,
            self.sale.as_ref(),
        )
    }
}

fn digest(
    available: u64,
    pool: u64,
    channels: &[(Channel, u64)],
    threshold: u64,
    sale: Option<&SaleWindow>,
) -> u32 {
    let mut crc = crc32c::crc32c(&available.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &pool.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &threshold.to_le_bytes());
    for (channel, units) in channels {
        crc = crc32c::crc32c_append(crc, channel.as_str().as_bytes());
        crc = crc32c::crc32c_append(crc, &[0]);
        crc = crc32c::crc32c_append(crc, &units.to_le_bytes());
    }
    if let Some(window) = sale {
        crc = crc32c::crc32c_append(crc, window.sale.as_str().as_bytes());
        crc = crc32c::crc32c_append(crc, &[u8::from(window.open) + 1]);
    }
    crc
}

/// The last mark a SKU made, as much of it as a restart needs: its version, to go on
/// from, and its digest, to tell whether it still describes the SKU (a reservation that
/// a mark counted may have died with the process before its hold was written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub version: u64,
    pub digest: u32,
}

impl Published {
    /// Takes `mark` if it is newer. Marks reach the journal out of version order (a
    /// hold's reservation is written with the hold, after later changes may have been),
    /// so the highest version is the SKU's latest state, not the last one written.
    pub fn note(&mut self, mark: &StockMark) {
        if mark.version > self.version {
            *self = Self {
                version: mark.version,
                digest: mark.digest(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_threshold() {
        assert_eq!(StockLevel::of(0, 5), StockLevel::SoldOut);
        assert_eq!(StockLevel::of(5, 5), StockLevel::Low);
        assert_eq!(StockLevel::of(6, 5), StockLevel::InStock);
        assert_eq!(StockLevel::of(1, 0), StockLevel::InStock);
    }

    #[test]
    fn only_a_newer_mark_is_taken() {
        let state = SkuState {
            on_hand: 10,
            ..SkuState::default()
        };
        let mut published = Published::default();
        let newer = StockMark::reading(&state).mark(7, 0, None);
        published.note(&newer);
        let older = StockMark::reading(&SkuState::default()).mark(6, 0, None);
        published.note(&older);
        assert_eq!(published.version, 7);
        assert_eq!(published.digest, StockMark::reading(&state).digest());
        assert_ne!(published.digest, older.digest());
    }

    #[test]
    fn a_channel_without_a_quota_reads_the_pool() {
        let web = Channel::parse("web").expect("channel");
        let app = Channel::parse("app").expect("channel");
        let state = SkuState {
            on_hand: 10,
            quotas: [(web.clone(), 4)].into_iter().collect(),
            ..SkuState::default()
        };
        let mark = StockMark::reading(&state).mark(1, 0, None);
        assert_eq!(mark.channel_available(&web), 10);
        assert_eq!(mark.channel_available(&app), 6);
    }
}
