//! Snapshots written, loaded and replayed against the journal.

use std::collections::BTreeMap;

use super::format::*;
use super::load::*;
use super::write::*;
use crate::domain::{AdjustReason, Channel, CustomerId, HoldStatus, Quantity};
use crate::domain::{HoldId, SkuId, WebhookId};
use crate::hold::idempotency::Answer;
use crate::hold::idempotency::{IdempotencyRecord, StoredResponse};
use crate::hold::record::ReservedLine;
use crate::hold::HoldRecord;
use crate::sku::mark::{SaleWindow, StockMark};
use crate::sku::SkuChange;
use crate::store::image::Image;
use crate::store::recovery::RecoveryError;
use crate::store::Event;
use crate::webhook::{Endpoint, EventType};

fn sku(name: &str) -> SkuId {
    SkuId::parse(name).expect("sku")
}

fn placed(id: HoldId, lines: &[(&str, i64)], channel: &str, customer: &str) -> Event {
    let lines: Vec<ReservedLine> = lines
        .iter()
        .map(|(name, units)| ReservedLine {
            sku: sku(name),
            quantity: Quantity::parse(*units).expect("quantity"),
            pooled: 1,
            placement: Default::default(),
        })
        .collect();
    Event::HoldPlacedAt {
        marks: Vec::new(),
        hold: HoldRecord {
            id,
            lines,
            channel: Channel::parse(channel).expect("channel"),
            customer_id: CustomerId::parse(customer).expect("customer"),
            status: HoldStatus::Held,
            created_at_ms: 1,
            expires_at_ms: u64::MAX,
            updated_at_ms: 1,
            shipped_from: Default::default(),
            placed_by: Default::default(),
        },
        idempotency: IdempotencyRecord {
            scope_key: format!("{channel}/{id}"),
            fingerprint: [0; 32],
            at_ms: 1,
        },
    }
}

fn line(name: &str, change: SkuChange) -> Event {
    Event::Sku {
        sku: sku(name),
        change,
    }
}

/// A sale's worth of events on two SKUs: every kind of line change, stock and
/// allocation changes.
fn events() -> Vec<Event> {
    let ids: Vec<HoldId> = (0..6).map(|_| HoldId::new()).collect();
    let stock = |name: &str| {
        line(
            name,
            SkuChange::StockSet {
                on_hand: 100,
                safety_stock: 2,
                low_stock_threshold: Some(5),
            },
        )
    };
    vec![
        stock("A"),
        stock("B"),
        line(
            "A",
            SkuChange::AllocationSet {
                quotas: BTreeMap::from([(Channel::parse("web").expect("web"), 30)]),
            },
        ),
        placed(ids[0], &[("A", 3), ("B", 1)], "web", "ann"),
        placed(ids[1], &[("A", 2)], "app", "bob"),
        placed(ids[2], &[("B", 4)], "web", "ann"),
        // first snapshot here (after 6 events)
        line("A", SkuChange::LineCommitted { hold_id: ids[0] }),
        line("B", SkuChange::LineCommitted { hold_id: ids[0] }),
        line("A", SkuChange::LineReleased { hold_id: ids[1] }),
        placed(ids[3], &[("A", 5)], "app", "cy"),
        line("A", SkuChange::LineFulfilled { hold_id: ids[0] }),
        line(
            "B",
            SkuChange::StockAdjusted {
                delta: -3,
                reason: AdjustReason::Damaged,
            },
        ),
        placed(ids[4], &[("B", 2)], "app", "bob"),
        line("B", SkuChange::LineCommitted { hold_id: ids[4] }),
        // second snapshot here (after 14 events)
        line("B", SkuChange::LineFulfilled { hold_id: ids[4] }),
        line("A", SkuChange::LineCommitted { hold_id: ids[3] }),
        line("B", SkuChange::LineReleased { hold_id: ids[2] }),
        placed(ids[5], &[("A", 1), ("B", 1)], "web", "dee"),
        Event::Refused {
            idempotency: IdempotencyRecord {
                scope_key: "web/sold-out".into(),
                fingerprint: [1; 32],
                at_ms: 1,
            },
            status: 409,
            body: b"sold out".to_vec(),
        },
        // Format 7: a mark with a sale window, and a webhook endpoint's life.
        marked("A", 9, Some(true)),
        webhook("hook", None),
        Event::WebhookProgress {
            id: WebhookId::parse("hook").expect("id"),
            cursor: 4_096,
        },
        webhook("gone", None),
        Event::WebhookDeleted {
            id: WebhookId::parse("gone").expect("id"),
        },
        marked("B", 7, None),
    ]
}

/// A format 7 change: the SKU's sale window set, with its mark.
fn marked(name: &str, version: u64, open: Option<bool>) -> Event {
    let window = open.map(|open| SaleWindow {
        sale: crate::domain::SaleId::parse("drop").expect("sale"),
        open,
    });
    let mut mark = StockMark::reading(&crate::sku::SkuState::default()).mark(version, 5, None);
    mark.sale = window.clone();
    Event::SkuMarked {
        sku: sku(name),
        change: SkuChange::SaleWindowSet { window },
        mark,
    }
}

fn webhook(id: &str, disabled: Option<&str>) -> Event {
    Event::WebhookSet {
        endpoint: Endpoint {
            id: WebhookId::parse(id).expect("id"),
            url: "https://93.184.216.34/hook".into(),
            channel: None,
            events: vec![EventType::SoldOut],
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            created_at_ms: 1,
            disabled: disabled.map(|reason| crate::webhook::Disabled {
                reason: reason.into(),
                at_ms: 2,
            }),
        },
    }
}

/// Every remembered answer as the client would get it, by scope key.
fn answers(image: &Image) -> BTreeMap<String, (IdempotencyRecord, StoredResponse)> {
    image
        .answers()
        .into_iter()
        .map(|(record, answer)| {
            let response = match answer {
                Answer::Stored(response) => response,
                Answer::Placed(id) => image.holds[&id].placed_response(),
            };
            (record.scope_key.clone(), (record.clone(), response))
        })
        .collect()
}

fn replayed(events: &[Event], upto: usize) -> Image {
    let mut image = Image::default();
    for (seq, event) in (1..).zip(&events[..upto]) {
        image.apply(seq, event.clone());
    }
    image
}

/// A temporary database, its snapshot tree, and the compactor's handle on it.
fn fresh() -> (sled::Db, sled::Tree, Snapshots) {
    let db = sled::Config::new().temporary(true).open().expect("sled");
    let tree = db.open_tree("snapshots").expect("snapshot tree");
    let snapshots = Snapshots::open(tree.clone()).expect("opens");
    (db, tree, snapshots)
}

/// A fresh database whose snapshot holds every event of [`events`], written once.
fn written_once() -> (sled::Db, sled::Tree, Snapshots, Image) {
    let events = events();
    let (db, tree, mut snapshots) = fresh();
    let mut image = replayed(&events, events.len());
    snapshots.write(&mut image, &mut no_sync).expect("snapshot");
    (db, tree, snapshots, image)
}

fn no_sync() -> Result<(), SnapshotError> {
    Ok(())
}

fn chunk_keys(tree: &sled::Tree, generation: u64) -> usize {
    tree.scan_prefix(generation_prefix(generation)).count()
}

fn assert_same(loaded: &Image, expected: &Image, context: &str) {
    assert_eq!(loaded.skus, expected.skus, "{context}");
    assert_eq!(loaded.holds, expected.holds, "{context}");
    assert_eq!(answers(loaded), answers(expected), "{context}");
    assert_eq!(loaded.seq, expected.seq, "{context}");
    assert_eq!(loaded.webhooks, expected.webhooks, "{context}");
}

/// A crash after a generation's chunks but before the manifest names them: recovery
/// loads the snapshot before it, replays the journal to exactly the state of a plain
/// replay, and the orphaned chunks are deleted when the compactor opens the tree.
#[test]
fn a_snapshot_cut_short_is_never_loaded_and_its_chunks_are_swept() {
    let events = events();
    for (first, second) in [(6, 14), (6, 18), (3, 10), (0, 18)] {
        let context = format!("snapshot at {first}, cut short at {second}");
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let tree = db.open_tree("snapshots").expect("snapshot tree");
        let mut snapshots = Snapshots::open(tree.clone()).expect("opens");
        let mut image = replayed(&events, first);
        snapshots
            .write(&mut image, &mut no_sync)
            .expect("first snapshot");
        // A restart in between, as in the field: with `first` = 0 the named generation
        // is empty and has no chunk, and its id must not be handed out again.
        let mut snapshots = Snapshots::open(tree.clone()).expect("reopens");
        for (seq, event) in (1..).zip(&events).take(second).skip(first) {
            image.apply(seq, event.clone());
        }
        let (orphan, _) = snapshots.write_generation(&mut image).expect("chunks");
        assert!(chunk_keys(&tree, orphan.id) > 0, "{context}");

        let mut recovered = load(&tree).expect("loads");
        assert_eq!(
            recovered.seq,
            u64::try_from(first).expect("seq"),
            "{context}"
        );
        for (seq, event) in (1..).zip(&events).skip(first) {
            recovered.apply(seq, event.clone());
        }
        assert_same(&recovered, &replayed(&events, events.len()), &context);

        let mut reopened = Snapshots::open(tree.clone()).expect("reopens");
        assert_eq!(chunk_keys(&tree, orphan.id), 0, "{context}");
        reopened
            .write(&mut recovered, &mut no_sync)
            .expect("next snapshot");
        assert_same(&load(&tree).expect("loads"), &recovered, &context);
    }
}

/// Snapshots written one after another (deltas, then merges) each load back to the
/// state they were written from: lines, per-customer units, channel entries, answers.
#[test]
fn every_snapshot_loads_back_exactly() {
    let events = events();
    let (_db, tree, mut snapshots) = fresh();
    let mut image = Image::default();
    let mut merges = 0;
    for (seq, event) in (1..).zip(&events) {
        image.apply(seq, event.clone());
        let (generation, merge) = snapshots.write_generation(&mut image).expect("chunks");
        merges += usize::from(merge);
        snapshots
            .commit(generation, merge, image.seq, &mut no_sync)
            .expect("commit");
        let loaded = load(&tree).expect("loads");
        assert_same(&loaded, &image, &format!("snapshot after event {seq}"));
    }
    assert!(
        !answers(&image).is_empty() && !image.holds.is_empty(),
        "the events leave holds and answers to check"
    );
    assert!(merges >= 1, "no merge in {} snapshots", events.len());
    assert!(snapshots.manifest.generations.len() > 1, "ends on a delta");
}

/// Writing the same holds over and over: once the stored entries pass twice the live
/// ones the snapshot is rewritten as one generation and the older chunks are deleted,
/// so the snapshot stays proportional to the live state.
#[test]
fn deltas_are_merged_once_they_outnumber_the_live_state() {
    let (_db, tree, mut snapshots, mut image) = written_once();
    let live = u64::try_from(image.entries()).expect("count");
    let ids: Vec<HoldId> = image.holds.keys().copied().collect();
    let mut seq = image.seq;
    let mut deltas_before_merge = Vec::new();
    for round in 0..12u64 {
        for id in &ids {
            seq += 1;
            let event = Event::HoldStatusChanged {
                hold_id: *id,
                status: HoldStatus::Held,
                at_ms: round,
            };
            image.apply(seq, event);
        }
        let (generation, merge) = snapshots.write_generation(&mut image).expect("chunks");
        let older: Vec<u64> = snapshots
            .manifest
            .generations
            .iter()
            .map(|g| g.id)
            .collect();
        snapshots
            .commit(generation, merge, seq, &mut no_sync)
            .expect("commit");
        assert!(snapshots.manifest.stored_entries() <= 3 * live);
        if merge {
            deltas_before_merge.push(older.len());
            assert_eq!(snapshots.manifest.generations, vec![generation]);
            assert_eq!(generation.entries, live, "a merge writes every live entry");
            assert!(older.iter().all(|g| chunk_keys(&tree, *g) == 0));
        }
        assert_same(
            &load(&tree).expect("loads"),
            &image,
            &format!("round {round}"),
        );
    }
    assert!(deltas_before_merge.len() >= 2, "{deltas_before_merge:?}");
    assert!(
        deltas_before_merge.iter().all(|&n| n > 1),
        "{deltas_before_merge:?}"
    );
}

/// A hold forgotten after its retention is written as gone, and an older generation
/// that still has it does not bring it back; answers past their time likewise.
#[test]
fn forgotten_holds_and_expired_answers_stay_gone() {
    let (_db, tree, mut snapshots, mut image) = written_once();
    let released = image
        .holds
        .values()
        .find(|hold| {
            hold.status == HoldStatus::Held
                && hold.lines.iter().all(|line| {
                    image.skus[&line.sku]
                        .lines
                        .get(&hold.id)
                        .is_some_and(|line| !line.committed)
                })
        })
        .cloned()
        .expect("a hold with only held lines");
    let mut seq = image.seq;
    let mut release = vec![Event::HoldStatusChanged {
        hold_id: released.id,
        status: HoldStatus::Released,
        at_ms: 2,
    }];
    for hold_line in &released.lines {
        release.push(line(
            hold_line.sku.as_str(),
            SkuChange::LineReleased {
                hold_id: released.id,
            },
        ));
    }
    for event in release {
        seq += 1;
        image.apply(seq, event);
    }
    image.forget_expired(10, 5, 5);
    assert!(!image.holds.contains_key(&released.id));
    assert!(answers(&image).is_empty());
    let dirty = std::mem::take(&mut image.dirty);
    let delta = snapshots
        .write_generation_as(&image, &dirty, false)
        .expect("chunks");
    snapshots
        .commit(delta, false, seq, &mut no_sync)
        .expect("commit");
    assert_eq!(snapshots.manifest.generations.len(), 2);
    let loaded = load(&tree).expect("loads");
    assert!(!loaded.holds.contains_key(&released.id));
    assert!(answers(&loaded).is_empty(), "{:?}", answers(&loaded));
    assert_eq!(loaded.holds.len(), 5);
    assert_same(&loaded, &image, "after forgetting");
}

/// A key used again after the server forgot its first answer: the new hold is what
/// the key answers, before and after a snapshot, and still after the first hold is
/// forgotten (its record must not take the key's answer with it).
#[test]
fn a_key_used_again_after_its_ttl_answers_with_the_newer_hold() {
    let (first, second) = (HoldId::new(), HoldId::new());
    let with_key = |id: HoldId, at_ms: u64| {
        let mut event = placed(id, &[("A", 1)], "web", "ann");
        if let Event::HoldPlacedAt {
            hold, idempotency, ..
        } = &mut event
        {
            hold.created_at_ms = at_ms;
            hold.updated_at_ms = at_ms;
            idempotency.scope_key = "web/reused".into();
            idempotency.at_ms = at_ms;
        }
        event
    };
    let events = vec![
        with_key(first, 1),
        Event::HoldStatusChanged {
            hold_id: first,
            status: HoldStatus::Released,
            at_ms: 2,
        },
        line("A", SkuChange::LineReleased { hold_id: first }),
        // The answer TTL (50) has passed: the live server forgot the key and ran it again.
        with_key(second, 100),
    ];
    let answered_by = |image: &Image| {
        let answers = answers(image);
        let (record, response) = answers.get("web/reused").expect("the key answers");
        let body: serde_json::Value =
            serde_json::from_slice(&response.body).expect("a hold's json");
        assert_eq!(record.at_ms, 100);
        body["hold_id"].as_str().map(str::to_owned)
    };
    let second_id = Some(second.to_string());

    let (_db, tree, mut snapshots) = fresh();
    // The key answers with the second hold in the image and in a snapshot of it.
    let mut answers_second = |image: &mut Image, context: &str| {
        assert_eq!(answered_by(image), second_id, "{context}");
        snapshots.write(image, &mut no_sync).expect("snapshot");
        let loaded = load(&tree).expect("loads");
        assert_eq!(answered_by(&loaded), second_id, "{context}, loaded");
    };
    let mut image = replayed(&events, events.len());
    answers_second(&mut image, "replayed");

    // The first hold's retention (10) ends; the second's answer (TTL 50) has not.
    image.forget_expired(120, 10, 50);
    assert!(
        !image.holds.contains_key(&first),
        "the first hold is forgotten"
    );
    answers_second(&mut image, "after forgetting");
}

/// A snapshot whose write fails (here: its sync) took the image's changes with it;
/// the next one writes everything, so nothing the failed one carried is lost.
#[test]
fn after_a_failed_snapshot_the_next_one_writes_everything() {
    let events = events();
    let (_db, tree, mut snapshots) = fresh();
    let mut image = replayed(&events, 6);
    snapshots
        .write(&mut image, &mut no_sync)
        .expect("first snapshot");
    for (seq, event) in (1..).zip(&events).skip(6) {
        image.apply(seq, event.clone());
    }
    let mut failing = || Err(SnapshotError::Sync(std::io::Error::other("disk full")));
    assert!(snapshots.write(&mut image, &mut failing).is_err());
    assert_eq!(
        load(&tree).expect("loads").seq,
        6,
        "the failed one is not loaded"
    );
    assert_eq!(
        image.dirty.entries(),
        0,
        "its changes left the image's dirty set"
    );

    snapshots
        .write(&mut image, &mut no_sync)
        .expect("next snapshot");
    assert_eq!(snapshots.manifest.generations.len(), 1, "a merge");
    assert_same(
        &load(&tree).expect("loads"),
        &image,
        "after a failed snapshot",
    );
}

/// A generation missing a chunk is refused at load, not silently loaded short.
#[test]
fn a_generation_missing_a_chunk_is_reported_corrupt() {
    let (_db, tree, snapshots, _image) = written_once();
    let generation = snapshots.manifest.generations[0].id;
    tree.remove(chunk_key(generation, 0)).expect("removes");
    let err = load(&tree).err().expect("refused");
    assert!(matches!(err, RecoveryError::SnapshotCorrupt(_)), "{err}");
    assert!(
        err.to_string().contains("snapshot store is corrupt"),
        "{err}"
    );
}

/// Holds decoded from the journal or from a snapshot share the image's SKU ids and
/// channel names instead of each keeping its own copy of the text.
#[test]
fn decoded_holds_share_their_sku_ids_and_channels() {
    let events = events();
    let image = replayed(&events, events.len());
    let (_db, tree, _snapshots, _) = written_once();
    let loaded = load(&tree).expect("loads");
    for image in [&image, &loaded] {
        let (sku_a, _) = image.skus.get_key_value(&sku("A")).expect("A");
        let on_a: Vec<&HoldRecord> = image
            .holds
            .values()
            .filter(|hold| hold.lines.iter().any(|line| line.sku == *sku_a))
            .collect();
        assert!(on_a.len() >= 3);
        for hold in &on_a {
            let line = hold
                .lines
                .iter()
                .find(|line| line.sku == *sku_a)
                .expect("line");
            assert_eq!(line.sku.as_str().as_ptr(), sku_a.as_str().as_ptr());
        }
        let web: Vec<&HoldRecord> = image
            .holds
            .values()
            .filter(|hold| hold.channel.as_str() == "web")
            .collect();
        assert!(web.len() >= 2);
        assert!(web
            .iter()
            .all(|hold| hold.channel.as_str().as_ptr() == web[0].channel.as_str().as_ptr()));
    }
}
