//! Invariants 2 and 3 against the real binary: every acknowledged change survives kill -9,
//! every hold still ends after a restart, snapshots keep the journal short, and a corrupt
//! journal stops the server without touching it.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{assert_conserved, Process, TestServer};
use futures_util::future::join_all;
use holdfast::store::segment;
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
    let seed = u64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap_or(1)
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

/// The journal's segment files, oldest first.
fn segments(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let listed = segment::list(&data.join("journal")).unwrap();
    listed.into_iter().map(|(_, path)| path).collect()
}

/// Snapshots delete the journal segments they cover while the server runs, and state is
/// identical after a restart.
#[actix_web::test]
async fn snapshots_keep_the_journal_short_and_state_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "--snapshot-every-events",
        "200",
        "--snapshot-every-s",
        "1",
        "--journal-segment-bytes",
        "16384",
    ];
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
        entries < 1_000.0,
        "about 2,400 events were journaled but {entries} remain"
    );
    let kept = segments(&data).len();
    assert!(
        kept <= 3,
        "about 2,400 events fill dozens of 16 KiB segments, but {kept} are kept"
    );
    let mut views = Vec::new();
    for i in 0..5 {
        views.push(server.sku(&format!("SNAP-{i}")).await);
    }
    assert_eq!(process.terminate().code(), Some(0));

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

/// A server that placed `holds` holds and was killed, so they live only in the journal.
async fn killed_after_holds(data: &std::path::Path, holds: usize) -> Vec<Value> {
    let (process, server) = Process::start_server(data, &[]);
    server.put_sku("J", 1_000, 0).await;
    let mut answers = Vec::new();
    for n in 0..holds {
        answers.push(server.hold(&format!("j{n}"), &[("J", 1)]).await.body);
    }
    process.kill9();
    answers
}

fn holdfast_start_fails(data: &std::path::Path) -> String {
    let output = common::binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(!output.status.success(), "started on a corrupt journal");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A bad record with intact records after it cannot come from a crash: the start stops
/// with a message naming the segment and offset, and the journal is left as it was.
#[actix_web::test]
async fn a_corrupt_journal_record_stops_the_start_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    killed_after_holds(&data, 5).await;
    let file = segments(&data).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let offsets: Vec<usize> = segment::records(&bytes).iter().map(|r| r.0).collect();
    assert!(offsets.len() >= 3, "{offsets:?}");
    bytes[offsets[1] + 24] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();

    let stderr = holdfast_start_fails(&data);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(stderr.contains(&name), "{stderr}");
    assert!(
        stderr.contains(&format!("corrupt at offset {}", offsets[1])),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "left as it was");
}

/// The last write torn by a crash (a frame cut short, never acknowledged): cut off at the
/// restart, and every acknowledged hold is there.
#[actix_web::test]
async fn a_torn_last_write_is_cut_off_and_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let answers = killed_after_holds(&data, 5).await;
    let file = segments(&data).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let (last, _, _) = *segment::records(&bytes).last().unwrap();
    let segment::Frame::Record { next: end, .. } = segment::read_frame(&bytes, last) else {
        panic!("the last record reads back");
    };
    // A header claiming 300 bytes of which only a few made it to the disk.
    bytes[end..end + 4].copy_from_slice(&300u32.to_le_bytes());
    bytes[end + 4..end + 28].fill(0xAB);
    std::fs::write(&file, &bytes).unwrap();

    let (_process, server) = Process::start_server(&data, &[]);
    for (n, answer) in answers.iter().enumerate() {
        let retry = server.hold(&format!("j{n}"), &[("J", 1)]).await;
        assert_eq!(&retry.body, answer, "acknowledged hold {n}");
    }
    assert_eq!(server.sku("J").await["held"], 5);
}

/// A server stopped while empty (as after installing it), then run with a short snapshot
/// interval and killed: the snapshots written after the restart load. Earlier builds
/// named an empty generation at the stop and handed its id out again, so the next
/// snapshot's chunks were read as the empty one's and the dir would not start.
#[actix_web::test]
async fn snapshots_after_a_stop_while_empty_load_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(Process::start(&data, &[], &[]).terminate().code(), Some(0));
    let args = ["--snapshot-every-events", "100", "--snapshot-every-s", "1"];
    let (process, server) = Process::start_server(&data, &args);
    server.put_sku("EMPTY-FIRST", 1_000, 0).await;
    let mut answers = Vec::new();
    for n in 0..250 {
        answers.push(
            server
                .hold(&format!("e{n}"), &[("EMPTY-FIRST", 1)])
                .await
                .body,
        );
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    process.kill9();

    let (_process, server) = Process::start_server(&data, &args);
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(
            &server
                .hold(&format!("e{n}"), &[("EMPTY-FIRST", 1)])
                .await
                .body,
            answer
        );
    }
    assert_eq!(server.sku("EMPTY-FIRST").await["held"], 250);
}

/// A crash between a hold's status change and its line changes (journaled one after the
/// other): the start completes the line changes before it says ready.
#[actix_web::test]
async fn a_status_change_cut_off_before_its_line_changes_is_completed_at_start() {
    use holdfast::store::Event;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (process, server) = Process::start_server(&data, &[]);
    server.put_sku("CUT-OFF", 10, 0).await;
    let kept = server.hold("kept", &[("CUT-OFF", 1)]).await;
    let cut = server.hold("cut", &[("CUT-OFF", 2)]).await;
    let cut_id = cut.body["hold_id"].as_str().unwrap().to_owned();
    process.kill9();
    // What the crash left: the release journaled, its line change not.
    let released = Event::HoldStatusChanged {
        hold_id: holdfast::domain::HoldId::parse(&cut_id).unwrap(),
        status: holdfast::domain::HoldStatus::Released,
        at_ms: u64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    };
    common::append_to_journal(&data, vec![released]).await;
    let (_process, server) = Process::start_server(&data, &[]);
    assert_eq!(server.get_hold(&cut_id).await.body["status"], "released");
    let view = server.sku("CUT-OFF").await;
    assert_eq!(view["held"], 1, "only the kept hold's unit: {view}");
    assert_eq!(view["available"], 9);
    let kept_id = kept.body["hold_id"].as_str().unwrap();
    assert_eq!(server.get_hold(kept_id).await.body["status"], "held");
}
