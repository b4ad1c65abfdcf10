//! Power cuts, simulated with LazyFS (every byte not synced is dropped), and the crash
//! torture suite run as CI runs it. LazyFS is built into target/lazyfs on first use
//! (`.ci/run` installs what that needs: libfuse3-dev fuse3 cmake g++ make pkg-config), and
//! mounting it needs /dev/fuse and root, as CI has.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use std::path::{Path, PathBuf};

use common::Process;
use loadtest::torture::{self, lazyfs::Mount, Options};

fn lazyfs() -> PathBuf {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lazyfs");
    torture::lazyfs::ensure_built(&out).expect("LazyFS builds")
}

/// A power cut right after the first start, and one after an acknowledged hold: the data
/// dir starts again (its format stamp was synced) and the hold is there.
#[actix_web::test]
async fn a_power_cut_after_the_first_start_leaves_a_dir_that_starts() {
    let work = tempfile::tempdir().unwrap();
    let mount = Mount::start(&lazyfs(), work.path()).await.expect("mounts");
    let data = mount.dir.join("data");
    let process = Process::start(&data, &[], &[]);
    process.kill9();
    mount.power_cut().await.expect("power cut");

    let (process, server) = Process::start_server(&data, &[]);
    server.put_sku("CUT", 10, 0).await;
    let hold = server.hold("cut-1", &[("CUT", 3)]).await;
    assert_eq!(hold.status, reqwest::StatusCode::CREATED);
    process.kill9();
    mount.power_cut().await.expect("power cut");

    let (process, server) = Process::start_server(&data, &[]);
    assert_eq!(server.hold("cut-1", &[("CUT", 3)]).await.body, hold.body);
    assert_eq!(server.sku("CUT").await["held"], 3);
    drop(process);
    mount.stop().await;
}

fn options(seed: u64) -> Options {
    Options {
        holdfast_bin: PathBuf::from(env!("CARGO_BIN_EXE_holdfast")),
        seed,
        lazyfs: Some(lazyfs()),
        shoppers: 8,
        load_ms_max: 1_000,
        ..Options::default()
    }
}

fn seed() -> u64 {
    std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(1))
        })
}

/// One lane of the torture suite: 18 rounds, 10 plain kill -9, 5 kill -9 with a power cut,
/// 3 graceful stops (one empty). CI runs two lanes side by side (36 rounds, each on its
/// own LazyFS mount and seed): the rounds wait on starts and kills more than on the CPU.
async fn torture_lane(lane: u64) {
    let seed = seed().wrapping_add(lane);
    println!("torture lane {lane} seed {seed} (TORTURE_SEED={seed} reruns it as lane 0)");
    let outcome = torture::run(&Options {
        rounds: 18,
        power_cut_every: 3,
        ..options(seed)
    })
    .await
    .expect("the suite runs");
    assert!(outcome.failures.is_empty(), "{:#?}", outcome.failures);
    assert_eq!(outcome.power_cuts, 5);
    assert_eq!(outcome.kills, 15);
    assert_eq!(outcome.graceful, 3);
    assert!(outcome.holds_acknowledged > 500, "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_torture_suite_finds_nothing_lost_lane_0() {
    torture_lane(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_torture_suite_finds_nothing_lost_lane_1() {
    torture_lane(1).await;
}

/// The negative control: with `--durability none` nothing is synced, and the suite must
/// report the acknowledgements a power cut took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fsync_the_suite_reports_lost_acknowledgements() {
    let seed = seed();
    println!("torture seed {seed}");
    let outcome = torture::run(&Options {
        rounds: 6,
        power_cut_every: 2,
        durability: "none".into(),
        ..options(seed)
    })
    .await
    .expect("the suite runs");
    assert!(
        outcome.failures.iter().any(|f| f.contains("lost")),
        "a power cut without fsync lost nothing? {:#?}",
        outcome.failures
    );
}
