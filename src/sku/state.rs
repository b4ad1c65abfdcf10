//! One SKU's stock as plain data. Every change is a [`SkuChange`] applied by
//! [`SkuState::apply`], live and during journal replay alike, so the two cannot drift.
//! The `check_*` methods decide whether a command is allowed and name the change it makes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::domain::{AdjustReason, Channel, HoldId, Quantity, SkuId, UNITS_MAX};

/// A fact about one SKU, as written to the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkuChange {
    /// Start-of-day hard reset of `on_hand` and `safety_stock`; holds and commitments stay.
    StockSet { on_hand: u64, safety_stock: u64 },
    /// `on_hand` moved by `delta` for `reason`.
    StockAdjusted { delta: i64, reason: AdjustReason },
    /// Units taken into an unpaid hold. The actor does not journal this on its own: the
    /// hold's `HoldPlaced` event carries its lines and replay applies them there. That is
    /// safe because a reservation only moves `held` and the line, which commutes with every
    /// other change to the SKU except its own hold's later line changes, and those the hold
    /// book journals after `HoldPlaced`. One event per hold instead of one per line and hold.
    LineReserved {
        hold_id: HoldId,
        quantity: Quantity,
        channel: Channel,
    },
    /// A held line given back (release, expiry, or compensation of a failed cart).
    LineReleased { hold_id: HoldId },
    /// A held line paid for: its units move from `held` to `committed`.
    LineCommitted { hold_id: HoldId },
    /// A committed line shipped: `committed` and `on_hand` go down together.
    LineFulfilled { hold_id: HoldId },
}

/// Why a command on a SKU was refused. Operating errors, not bugs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkuError {
    #[error("sku {sku} has {available} units available, {requested} requested")]
    SoldOut {
        sku: SkuId,
        available: u64,
        requested: u64,
    },
    #[error("sku {sku} already has {lines} open hold lines, the configured maximum")]
    HoldLinesFull { sku: SkuId, lines: usize },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// A hold line this SKU is carrying: held (unpaid) or committed (paid, not shipped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Units on the line.
    pub quantity: Quantity,
    /// The channel the line counts against (quotas per channel come later).
    pub channel: Channel,
    /// False while held, true once paid.
    pub committed: bool,
}

/// Units a channel has in play on this SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelUsage {
    pub held: u64,
    pub committed: u64,
}

/// The counters and open lines of one SKU (DESIGN.md, "Stock model").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuState {
    /// Physical units in the warehouse.
    pub on_hand: u64,
    /// Units never offered online.
    pub safety_stock: u64,
    /// Units in unpaid holds; always the sum of the uncommitted lines.
    pub held: u64,
    /// Units paid for and not yet shipped; always the sum of the committed lines.
    pub committed: u64,
    /// Usage per channel, so channel quotas can be checked without walking the lines.
    pub channels: BTreeMap<Channel, ChannelUsage>,
    /// Open lines by hold. A line leaves when released, expired or fulfilled.
    pub lines: HashMap<HoldId, Line>,
}

/// What `GET /v1/skus/{sku}` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuView {
    pub sku: SkuId,
    pub on_hand: u64,
    pub safety_stock: u64,
    pub held: u64,
    pub committed: u64,
    pub available: u64,
    pub channels: BTreeMap<Channel, ChannelUsage>,
}

impl SkuState {
    /// Units that may be sold at all: on hand less the safety buffer.
    pub fn sellable(&self) -> u64 {
        self.on_hand.saturating_sub(self.safety_stock)
    }

    pub fn available(&self) -> u64 {
        self.sellable()
            .saturating_sub(self.held)
            .saturating_sub(self.committed)
    }

    pub fn view(&self, sku: &SkuId) -> SkuView {
        SkuView {
            sku: sku.clone(),
            on_hand: self.on_hand,
            safety_stock: self.safety_stock,
            held: self.held,
            committed: self.committed,
            available: self.available(),
            channels: self.channels.clone(),
        }
    }

    fn reserved(&self) -> u64 {
        self.held + self.committed
    }

    fn check_stock_level(&self, on_hand: u64, safety_stock: u64) -> Result<(), SkuError> {
        if on_hand > UNITS_MAX || safety_stock > UNITS_MAX {
            return Err(SkuError::Invalid(format!(
                "on_hand and safety_stock must be at most {UNITS_MAX}"
            )));
        }
        let sellable = on_hand.saturating_sub(safety_stock);
        if sellable < self.reserved() {
            return Err(SkuError::Conflict(format!(
                "on_hand {on_hand} less safety_stock {safety_stock} leaves {sellable} sellable, \
                 below the {} held and {} committed; release or fulfil holds first",
                self.held, self.committed
            )));
        }
        Ok(())
    }

    pub fn check_set(&self, on_hand: u64, safety_stock: u64) -> Result<SkuChange, SkuError> {
        self.check_stock_level(on_hand, safety_stock)?;
        Ok(SkuChange::StockSet {
            on_hand,
            safety_stock,
        })
    }

    pub fn check_adjust(&self, delta: i64, reason: AdjustReason) -> Result<SkuChange, SkuError> {
        let on_hand = i128::from(self.on_hand) + i128::from(delta);
        let on_hand = u64::try_from(on_hand).map_err(|_| {
            SkuError::Conflict(format!(
                "adjusting on_hand {} by {delta} would make it negative",
                self.on_hand
            ))
        })?;
        self.check_stock_level(on_hand, self.safety_stock)?;
        Ok(SkuChange::StockAdjusted { delta, reason })
    }

    pub fn check_reserve(
        &self,
        sku: &SkuId,
        hold_id: HoldId,
        quantity: Quantity,
        channel: &Channel,
        lines_max: usize,
    ) -> Result<SkuChange, SkuError> {
        if self.lines.contains_key(&hold_id) {
            return Err(SkuError::Conflict(format!(
                "hold {hold_id} already has a line on sku {sku}"
            )));
        }
        if self.lines.len() >= lines_max {
            return Err(SkuError::HoldLinesFull {
                sku: sku.clone(),
                lines: self.lines.len(),
            });
        }
        let available = self.available();
        if quantity.units() > available {
            return Err(SkuError::SoldOut {
                sku: sku.clone(),
                available,
                requested: quantity.units(),
            });
        }
        Ok(SkuChange::LineReserved {
            hold_id,
            quantity,
            channel: channel.clone(),
        })
    }

    /// The changes that bring a hold's line on this SKU to `target`. The book only moves a
    /// hold forward (held → committed → fulfilled, or held → released), but its messages to
    /// this actor may arrive out of order, so a line is advanced, never moved back: a
    /// `Fulfilled` that overtakes its `Committed` does both, and the late `Committed` is a
    /// no-op. A missing line (never reserved here, or already ended) needs nothing.
    pub fn line_changes_for(&self, hold_id: HoldId, target: LineTarget) -> Vec<SkuChange> {
        let Some(line) = self.lines.get(&hold_id) else {
            return Vec::new();
        };
        match (target, line.committed) {
            (LineTarget::Released, false) => vec![SkuChange::LineReleased { hold_id }],
            (LineTarget::Committed, false) => vec![SkuChange::LineCommitted { hold_id }],
            (LineTarget::Fulfilled, false) => vec![
                SkuChange::LineCommitted { hold_id },
                SkuChange::LineFulfilled { hold_id },
            ],
            (LineTarget::Fulfilled, true) => vec![SkuChange::LineFulfilled { hold_id }],
            (LineTarget::Released | LineTarget::Committed, true) => Vec::new(),
        }
    }

    /// Applies a change that was checked (live) or journaled (replay). Never fails:
    /// a journaled fact is replayed as it happened.
    pub fn apply(&mut self, change: &SkuChange) {
        match change {
            SkuChange::StockSet {
                on_hand,
                safety_stock,
            } => {
                self.on_hand = *on_hand;
                self.safety_stock = *safety_stock;
            }
            SkuChange::StockAdjusted { delta, .. } => {
                self.on_hand = self.on_hand.saturating_add_signed(*delta);
            }
            SkuChange::LineReserved {
                hold_id,
                quantity,
                channel,
            } => {
                self.held += quantity.units();
                self.channels.entry(channel.clone()).or_default().held += quantity.units();
                let line = Line {
                    quantity: *quantity,
                    channel: channel.clone(),
                    committed: false,
                };
                self.lines.insert(*hold_id, line);
            }
            SkuChange::LineReleased { hold_id } => {
                if let Some(line) = self.lines.remove(hold_id) {
                    let units = line.quantity.units();
                    self.held = self.held.saturating_sub(units);
                    let usage = self.channels.entry(line.channel).or_default();
                    usage.held = usage.held.saturating_sub(units);
                }
            }
            SkuChange::LineCommitted { hold_id } => {
                if let Some(line) = self.lines.get_mut(hold_id) {
                    let units = line.quantity.units();
                    line.committed = true;
                    self.held = self.held.saturating_sub(units);
                    self.committed += units;
                    let usage = self.channels.entry(line.channel.clone()).or_default();
                    usage.held = usage.held.saturating_sub(units);
                    usage.committed += units;
                }
            }
            SkuChange::LineFulfilled { hold_id } => {
                if let Some(line) = self.lines.remove(hold_id) {
                    let units = line.quantity.units();
                    self.committed = self.committed.saturating_sub(units);
                    self.on_hand = self.on_hand.saturating_sub(units);
                    let usage = self.channels.entry(line.channel).or_default();
                    usage.committed = usage.committed.saturating_sub(units);
                }
            }
        }
    }
}

/// Where a hold's status change sends its line on a SKU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineTarget {
    Released,
    Committed,
    Fulfilled,
}
