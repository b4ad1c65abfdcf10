//! Invariants 2 and 3 against the real binary: every acknowledged change survives kill -9,
//! every hold still ends after a restart, snapshots keep the journal short, and a corrupt
//! journal stops the server without touching it.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{assert_conserved, Process, TestServer};
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};

const SKUS: usize = 12;
const STOCK: u64 = 60;
const HOLD_TTL_S: u64 = 2;

/// A small xorshift generator: the kill points differ per run; the seed is printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the server acknowledged about one hold.
#[derive(Clone, Debug)]
struct Acked {
    lines: Vec<(String, u64)>,
    status: &'static str,
}

type Ledger = Arc<Mutex<HashMap<String, Acked>>>;

fn sku_name(i: u64) -> String {
    format!("CRASH-{i}")
}

/// One shopper: hold 1–2 SKUs for a short TTL, then maybe pay, then maybe ship, recording
/// only what was acknowledged with a 2xx. Ends when the server stops answering.
async fn shopper(server: Arc<TestServer>, ledger: Ledger, mut rng: Rng, worker: usize) {
    for n in 0.. {
        let first = rng.below(SKUS as u64);
        let mut lines = vec![(sku_name(first), 1 + rng.below(2))];
        if rng.below(3) == 0 {
            lines.push((
                sku_name((first + 1 + rng.below(SKUS as u64 - 1)) % SKUS as u64),
                1,
            ));
        }
        let body = json!({
            "lines": lines.iter().map(|(s, q)| json!({"sku": s, "quantity": q})).collect::<Vec<_>>(),
            "customer_id": format!("c{worker}"),
            "ttl_seconds": HOLD_TTL_S,
        });
        let key = format!("w{worker}-{n}-{}", rng.next());
        let Ok(response) = server
            .client
            .post(server.url("/v1/holds"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
        else {
            return;
        };
        if response.status() != StatusCode::CREATED {
            continue;
        }
        let Ok(hold) = response.json::<Value>().await else {
            return;
        };
        let id = hold["hold_id"].as_str().unwrap_or_default().to_owned();
        ledger.lock().unwrap().insert(
            id.clone(),
            Acked {
                lines,
                status: "held",
            },
        );
        for (action, status) in [("confirm", "confirmed"), ("fulfil", "fulfilled")] {
            if rng.below(2) == 0 {
                break;
            }
            let url = server.url(&format!("/v1/holds/{id}/{action}"));
            match server.client.post(url).send().await {
                Ok(r) if r.status() == StatusCode::OK => {
                    ledger.lock().unwrap().get_mut(&id).unwrap().status = status;
                }
                Ok(_) => break,
                Err(_) => return,
            }
        }
    }
}

/// Every acknowledged hold is there with its acknowledged status or a later one; every SKU
/// is conserved and holds at least the units acknowledged as committed.
async fn verify(server: &TestServer, ledger: &Ledger) {
    let acked = ledger.lock().unwrap().clone();
    let mut committed_min: HashMap<String, u64> = HashMap::new();
    for (id, hold) in &acked {
        let answer = server.get_hold(id).await;
        assert_eq!(answer.status, StatusCode::OK, "acknowledged hold {id} lost");
        let status = answer.body["status"].as_str().unwrap_or_default();
        let allowed: &[&str] = match hold.status {
            "held" => &["held", "expired", "confirmed", "fulfilled"],
            "confirmed" => &["confirmed", "fulfilled"],
            _ => &["fulfilled"],
        };
        assert!(
            allowed.contains(&status),
            "hold {id} acknowledged {} reads {status}",
            hold.status
        );
        if hold.status == "confirmed" && status == "confirmed" {
            for (sku, quantity) in &hold.lines {
                *committed_min.entry(sku.clone()).or_default() += quantity;
            }
        }
    }
    for i in 0..SKUS as u64 {
        let view = server.sku(&sku_name(i)).await;
        assert_conserved(&view);
        let floor = committed_min.get(&sku_name(i)).copied().unwrap_or(0);
        assert!(
            view["committed"].as_u64().unwrap() >= floor,
            "acknowledged commitments lost: {view}"
        );
    }
}

async fn wait_until_nothing_is_held(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(HOLD_TTL_S + 3);
    for i in 0..SKUS as u64 {
        loop {
            let view = server.sku(&sku_name(i)).await;
            if view["held"] == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "units still held after every TTL ran out: {view}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn start(data: &std::path::Path) -> (Process, Arc<TestServer>) {
    let process = Process::start(
        data,
        &["--snapshot-every-events", "300", "--snapshot-every-s", "1"],
        &[],
    );
    let server = Arc::new(
        process
            .server(None)
            .as_test_server(tempfile::tempdir().unwrap()),
    );
    (process, server)
}

/// Several rounds of load killed with SIGKILL at a random moment: after each restart every
/// acknowledged hold and commitment is there, every SKU is conserved, and once the TTLs
/// have passed no unit is held — holds that expired during the downtime included.
#[actix_web::test]
async fn acknowledged_changes_survive_kill_9_at_random_moments() {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ledger: Ledger = Arc::default();
    for round in 0..4 {
        let (process, server) = start(&data);
        if round == 0 {
            for i in 0..SKUS as u64 {
                server.put_sku(&sku_name(i), STOCK, 2).await;
            }
        }
        verify(&server, &ledger).await;
        let shoppers = (0..16).map(|w| {
            shopper(
                Arc::clone(&server),
                Arc::clone(&ledger),
                Rng(rng.next() | 1),
                w,
            )
        });
        let load = actix_web::rt::spawn(join_all(shoppers));
        let kill_after = Duration::from_millis(200 + rng.below(900));
        tokio::time::sleep(kill_after).await;
        process.kill9();
        let _ = load.await;
        println!(
            "round {round}: killed after {kill_after:?}, {} holds acknowledged",
            ledger.lock().unwrap().len()
        );
    }
    let (_process, server) = start(&data);
    verify(&server, &ledger).await;
    wait_until_nothing_is_held(&server).await;
    let acked = ledger.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the load made too few holds to prove anything: {}",
        acked.len()
    );
    for id in acked
        .iter()
        .filter(|(_, h)| h.status == "held")
        .map(|(id, _)| id)
    {
        let status = server.get_hold(id).await.body["status"].clone();
        assert!(
            status == "expired" || status == "confirmed" || status == "fulfilled",
            "{id}: {status}"
        );
    }
}

fn journal_entries(data: &std::path::Path) -> usize {
    let db = sled::open(data.join("sled")).expect("data dir opens once the server is gone");
    db.open_tree("journal").unwrap().len()
}

/// Snapshots trim the journal while the server runs, and state is identical after a restart.
#[actix_web::test]
async fn snapshots_keep_the_journal_short_and_state_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--snapshot-every-events", "200", "--snapshot-every-s", "1"];
    let process = Process::start(&data, &args, &[]);
    let server = process
        .server(None)
        .as_test_server(tempfile::tempdir().unwrap());
    for i in 0..5 {
        server.put_sku(&format!("SNAP-{i}"), 1_000, 0).await;
    }
    let holds = join_all((0..600).map(|n| {
        server.hold_owned(
            format!("s{n}"),
            vec![(["SNAP-0", "SNAP-1", "SNAP-2", "SNAP-3", "SNAP-4"][n % 5], 1)],
        )
    }))
    .await;
    for hold in holds.iter().step_by(2) {
        let id = hold.body["hold_id"].as_str().unwrap();
        assert_eq!(server.act(id, "confirm").await.status, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let metrics = server.metrics().await;
    let entries =
        common::metric(&metrics, "holdfast_journal_entries").expect("journal entries gauge");
    assert!(
        entries < 400.0,
        "about 2,400 events were journaled but {entries} remain"
    );
    let mut views = Vec::new();
    for i in 0..5 {
        views.push(server.sku(&format!("SNAP-{i}")).await);
    }
    assert_eq!(process.terminate().code(), Some(0));
    assert_eq!(
        journal_entries(&data),
        0,
        "a graceful stop snapshots and trims everything"
    );

    let (_process, server) = Process::start_server(&data, &args);
    let mut after = Vec::new();
    for i in 0..5 {
        after.push(server.sku(&format!("SNAP-{i}")).await);
    }
    assert_eq!(after, views);
    let first = &holds[0];
    let retry = server.hold("s0", &[("SNAP-0", 1)]).await;
    assert_eq!(
        retry.body, first.body,
        "idempotency answers survive in the snapshot"
    );
    assert_eq!(
        server
            .get_hold(first.body["hold_id"].as_str().unwrap())
            .await
            .body["status"],
        "confirmed"
    );
}

/// A journal entry that cannot be decoded stops the start with a clear error and a
/// non-zero exit, and the data is left as it was.
#[test]
fn a_corrupt_journal_entry_stops_the_start_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let process = Process::start(&data, &[], &[]);
    assert_eq!(process.terminate().code(), Some(0));
    {
        let db = sled::open(data.join("sled")).unwrap();
        db.open_tree("journal")
            .unwrap()
            .insert(u64::MAX.to_be_bytes(), &b"\xff\xff garbage"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let output = common::binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot be decoded"), "{stderr}");
    let db = sled::open(data.join("sled")).unwrap();
    let kept = db
        .open_tree("journal")
        .unwrap()
        .get(u64::MAX.to_be_bytes())
        .unwrap();
    assert_eq!(kept.as_deref(), Some(&b"\xff\xff garbage"[..]));
}

/// Turns a stopped server's data dir into what builds of format 4 left: the snapshots in a
/// tree of the journal's own Db.
fn make_format_4(data: &std::path::Path) {
    let own = sled::open(data.join("snapshots")).unwrap();
    let shared = sled::open(data.join("sled")).unwrap();
    let from = own.open_tree("snapshots").unwrap();
    let to = shared.open_tree("snapshots").unwrap();
    for entry in from.iter() {
        let (key, value) = entry.unwrap();
        to.insert(key, value).unwrap();
    }
    assert!(!to.is_empty(), "there was a snapshot to move");
    shared.flush().unwrap();
    drop((own, from));
    std::fs::remove_dir_all(data.join("snapshots")).unwrap();
    std::fs::write(data.join("holdfast.format"), [4u8]).unwrap();
}

/// A data dir of format 4 (snapshots inside the journal's Db, the journal trimmed under
/// them) starts with every SKU, hold and answer, and its first snapshot in the new place
/// retires the old tree.
#[actix_web::test]
async fn snapshots_kept_by_an_earlier_build_load_and_then_move() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--snapshot-every-events", "50", "--snapshot-every-s", "1"];
    let (process, server) = Process::start_server(&data, &args);
    server.put_sku("OLD", 100, 0).await;
    // Untouched after the move: only a full first snapshot in the new place keeps it.
    server.put_sku("IDLE", 7, 1).await;
    let idle = server.sku("IDLE").await;
    let held = server.hold("old-key", &[("OLD", 3)]).await;
    let hold_id = held.body["hold_id"].as_str().unwrap().to_owned();
    let view = server.sku("OLD").await;
    assert_eq!(process.terminate().code(), Some(0));
    assert_eq!(journal_entries(&data), 0, "all of it is in the snapshot");
    make_format_4(&data);

    let (process, server) = Process::start_server(&data, &args);
    assert_eq!(
        std::fs::read(data.join("holdfast.format")).unwrap(),
        [5u8],
        "marked as the new format, so a build that reads only 4 refuses it"
    );
    assert_eq!(server.sku("OLD").await, view);
    assert_eq!(server.hold("old-key", &[("OLD", 3)]).await.body, held.body);
    assert_eq!(server.get_hold(&hold_id).await.body["status"], "held");
    // Changes after the move, then a snapshot (the stop writes one) in the new place.
    assert_eq!(server.act(&hold_id, "confirm").await.status, StatusCode::OK);
    let view = server.sku("OLD").await;
    assert_eq!(process.terminate().code(), Some(0));
    {
        let shared = sled::open(data.join("sled")).unwrap();
        let names = shared.tree_names();
        assert!(
            !names.iter().any(|name| name == &b"snapshots"[..]),
            "the old snapshot tree is dropped"
        );
    }

    let (_process, server) = Process::start_server(&data, &args);
    assert_eq!(server.sku("OLD").await, view);
    assert_eq!(server.sku("IDLE").await, idle);
    assert_eq!(server.get_hold(&hold_id).await.body["status"], "confirmed");
    assert_eq!(server.hold("old-key", &[("OLD", 3)]).await.body, held.body);
}
