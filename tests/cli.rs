//! The real binary: configuration errors name the setting, precedence is flag > env >
//! file > default, bad data dirs are refused untouched, and a graceful stop keeps state.

#![allow(clippy::unwrap_used)] // test code: a panic is how a test reports

mod common;

use common::{binary, Process};
use reqwest::StatusCode;

fn refused(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = binary();
    command
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(args);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().expect("binary runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Bad configuration stops the server at start with a message naming the setting.
#[test]
fn bad_configuration_fails_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("holdfast.toml");
    std::fs::write(&file, "hold_ttl = 5\n").unwrap();
    let file = file.to_str().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 6] = [
        (&["--hold-ttl-s", "0"], &[], "`hold_ttl_s`"),
        (&["--hold-ttl-s", "7200"], &[], "`hold_ttl_s`"),
        (&["--listen", "0.0.0.0:0"], &[], "`listen`"),
        (&[], &[("HOLDFAST_HOLDS_MAX", "0")], "`holds_max`"),
        (&["--config", file], &[], "`config`"),
        (&["--channel-key", "web"], &[], "`channel_keys`"),
    ];
    for (args, env, setting) in cases {
        let (code, stderr) = refused(args, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(setting),
            "{args:?} {env:?} should name {setting}: {stderr}"
        );
    }
    let (code, stderr) = refused(&["--hold-ttl-s", "ten"], &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--hold-ttl-s"), "{stderr}");
}

async fn ttl_of_a_default_hold(args: &[&str], env: &[(&str, &str)], file: &str) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("holdfast.toml");
    std::fs::write(&config, file).unwrap();
    let mut extra = vec!["--config", config.to_str().unwrap()];
    extra.extend_from_slice(args);
    let process = Process::start(&dir.path().join("data"), &extra, env);
    let server = process.server(None).as_test_server(dir);
    server.put_sku("T", 1, 0).await;
    let hold = server.hold("t", &[("T", 1)]).await;
    let parse = |field: &str| {
        let text = hold.body[field].as_str().unwrap().to_owned();
        time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    u64::try_from((parse("expires_at") - parse("created_at")).whole_seconds()).unwrap()
}

/// A flag beats its environment variable, which beats the TOML file, which beats the default.
#[actix_web::test]
async fn flags_beat_env_which_beats_the_file() {
    let file = "hold_ttl_s = 50\nhold_ttl_s_max = 100\n";
    let env = [("HOLDFAST_HOLD_TTL_S", "60")];
    assert_eq!(
        ttl_of_a_default_hold(&["--hold-ttl-s", "70"], &env, file).await,
        70
    );
    assert_eq!(ttl_of_a_default_hold(&[], &env, file).await, 60);
    assert_eq!(ttl_of_a_default_hold(&[], &[], file).await, 50);
    assert_eq!(ttl_of_a_default_hold(&[], &[], "").await, 900);
}

/// A directory that is not a holdfast data dir, or is from another format version, is
/// refused with a clear error and left as it was.
#[test]
fn foreign_or_future_data_dirs_are_refused_untouched() {
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("notes.txt"), "mine").unwrap();
    let output = binary()
        .args(["serve", "--data-dir"])
        .arg(foreign.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a holdfast data dir"));
    let names: Vec<_> = std::fs::read_dir(foreign.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("notes.txt")]);

    let future = tempfile::tempdir().unwrap();
    std::fs::write(future.path().join("holdfast.format"), [99u8]).unwrap();
    let output = binary()
        .args(["serve", "--data-dir"])
        .arg(future.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("format version"));
    assert_eq!(
        std::fs::read(future.path().join("holdfast.format")).unwrap(),
        [99u8]
    );
}

/// A second process on a data dir in use is refused; the first keeps serving.
#[actix_web::test]
async fn a_data_dir_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Process::start(dir.path(), &[], &[]);
    let output = binary()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("in use by another holdfast process"));
    let live = reqwest::get(format!("{}/health/live", first.base))
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
}

/// SIGTERM drains, flushes and exits 0; the restarted server shows identical SKU views,
/// the same holds, and replays idempotent answers.
#[actix_web::test]
async fn graceful_stop_keeps_everything_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (process, server) = Process::start_server(&data, &[]);
    server.put_sku("G", 20, 2).await;
    server.put_sku("H", 5, 0).await;
    let kept = server.hold("kept", &[("G", 3), ("H", 1)]).await;
    let paid = server.hold("paid", &[("G", 2)]).await;
    let paid_id = paid.body["hold_id"].as_str().unwrap().to_owned();
    server.act(&paid_id, "confirm").await;
    let before = (server.sku("G").await, server.sku("H").await);
    assert_eq!(process.terminate().code(), Some(0));

    let (_process, server) = Process::start_server(&data, &[]);
    assert_eq!((server.sku("G").await, server.sku("H").await), before);
    let retry = server.hold("kept", &[("G", 3), ("H", 1)]).await;
    assert_eq!(
        (retry.status, &retry.body),
        (StatusCode::CREATED, &kept.body)
    );
    assert_eq!(server.get_hold(&paid_id).await.body["status"], "confirmed");
}

/// Field `field` (1-based, as in proc(5)) of `/proc/.../stat` for each of the server's
/// threads whose name (as `/proc` shows it, 15 bytes) starts with `prefix`.
fn stat_of_threads(pid: u32, prefix: &str, field: usize) -> Vec<i64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("task list");
    let mut values = Vec::new();
    for task in tasks {
        let path = task.expect("task entry").path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).expect("task stat");
        // Fields after the `(comm)` start at field 3.
        let after_comm = &stat[stat.rfind(')').expect("comm ends") + 1..];
        let value = after_comm.split_whitespace().nth(field - 3).expect("field");
        values.push(value.parse().expect("a number"));
    }
    values
}

/// As [`stat_of_threads`] for the one thread named `name`.
fn stat_of_thread(pid: u32, name: &str, field: usize) -> i64 {
    match stat_of_threads(pid, name, field)[..] {
        [value] => value,
        ref values => panic!("{} threads named {name}", values.len()),
    }
}

const STAT_NICE: usize = 19;
const STAT_POLICY: usize = 41;

/// Whether this process may raise a thread's priority (CAP_SYS_NICE or RLIMIT_NICE).
fn may_raise_priority() -> bool {
    // Tried on a short-lived thread, with the server's own call.
    std::thread::spawn(|| holdfast::priority::set_current_thread_nice(-10).is_ok())
        .join()
        .unwrap()
}

/// Transparent huge pages are off (a 2 MiB page zeroed inside a request was the hold p99);
/// the journal writer, on every acknowledgement's path, runs above normal priority where
/// the OS allows it, and the compactor under SCHED_IDLE (only in time the others leave).
#[test]
fn threads_run_at_their_priorities_without_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let process = Process::start(&dir.path().join("data"), &[], &[]);
    let pid = process.child.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
    let compactor_policy = stat_of_thread(pid, "snapshot-compac", STAT_POLICY);
    assert_eq!(compactor_policy, i64::from(libc::SCHED_IDLE));
    let writer = if may_raise_priority() { -10 } else { 0 };
    assert_eq!(stat_of_thread(pid, "journal-writer", STAT_NICE), writer);
    assert_eq!(
        stat_of_thread(pid, "journal-writer", STAT_POLICY),
        i64::from(libc::SCHED_OTHER)
    );
    // sled's IO threads no longer matter here: sled keeps only snapshots, written by the
    // compactor in idle time; the journal writer does its own I/O.
}

/// `--ready-file` says where the server listens once it is ready, so nothing has to read
/// the log to find the port.
#[actix_web::test]
async fn the_ready_file_names_the_bound_port_once_ready() {
    let data = tempfile::tempdir().expect("temp dir");
    let process = common::Process::start(data.path(), &[], &[]);
    let ready_file = data.path().with_extension("ready.json");
    let ready: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&ready_file).expect("written"))
            .expect("JSON");
    assert_eq!(ready["port"], process.port);
    assert_eq!(ready["listen"], format!("127.0.0.1:{}", process.port));
    assert_eq!(ready["pid"], process.child.id());
    let health = reqwest::get(format!("{}/health/ready", process.base))
        .await
        .expect("answer");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
}
