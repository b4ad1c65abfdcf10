//! Building and running the server: open the data dir, replay the journal, start the SKU
//! actors and the journal writer, settle what a crash left open, then serve.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix::Arbiter;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::admission::Admission;
use crate::config::Settings;
use crate::hold::idempotency::IdempotencyStore;
use crate::hold::{expiry, HoldBook, Reservations};
use crate::http::{self, AppState};
use crate::sku::messages::SettleLine;
use crate::sku::SkuDirectory;
use crate::store::image::Image;
use crate::store::recovery;
use crate::store::snapshot::{Compactor, RetireLegacy, SnapshotSettings};
use crate::store::{Journal, JournalSettings};

/// The on-disk format this build reads and writes. Bump it when `Event` or the snapshot
/// layout changes shape (4: snapshots as generations of packed chunks; 5: in their own
/// store).
pub const DATA_FORMAT_VERSION: u8 = 5;
/// A format this build upgrades in place: 4 differs only in where snapshots live, and
/// recovery reads them from the old place.
const UPGRADED_FORMAT_VERSION: u8 = 4;
const FORMAT_FILE: &str = "holdfast.format";
/// sled's directory for the journal, and for snapshots their own: a snapshot writes tens of
/// megabytes, and in the journal's Db they rode its next flush, so every acknowledgement
/// waiting on that `fdatasync` waited for the snapshot too.
const JOURNAL_DB_DIR: &str = "sled";
const SNAPSHOT_DB_DIR: &str = "snapshots";
const JOURNAL_TREE: &str = "journal";
const SNAPSHOT_TREE: &str = "snapshots";
/// How often the admission queue refills rate tokens and answers sold-out waiters.
pub const ADMISSION_TICK: Duration = Duration::from_millis(5);

/// Queue tickets are signed with a key made fresh at each start: after a restart old
/// tickets count as new arrivals, which loses a place, never a request.
fn random_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data dir {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error(transparent)]
    Recovery(#[from] recovery::RecoveryError),
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    arbiters: Vec<Arbiter>,
    journal_thread: JoinHandle<()>,
    compactor: Compactor,
    db: sled::Db,
}

fn data_dir_error(path: &Path, reason: impl Into<String>) -> StartupError {
    StartupError::DataDir {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Refuses a data dir this build does not understand; stamps a fresh one.
fn check_format(data_dir: &Path) -> Result<(), StartupError> {
    std::fs::create_dir_all(data_dir).map_err(|e| data_dir_error(data_dir, e.to_string()))?;
    let format_file = data_dir.join(FORMAT_FILE);
    match std::fs::read(&format_file) {
        Ok(bytes) if bytes == [DATA_FORMAT_VERSION] => Ok(()),
        // Marked 5 before anything is written the new way: a build that reads only 4 would
        // miss snapshots in the new place and start from a trimmed journal, so it must
        // refuse the dir (a rollback after an upgrade), not open it.
        Ok(bytes) if bytes == [UPGRADED_FORMAT_VERSION] => {
            let staged = data_dir.join(format!("{FORMAT_FILE}.new"));
            std::fs::File::create(&staged)
                .and_then(|mut file| {
                    std::io::Write::write_all(&mut file, &[DATA_FORMAT_VERSION])?;
                    file.sync_all()
                })
                .and_then(|()| std::fs::rename(&staged, &format_file))
                .map_err(|e| data_dir_error(data_dir, format!("upgrading {FORMAT_FILE}: {e}")))?;
            tracing::info!(
                from = UPGRADED_FORMAT_VERSION,
                to = DATA_FORMAT_VERSION,
                "Data dir format upgraded; snapshots move to their own store."
            );
            Ok(())
        }
        Ok(bytes) => Err(data_dir_error(
            data_dir,
            format!("format version {bytes:?} is not {DATA_FORMAT_VERSION}, the version this build reads; nothing was changed"),
        )),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let has_data = std::fs::read_dir(data_dir)?.next().is_some();
            if has_data {
                return Err(data_dir_error(
                    data_dir,
                    format!("has files but no {FORMAT_FILE}; it is not a holdfast data dir, nothing was changed"),
                ));
            }
            std::fs::write(&format_file, [DATA_FORMAT_VERSION])?;
            Ok(())
        }
        Err(err) => Err(data_dir_error(data_dir, err.to_string())),
    }
}

fn open_db(data_dir: &Path, name: &str) -> Result<sled::Db, StartupError> {
    sled::Config::new()
        .path(data_dir.join(name))
        .open()
        .map_err(|err| match err {
            sled::Error::Io(io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("lock") =>
            {
                data_dir_error(
                    data_dir,
                    format!("is in use by another holdfast process ({io})"),
                )
            }
            other => data_dir_error(data_dir, other.to_string()),
        })
}

impl Application {
    /// Builds everything and recovers state; call inside an actix System.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        // Registered before anything else so a SIGTERM during start-up is not fatal.
        let stop_signals = StopSignals::register()?;
        let metrics = crate::metrics::install().map_err(StartupError::Other)?;
        let recovery_started = Instant::now();
        check_format(&settings.data_dir)?;
        let db = open_db(&settings.data_dir, JOURNAL_DB_DIR)?;
        let journal_tree = db.open_tree(JOURNAL_TREE)?;
        let snapshot_db = open_db(&settings.data_dir, SNAPSHOT_DB_DIR)?;
        let snapshot_tree = snapshot_db.open_tree(SNAPSHOT_TREE)?;
        // Data dirs of earlier builds keep their snapshots in the journal's Db: they load
        // from there until the first snapshot in the new place, which then drops the old.
        let has_legacy = db
            .tree_names()
            .iter()
            .any(|name| name == SNAPSHOT_TREE.as_bytes());
        let legacy_snapshots = has_legacy
            .then(|| db.open_tree(SNAPSHOT_TREE))
            .transpose()?;
        let image = recovery::recover(&journal_tree, &snapshot_tree, legacy_snapshots.as_ref())?;
        let journal_settings = JournalSettings {
            durability: settings.durability,
            batch_events_max: settings.journal_batch_events_max,
            batch_bytes_max: settings.journal_batch_bytes_max,
            batch_events_min: settings.journal_batch_events_min,
            linger: Duration::from_micros(settings.journal_linger_us),
            backlog_max: settings.journal_backlog_max,
            data_file: settings.data_dir.join(JOURNAL_DB_DIR).join("db"),
        };
        let (journal, journal_thread) = Journal::start(
            db.clone(),
            journal_tree.clone(),
            journal_settings,
            image.seq,
        )?;
        let snapshot_settings = SnapshotSettings {
            fsync_dir: (settings.durability == crate::store::Durability::Fsync)
                .then(|| settings.data_dir.join(SNAPSHOT_DB_DIR)),
            every_events: settings.snapshot_every_events,
            every_s: settings.snapshot_every_s,
            hold_retention_ms: settings.hold_retention_s.saturating_mul(1_000),
            answer_ttl_ms: settings.idempotency_ttl_s.saturating_mul(1_000),
        };
        let retire_legacy = legacy_snapshots.map(|_| {
            let db = db.clone();
            Box::new(move || db.drop_tree(SNAPSHOT_TREE).map(drop)) as RetireLegacy
        });
        let compactor = Compactor::start(
            snapshot_db,
            journal_tree,
            snapshot_tree,
            image.clone(),
            snapshot_settings,
            retire_legacy,
        )?;

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
        let directory = Arc::new(SkuDirectory::new(
            arbiters.iter().map(Arbiter::handle).collect(),
            journal.clone(),
            settings.sku_count_max,
            settings.sku_hold_lines_max,
            settings.sku_mailbox_max,
        ));
        let book = Arc::new(HoldBook::new(
            journal.clone(),
            settings.holds_max,
            settings.hold_retention_s.saturating_mul(1_000),
        ));
        let reservations = Arc::new(Reservations {
            directory: Arc::clone(&directory),
            book,
            journal: journal.clone(),
            actor_send_timeout: Duration::from_millis(settings.actor_send_timeout_ms),
        });
        let idempotency = Arc::new(IdempotencyStore::new(
            settings.idempotency_keys_max,
            settings.idempotency_ttl_s.saturating_mul(1_000),
        ));
        let secret = random_secret()?;
        let ticket_ttl_ms = settings.admission_ticket_ttl_s.saturating_mul(1_000);
        let admission = Admission::new(settings.admission_limits(), secret, ticket_ttl_ms);
        actix_web::rt::spawn(Arc::clone(&admission).run_ticks(ADMISSION_TICK));
        let sales = Arc::new(crate::sale::SaleBook::new(
            settings.sales_max,
            secret,
            ticket_ttl_ms,
        ));
        for sale in image.sales.values() {
            if let Some(queue) = sales.put(sale.clone()) {
                actix_web::rt::spawn(queue.run_ticks(ADMISSION_TICK));
            }
        }
        let ready = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            auth: http::auth::Auth::new(&settings),
            settings: settings.clone(),
            directory,
            reservations: Arc::clone(&reservations),
            idempotency: Arc::clone(&idempotency),
            admission,
            sales,
            journal,
            ready: Arc::clone(&ready),
            metrics,
        });
        let listener = TcpListener::bind(settings.listen)?;
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let readiness = http::Readiness(Arc::clone(&ready));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(readiness.clone())
                .wrap(from_fn(http::readiness_gate))
                .wrap(from_fn(http::record_request))
                .configure(http::routes)
        })
        .listen(listener)?
        .max_connections(settings.http_connections_max)
        .disable_signals()
        .shutdown_timeout(30);
        if settings.http_workers > 0 {
            server = server.workers(settings.http_workers);
        }
        let server = server.run();
        actix_web::rt::spawn(stop_signals.stop_server(server.handle(), Arc::clone(&ready)));
        tracing::info!(listen = %settings.listen, port, "Listening; recovering before serving the API.");
        let seq = image.seq;
        restore(image, &reservations, &idempotency).await?;
        crate::metrics::recovery(recovery_started.elapsed());
        tracing::info!(
            seq,
            elapsed_ms = recovery_started.elapsed().as_millis(),
            "Recovery done."
        );

        actix_web::rt::spawn(crate::sampler::run(state.clone().into_inner()));
        let tick = Duration::from_millis(settings.expiry_tick_ms);
        actix_web::rt::spawn(expiry::run(reservations, idempotency, tick));
        if settings.is_open() {
            tracing::warn!(listen = %settings.listen, "No keys configured: holdfast runs open, on loopback only.");
        }
        ready.store(true, Ordering::Release);
        tracing::info!(listen = %settings.listen, port, "Serving.");
        Ok(Self {
            port,
            server,
            state,
            arbiters,
            journal_thread,
            compactor,
            db,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server stops (SIGINT/SIGTERM: stop accepting, finish in-flight
    /// requests), then makes everything journaled durable and stops the actors.
    pub async fn run_until_stopped(self) -> Result<(), StartupError> {
        let Self {
            server,
            state,
            arbiters,
            journal_thread,
            compactor,
            db,
            ..
        } = self;
        let served = server.await;
        state.ready.store(false, Ordering::Release);
        let flushed = state.journal.barrier().await;
        for arbiter in &arbiters {
            arbiter.stop();
        }
        compactor.stop();
        db.flush()?;
        served?;
        flushed.map_err(|err| StartupError::Other(err.to_string()))?;
        drop(journal_thread);
        Ok(())
    }
}

/// SIGTERM and SIGINT, listened for from the start of `build`.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// On either signal: say not-ready at once (load balancers stop sending), stop
    /// accepting, and let in-flight requests finish; `run_until_stopped` then flushes.
    async fn stop_server(mut self, server: actix_web::dev::ServerHandle, ready: Arc<AtomicBool>) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "Shutting down: draining in-flight requests.");
        ready.store(false, Ordering::Release);
        server.stop(true).await;
    }
}

/// Installs the replayed state, settles what the crash left open, and expires holds whose
/// deadline passed while the server was down — all before the server says ready.
async fn restore(
    replayed: Image,
    reservations: &Reservations,
    idempotency: &IdempotencyStore,
) -> Result<(), StartupError> {
    for (record, response) in replayed.answers() {
        idempotency.restore(record, response);
    }
    for (sku, state) in replayed.skus {
        reservations
            .directory
            .install(&sku, state)
            .map_err(|err| StartupError::Other(format!("recovering sku {sku}: {err}")))?;
    }
    for hold in replayed.holds.into_values() {
        let target = crate::hold::book::line_target(hold.status);
        reservations.book.restore(hold.clone());
        if let Some(target) = target {
            for line in &hold.lines {
                if let Some(entry) = reservations.directory.get(&line.sku) {
                    let settle = SettleLine {
                        hold_id: hold.id,
                        target,
                    };
                    entry
                        .ask(settle, None)
                        .await
                        .map_err(|e| StartupError::Other(e.to_string()))?;
                }
            }
        }
    }
    while reservations.expire_due(expiry::EXPIRIES_PER_TICK_MAX).await > 0 {}
    reservations
        .journal
        .barrier()
        .await
        .map_err(|err| StartupError::Other(err.to_string()))?;
    Ok(())
}
