//! A full disk is survived, not just logged: on a real small file system (a tmpfs mounted
//! for the test, so it needs root, as CI has), holds get 503 and readiness says why while
//! nothing acknowledged is lost and reads keep working; once space is freed the server is
//! ready again on its own; a graceful stop in the failing state exits 0.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Process, TestServer};
use reqwest::StatusCode;

/// A tmpfs of `size_mb` MiB, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size_mb: u64) -> Self {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (CI runs as root)"
        );
        Self {
            dir,
            _parent: parent,
        }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

const ARGS: [&str; 4] = [
    "--journal-segment-bytes",
    "131072",
    "--snapshot-every-events",
    "1000000",
];

/// Places holds until one is refused with 503; returns the ids acknowledged on the way.
async fn hold_until_refused(server: &TestServer, prefix: &str) -> Vec<String> {
    let mut acked = Vec::new();
    for n in 0..20_000 {
        let answer = server.hold(&format!("{prefix}{n}"), &[("DISK", 1)]).await;
        match answer.status {
            StatusCode::CREATED => acked.push(answer.body["hold_id"].as_str().unwrap().to_owned()),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(
                    answer.problem_type(),
                    "/problems/unavailable",
                    "{}",
                    answer.body
                );
                return acked;
            }
            other => panic!("hold answered {other}: {}", answer.body),
        }
    }
    panic!("the disk never filled up");
}

async fn ready(server: &TestServer) -> (StatusCode, String) {
    let answer = server
        .send(reqwest::Method::GET, "/health/ready", None, &[])
        .await;
    (answer.status, answer.body.to_string())
}

async fn all_there(server: &TestServer, acked: &[String]) {
    for id in acked {
        let hold = server.get_hold(id).await;
        assert_eq!(hold.status, StatusCode::OK, "acknowledged hold {id} lost");
        assert_eq!(hold.body["status"], "held");
    }
}

#[actix_web::test]
async fn a_full_disk_refuses_changes_heals_on_its_own_and_loses_nothing() {
    let disk = SmallDisk::mount(8);
    let data = disk.dir.join("data");
    let (process, server) = Process::start_server(&data, &ARGS);
    server.put_sku("DISK", 1_000_000, 0).await;
    let filler = disk.fill();

    let mut acked = hold_until_refused(&server, "a").await;
    let (status, reason) = ready(&server).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
    assert!(reason.contains("journal"), "{reason}");
    let metrics = server.metrics().await;
    assert_eq!(
        common::metric(&metrics, "holdfast_journal_failing"),
        Some(1.0)
    );
    // Reads keep working, and show every acknowledged hold.
    let held = server.sku("DISK").await["held"].as_u64().unwrap();
    assert!(held >= acked.len() as u64, "{held} held");
    all_there(&server, &acked).await;

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(&server).await.0 != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "never ready again after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = server.hold("after", &[("DISK", 1)]).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    acked.push(again.body["hold_id"].as_str().unwrap().to_owned());

    // Full again, and stopped while failing: a clean exit, and everything acknowledged
    // is there at the next start.
    let filler = disk.fill();
    acked.extend(hold_until_refused(&server, "b").await);
    assert_eq!(
        process.terminate().code(),
        Some(0),
        "a graceful stop while failing"
    );
    std::fs::remove_file(&filler).unwrap();
    let (_process, server) = Process::start_server(&data, &ARGS);
    all_there(&server, &acked).await;
}
