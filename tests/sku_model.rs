//! Property test: random sequences of hold, confirm, release, fulfil, expire, adjust and
//! set, driven through the real coordinator and SKU actor, checked after every step
//! against a plain reference model and the stock invariants.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use holdfast::domain::{
    AdjustReason, Channel, CustomerId, HoldStatus, LocationId, Quantity, SkuId,
};
use holdfast::hold::idempotency::IdempotencyRecord;
use holdfast::hold::{Action, HoldBook, HoldError, OrderLine, PlaceHold, Reservations};
use holdfast::sku::messages::{Adjust, GetView, SetStock};
use holdfast::sku::{SkuDirectory, SkuError};
use holdfast::store::{Durability, Journal, JournalSettings};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Hold(u64),
    Confirm(usize),
    Release(usize),
    Fulfil(usize),
    Expire(usize),
    Adjust(i64),
    Set(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..5).prop_map(Op::Hold),
        2 => any::<usize>().prop_map(Op::Confirm),
        2 => any::<usize>().prop_map(Op::Release),
        2 => any::<usize>().prop_map(Op::Fulfil),
        1 => any::<usize>().prop_map(Op::Expire),
        1 => (-6i64..7).prop_map(Op::Adjust),
        1 => (0u64..25, 0u64..4).prop_map(|(on_hand, safety)| Op::Set(on_hand, safety)),
    ]
}

/// The reference: a list of holds and two stock numbers, nothing clever.
#[derive(Default)]
struct Model {
    on_hand: u64,
    safety_stock: u64,
    /// (quantity, status, expires_at_ms) by placement order.
    holds: Vec<(u64, HoldStatus, u64)>,
}

impl Model {
    fn units(&self, status: HoldStatus) -> u64 {
        self.holds
            .iter()
            .filter(|h| h.1 == status)
            .map(|h| h.0)
            .sum()
    }
    fn reserved(&self) -> u64 {
        self.units(HoldStatus::Held) + self.units(HoldStatus::Confirmed)
    }
    fn available(&self) -> u64 {
        self.on_hand
            .saturating_sub(self.safety_stock)
            .saturating_sub(self.reserved())
    }
    fn stock_allowed(&self, on_hand: i64, safety_stock: u64) -> bool {
        u64::try_from(on_hand)
            .is_ok_and(|on_hand| on_hand.saturating_sub(safety_stock) >= self.reserved())
    }
}

struct Engine {
    reservations: Arc<Reservations>,
    arbiters: Vec<Arbiter>,
    /// The journal's directory, removed with the engine.
    _dir: tempfile::TempDir,
}

fn engine() -> Engine {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = JournalSettings {
        durability: Durability::None,
        batch_events_max: 1024,
        batch_bytes_max: 1 << 20,
        batch_events_min: 1,
        linger: Duration::ZERO,
        backlog_max: 1 << 20,
        dir: dir.path().to_path_buf(),
        segment_bytes: 1 << 20,
    };
    let (journal, _writer) = Journal::start(settings, 1).expect("journal starts");
    let arbiters: Vec<Arbiter> = (0..2).map(|_| Arbiter::new()).collect();
    let handles = arbiters.iter().map(Arbiter::handle).collect();
    let directory = Arc::new(SkuDirectory::new(
        handles,
        Arc::new(journal.clone()),
        holdfast::clock::Clock::system(),
        10,
        1_000,
        64,
    ));
    let answers = Arc::new(holdfast::hold::idempotency::IdempotencyStore::new(
        10_000, 60_000,
    ));
    let log: Arc<dyn holdfast::hold::log::HoldLog> = Arc::new(journal);
    let book = Arc::new(HoldBook::new(Arc::clone(&log), 10_000, 60_000, answers));
    let reservations = Arc::new(Reservations {
        directory,
        book,
        journal: log,
        actor_send_timeout: Duration::from_secs(5),
        clock: holdfast::clock::Clock::system(),
        locations: Arc::new(holdfast::location::Locations::new(10, 10)),
    });
    Engine {
        reservations,
        arbiters,
        _dir: dir,
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let engine = engine();
    let r = &engine.reservations;
    let sku = SkuId::parse("P").unwrap();
    let actor = r.directory.get_or_create(&sku).unwrap().addr;
    let mut model = Model::default();
    let mut ids = Vec::new();
    for op in ops {
        match op {
            Op::Hold(quantity) => {
                let request = PlaceHold {
                    lines: vec![OrderLine {
                        sku: sku.clone(),
                        quantity: Quantity::parse(quantity as i64).unwrap(),
                        customer_limit: None,
                        location: None,
                    }],
                    channel: Channel::parse("web").unwrap(),
                    customer_id: CustomerId::parse("c").unwrap(),
                    ttl_s: 900,
                    ship_to_region: None,
                    allow_split: None,
                };
                let record = IdempotencyRecord {
                    scope_key: "k".into(),
                    fingerprint: [0; 32],
                    at_ms: 0,
                };
                match r.place(request, record, Arc::from("web/k")).await {
                    Ok(hold) => {
                        prop_assert!(
                            quantity <= model.available(),
                            "held {quantity} beyond {}",
                            model.available()
                        );
                        model
                            .holds
                            .push((quantity, HoldStatus::Held, hold.expires_at_ms));
                        ids.push(hold.id);
                    }
                    Err(HoldError::Refused(SkuError::SoldOut { available, .. })) => {
                        prop_assert!(quantity > model.available());
                        prop_assert_eq!(available, model.available());
                    }
                    Err(other) => prop_assert!(false, "unexpected {other}"),
                }
            }
            Op::Confirm(i) | Op::Release(i) | Op::Fulfil(i) if !ids.is_empty() => {
                let i = i % ids.len();
                let (action, from, to) = match op {
                    Op::Confirm(_) => (Action::Confirm, HoldStatus::Held, HoldStatus::Confirmed),
                    Op::Release(_) => (Action::Release, HoldStatus::Held, HoldStatus::Released),
                    _ => (Action::Fulfil, HoldStatus::Confirmed, HoldStatus::Fulfilled),
                };
                let status = model.holds[i].1;
                let repeat =
                    status == to || (action == Action::Confirm && status == HoldStatus::Fulfilled);
                let answer = r.change(ids[i], action.clone()).await;
                if status == from {
                    prop_assert!(answer.is_ok(), "{action:?} from {status:?}");
                    model.holds[i].1 = to;
                    if to == HoldStatus::Fulfilled {
                        model.on_hand -= model.holds[i].0;
                    }
                } else if repeat {
                    prop_assert!(answer.is_ok(), "repeat {action:?} on {status:?}");
                } else {
                    prop_assert!(
                        matches!(answer, Err(HoldError::Conflict(_))),
                        "{action:?} on {status:?}"
                    );
                }
            }
            Op::Expire(i) if !ids.is_empty() => {
                let now = model.holds[i % ids.len()].2;
                let due = model
                    .holds
                    .iter()
                    .filter(|h| h.1 == HoldStatus::Held && h.2 <= now)
                    .count();
                prop_assert_eq!(r.expire_due_at(now, usize::MAX).await, due);
                for hold in model
                    .holds
                    .iter_mut()
                    .filter(|h| h.1 == HoldStatus::Held && h.2 <= now)
                {
                    hold.1 = HoldStatus::Expired;
                }
            }
            Op::Adjust(delta) => {
                let allowed = model.stock_allowed(model.on_hand as i64 + delta, model.safety_stock);
                let answer = actor
                    .send(Adjust {
                        location: LocationId::default_location(),
                        delta,
                        reason: AdjustReason::CycleCount,
                    })
                    .await
                    .unwrap();
                prop_assert_eq!(answer.is_ok(), allowed, "adjust {}", delta);
                if allowed {
                    model.on_hand = (model.on_hand as i64 + delta) as u64;
                }
            }
            Op::Set(on_hand, safety_stock) => {
                let allowed = model.stock_allowed(on_hand as i64, safety_stock);
                let answer = actor
                    .send(SetStock {
                        location: LocationId::default_location(),
                        as_of_ms: None,
                        on_hand,
                        safety_stock: Some(safety_stock),
                        low_stock_threshold: None,
                    })
                    .await
                    .unwrap();
                prop_assert_eq!(answer.is_ok(), allowed);
                if allowed {
                    (model.on_hand, model.safety_stock) = (on_hand, safety_stock);
                }
            }
            _ => {}
        }
        let view = actor.send(GetView).await.unwrap();
        prop_assert_eq!(view.on_hand, model.on_hand);
        prop_assert_eq!(view.held, model.units(HoldStatus::Held));
        prop_assert_eq!(view.committed, model.units(HoldStatus::Confirmed));
        prop_assert_eq!(view.available, model.available());
        prop_assert!(
            view.held + view.committed <= view.on_hand.saturating_sub(view.safety_stock),
            "oversold"
        );
    }
    for arbiter in engine.arbiters {
        arbiter.stop();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The actor agrees with the model after every step, and never oversells.
    #[test]
    fn one_sku_actor_matches_the_reference_model(ops in prop::collection::vec(op(), 1..60)) {
        actix::System::new().block_on(run(ops))?;
    }
}
