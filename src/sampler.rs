//! Once a second, samples what has no natural event to count: the units of the watched
//! SKUs (overall and per channel), the deepest SKU mailbox, table sizes and readiness.
//! (Each admission queue publishes its own gauges as it ticks.) Only SKUs on the configured watch list get per-SKU series, and only
//! configured channels get per-channel series (others add up under "other"), so label
//! sets stay bounded whatever requests arrive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Channel, SkuId};
use crate::hold::Checkout;
use crate::metrics as m;
use crate::sku::messages::GetView;
use crate::sku::state::{ChannelView, POOL};
use crate::store::Journal;

const PERIOD: Duration = Duration::from_secs(1);

/// What gets series of its own: the watched SKUs, and the configured channels (the rest
/// add up under "other").
pub struct Watch {
    pub skus: Vec<SkuId>,
    pub channels: Vec<Channel>,
}

/// The server's readiness: recovered and not stopping, and the journal writing.
pub struct Readiness {
    pub ready: Arc<AtomicBool>,
    pub journal: Journal,
}

/// Samples `checkout`'s tables, readiness, and what `watch` names, once a second.
pub async fn run(checkout: Arc<Checkout>, ready: Readiness, watch: Watch) {
    let mut interval = tokio::time::interval(PERIOD);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        sample(&checkout, &ready, &watch).await;
    }
}

async fn sample(state: &Checkout, ready: &Readiness, watch: &Watch) {
    let entries = state.reservations.directory.skus();
    let mailbox_depth_max = entries
        .iter()
        .map(|entry| entry.gauge.pending.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    m::sampled(&m::Sampled {
        skus: entries.len(),
        holds: state.reservations.book.len(),
        idempotency_keys: state.idempotency.len(),
        mailbox_depth_max,
        ready: ready.ready.load(Ordering::Acquire) && ready.journal.failure().is_none(),
    });
    for sku in &watch.skus {
        let Some(entry) = state.reservations.directory.get(sku) else {
            continue;
        };
        let gauge = &entry.gauge;
        m::sku_units(
            sku.as_str(),
            "on_hand",
            gauge.on_hand.load(Ordering::Relaxed),
        );
        m::sku_units(sku.as_str(), "held", gauge.held.load(Ordering::Relaxed));
        m::sku_units(
            sku.as_str(),
            "committed",
            gauge.committed.load(Ordering::Relaxed),
        );
        m::sku_units(
            sku.as_str(),
            "available",
            gauge.available.load(Ordering::Relaxed),
        );
        let Ok(view) = entry.ask(GetView, Some(PERIOD)).await else {
            continue;
        };
        let mut by_channel: BTreeMap<&str, ChannelView> = BTreeMap::new();
        for (channel, usage) in &view.channels {
            let known = channel == POOL
                || channel == "default"
                || watch.channels.iter().any(|known| known.as_str() == channel);
            let label = if known { channel.as_str() } else { "other" };
            let totals = by_channel.entry(label).or_default();
            totals.held += usage.held;
            totals.committed += usage.committed;
            totals.available = totals.available.max(usage.available);
        }
        for (channel, usage) in by_channel {
            m::sku_channel_units(sku.as_str(), channel, "held", usage.held);
            m::sku_channel_units(sku.as_str(), channel, "committed", usage.committed);
            m::sku_channel_units(sku.as_str(), channel, "available", usage.available);
        }
    }
}
