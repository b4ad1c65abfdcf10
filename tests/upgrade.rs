//! Data dirs written by earlier releases start under this build with everything in them:
//! SKUs, quotas, a sale, holds in every status, changes that lived only in the journal, and
//! every idempotent answer byte for byte. `fixtures/format5.tar.gz` was written by the last
//! release with the journal in sled, `fixtures/format6.tar.gz` by the last one without
//! availability marks, `fixtures/format7.tar.gz` by the last one whose sales had no
//! `after_end` (`fixtures/make-fixture.sh` says how).

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::path::{Path, PathBuf};

use common::{assert_conserved, Process, TestServer};
use serde_json::Value;

/// Keys and bodies exactly as `make-fixture.sh` sent them.
const REQUESTS: [(&str, &str); 6] = [
    (
        "k-held",
        r#"{"lines": [{"sku": "ALPHA", "quantity": 2}], "customer_id": "c-1", "ttl_seconds": 3600}"#,
    ),
    (
        "k-confirmed",
        r#"{"lines": [{"sku": "ALPHA", "quantity": 1}, {"sku": "BETA", "quantity": 1}], "customer_id": "c-2"}"#,
    ),
    (
        "k-released",
        r#"{"lines": [{"sku": "BETA", "quantity": 3}], "customer_id": "c-3"}"#,
    ),
    (
        "k-fulfilled",
        r#"{"lines": [{"sku": "ALPHA", "quantity": 4}], "customer_id": "c-4"}"#,
    ),
    (
        "k-soldout",
        r#"{"lines": [{"sku": "BETA", "quantity": 400}], "customer_id": "c-5"}"#,
    ),
    (
        "k-journal",
        r#"{"lines": [{"sku": "BETA", "quantity": 2}], "customer_id": "c-7"}"#,
    ),
];

/// Long enough that the fixture's holds and answers are still remembered years on.
const REMEMBER: [&str; 4] = [
    "--hold-retention-s",
    "3153600000",
    "--idempotency-ttl-s",
    "3153600000",
];

fn fixture_dir(dir: &Path, format: u8) -> PathBuf {
    let archive =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format{format}.tar.gz"));
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar runs");
    assert!(status.success());
    dir.join("data")
}

fn expected(format: u8) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/format{format}.expected.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Everything the earlier release answered, answered the same way.
async fn everything_is_there(server: &TestServer, format: u8) {
    let expected = expected(format);
    for (key, body) in REQUESTS {
        let retry = server.hold_raw(key, body).await;
        assert_eq!(
            retry.body, expected["answers"][key],
            "the retry of {key} answers as the first time"
        );
    }
    let recorded = expected["holds"].as_object().unwrap();
    for (key, hold) in recorded {
        let id = hold["hold_id"].as_str().unwrap();
        let now = server.get_hold(id).await.body;
        let status = now["status"].as_str().unwrap();
        // A hold that was held has expired by now unless its TTL is still running.
        let allowed = match hold["status"].as_str().unwrap() {
            "held" => vec!["held", "expired"],
            other => vec![other],
        };
        assert!(allowed.contains(&status), "{key}: {now}");
        assert_eq!(now["lines"], hold["lines"], "{key}");
        assert_eq!(now["created_at"], hold["created_at"], "{key}");
    }
    for sku in ["ALPHA", "BETA"] {
        let before = &expected["skus"][sku];
        let view = server.sku(sku).await;
        assert_conserved(&view);
        for field in ["on_hand", "safety_stock", "committed"] {
            assert_eq!(view[field], before[field], "{sku} {field}: {view}");
        }
        assert_eq!(
            view["channels"]["web"]["allocated"], before["channels"]["web"]["allocated"],
            "{sku}"
        );
    }
    let sale = server
        .send(reqwest::Method::GET, "/v1/sales/spring", None, &[])
        .await
        .body;
    for field in [
        "name",
        "starts_at",
        "ends_at",
        "per_customer_limit",
        "hold_ttl_s",
    ] {
        assert_eq!(sale[field], expected["sale"][field], "sale {field}");
    }
}

async fn upgrades_and_keeps_everything(data: &Path, format: u8) {
    let (process, server) = Process::start_server(data, &REMEMBER);
    assert_eq!(
        std::fs::read(data.join("holdfast.format")).unwrap(),
        [holdfast::startup::DATA_FORMAT_VERSION]
    );
    assert!(!data.join("sled").exists(), "the sled journal is gone");
    assert!(data.join("journal").is_dir());
    everything_is_there(&server, format).await;
    assert_eq!(process.terminate().code(), Some(0));

    // And again, now from the new format alone.
    let (_process, server) = Process::start_server(data, &REMEMBER);
    everything_is_there(&server, format).await;
}

#[actix_web::test]
async fn a_format_5_data_dir_upgrades_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir(dir.path(), 5);
    assert_eq!(std::fs::read(data.join("holdfast.format")).unwrap(), [5u8]);
    upgrades_and_keeps_everything(&data, 5).await;
}

/// Format 6 had no availability marks: it is read as it is, restamped, and its SKUs'
/// versions start from the first change under this build and go on across restarts.
#[actix_web::test]
async fn a_format_6_data_dir_is_restamped_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir(dir.path(), 6);
    assert_eq!(std::fs::read(data.join("holdfast.format")).unwrap(), [6u8]);
    upgrades_and_keeps_everything(&data, 6).await;
    let (_process, server) = Process::start_server(&data, &REMEMBER);
    // Whatever the journal held before is older than this build's first mark.
    let head = server
        .send(reqwest::Method::GET, "/v1/changes", None, &[])
        .await
        .body["next"]
        .as_u64()
        .unwrap();
    let adjusted = server
        .send(
            reqwest::Method::POST,
            "/v1/skus/ALPHA/adjustments",
            Some(r#"{"delta": 1, "reason": "found"}"#),
            &[],
        )
        .await;
    assert_eq!(adjusted.status, reqwest::StatusCode::OK);
    let changes = server
        .send(
            reqwest::Method::GET,
            &format!("/v1/changes?since={head}"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        changes.body["events"].as_array().unwrap().len(),
        1,
        "{}",
        changes.body
    );
    let event = &changes.body["events"][0];
    // Version 1 unless the fixture's holds expired at the first start (their TTL runs
    // from when the fixture was made), each expiry a change of its own.
    assert!(event["version"].as_u64().unwrap() >= 1, "{event}");
    assert_eq!(event["available"], adjusted.body["available"]);
}

/// Format 7 is read as it is and restamped. Its ended sale (no `after_end` then) now lets
/// its SKU sell normally: that build refused GAMMA for good once `winter` was over.
#[actix_web::test]
async fn a_format_7_data_dir_is_restamped_and_its_ended_sale_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir(dir.path(), 7);
    assert_eq!(std::fs::read(data.join("holdfast.format")).unwrap(), [7u8]);
    upgrades_and_keeps_everything(&data, 7).await;
    let (_process, server) = Process::start_server(&data, &REMEMBER);
    let winter = server
        .send(reqwest::Method::GET, "/v1/sales/winter", None, &[])
        .await;
    assert_eq!(winter.body["after_end"], "open", "{}", winter.body);
    let held = server
        .hold_raw(
            "k-gamma",
            r#"{"lines": [{"sku": "GAMMA", "quantity": 1}], "customer_id": "c-8"}"#,
        )
        .await;
    assert_eq!(held.status, reqwest::StatusCode::CREATED, "{}", held.body);
}

/// Format 4 kept the snapshots inside the journal's sled Db.
#[actix_web::test]
async fn a_format_4_data_dir_upgrades_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture_dir(dir.path(), 5);
    {
        let own = sled::open(data.join("snapshots")).unwrap();
        let shared = sled::open(data.join("sled")).unwrap();
        let from = own.open_tree("snapshots").unwrap();
        let to = shared.open_tree("snapshots").unwrap();
        for entry in from.iter() {
            let (key, value) = entry.unwrap();
            to.insert(key, value).unwrap();
        }
        assert!(!to.is_empty(), "the fixture has a snapshot");
        shared.flush().unwrap();
    }
    std::fs::remove_dir_all(data.join("snapshots")).unwrap();
    std::fs::write(data.join("holdfast.format"), [4u8]).unwrap();
    upgrades_and_keeps_everything(&data, 5).await;
}
