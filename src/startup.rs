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
use crate::domain::{HoldId, IdMap};
use crate::hold::idempotency::{Answer, IdempotencyStore};
use crate::hold::record::PlacedBy;
use crate::hold::{expiry, HoldBook, Reservations};
use crate::http::{self, AppState};
use crate::sku::messages::SettleLine;
use crate::sku::SkuDirectory;
use crate::store::data_dir::{self, Found, JOURNAL_DIR, SNAPSHOT_DB_DIR, SNAPSHOT_TREE};
use crate::store::image::Image;
use crate::store::recovery;
use crate::store::snapshot::{Compactor, SnapshotSettings};
use crate::store::{Journal, JournalSettings};

pub use crate::store::data_dir::DATA_FORMAT_VERSION;

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
    snapshot_db: sled::Db,
}

fn data_dir_error(path: &Path, reason: impl Into<String>) -> StartupError {
    StartupError::DataDir {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl From<data_dir::DataDirError> for StartupError {
    fn from(err: data_dir::DataDirError) -> Self {
        StartupError::DataDir {
            path: err.path,
            reason: err.reason,
        }
    }
}

fn open_db(data_dir: &Path, name: &str, cache_mb: u64) -> Result<sled::Db, StartupError> {
    sled::Config::new()
        .path(data_dir.join(name))
        .cache_capacity(cache_mb * 1024 * 1024)
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
        let found = data_dir::check(&settings.data_dir)?;
        let snapshot_db = open_db(
            &settings.data_dir,
            SNAPSHOT_DB_DIR,
            settings.snapshot_cache_mb,
        )?;
        let snapshot_tree = snapshot_db.open_tree(SNAPSHOT_TREE)?;
        if let Found::SledJournal(from) = found {
            data_dir::upgrade(&settings.data_dir, from, &snapshot_db, &snapshot_tree)?;
        }
        let journal_dir = settings.data_dir.join(JOURNAL_DIR);
        let image = recovery::recover(&journal_dir, &snapshot_tree)?;
        let journal_settings = JournalSettings {
            durability: settings.durability,
            batch_events_max: settings.journal_batch_events_max,
            batch_bytes_max: settings.journal_batch_bytes_max,
            batch_events_min: settings.journal_batch_events_min,
            linger: Duration::from_micros(settings.journal_linger_us),
            backlog_max: settings.journal_backlog_max,
            dir: journal_dir,
            segment_bytes: settings.journal_segment_bytes,
        };
        let (journal, journal_thread) = Journal::start(journal_settings, image.seq + 1)?;
        let snapshot_settings = SnapshotSettings {
            // Synced in every durability mode: the journal under a snapshot is deleted
            // once it is written, and a snapshot lost to a power cut would then leave a
            // gap no start gets past. The sync is off the acknowledgement path.
            dir: settings.data_dir.join(SNAPSHOT_DB_DIR),
            every_events: settings.snapshot_every_events,
            every_s: settings.snapshot_every_s,
            hold_retention_ms: settings.hold_retention_s.saturating_mul(1_000),
            answer_ttl_ms: settings.idempotency_ttl_s.saturating_mul(1_000),
        };
        let compactor = Compactor::start(
            snapshot_db.clone(),
            journal.clone(),
            snapshot_tree,
            image.clone(),
            snapshot_settings,
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
        let idempotency = Arc::new(IdempotencyStore::new(
            settings.idempotency_keys_max,
            settings.idempotency_ttl_s.saturating_mul(1_000),
        ));
        let book = Arc::new(HoldBook::new(
            journal.clone(),
            settings.holds_max,
            settings.hold_retention_s.saturating_mul(1_000),
            Arc::clone(&idempotency),
        ));
        let reservations = Arc::new(Reservations {
            directory: Arc::clone(&directory),
            book,
            journal: journal.clone(),
            actor_send_timeout: Duration::from_millis(settings.actor_send_timeout_ms),
        });
        let secret = random_secret()?;
        let ticket_ttl_ms = settings.admission_ticket_ttl_s.saturating_mul(1_000);
        let admission = Admission::new(settings.admission_limits(), secret, ticket_ttl_ms);
        Arc::clone(&admission).tick_in_background();
        let sales = Arc::new(crate::sale::SaleBook::new(
            settings.sales_max,
            secret,
            ticket_ttl_ms,
        ));
        for sale in image.sales.values() {
            if let Some(queue) = sales.put(sale.clone()) {
                queue.tick_in_background();
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
            openapi: serde_json::to_vec(&http::openapi::document(&settings))
                .unwrap_or_default()
                .into(),
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
        if let Some(path) = &settings.ready_file {
            write_ready_file(path, &settings.listen, port)?;
        }
        tracing::info!(listen = %settings.listen, port, "Serving.");
        Ok(Self {
            port,
            server,
            state,
            arbiters,
            journal_thread,
            compactor,
            snapshot_db,
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
            snapshot_db,
            ..
        } = self;
        let served = server.await;
        state.ready.store(false, Ordering::Release);
        let flushed = state.journal.barrier().await;
        for arbiter in &arbiters {
            arbiter.stop();
        }
        compactor.stop();
        // The journal holds everything a snapshot would: a snapshot store that cannot
        // flush (a full disk) costs replay time at the next start, not data.
        if let Err(err) = snapshot_db.flush() {
            tracing::warn!(%err, "The snapshot store could not flush; the next start replays more of the journal.");
        }
        served?;
        // Every acknowledged change is durable by now: it was acknowledged only once
        // written. What the journal could not write (a full disk) was never acknowledged.
        if let Err(err) = flushed {
            tracing::warn!(%err, "Stopped with changes the journal could not write; none of them was acknowledged.");
        }
        // Not joined: the writer ends when the last `Journal` handle is dropped, and the
        // barrier above already waited for everything it will ever write.
        let _detached = journal_thread;
        Ok(())
    }
}

/// `--ready-file`: the bound address as JSON, whole or not at all (temp file, rename).
fn write_ready_file(
    path: &Path,
    listen: &std::net::SocketAddr,
    port: u16,
) -> Result<(), StartupError> {
    let bound = std::net::SocketAddr::new(listen.ip(), port);
    let ready = serde_json::json!({
        "listen": bound.to_string(),
        "port": port,
        "pid": std::process::id(),
    });
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, ready.to_string())
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|err| {
            StartupError::Other(format!("writing the ready file {}: {err}", path.display()))
        })
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
    // Which key placed each kept hold, so the book can hand a key its answer should it
    // forget the hold first.
    let mut placed_by: IdMap<HoldId, Arc<str>> = IdMap::default();
    for (record, answer) in replayed.answers() {
        let placed = match &answer {
            Answer::Placed(id) => Some(*id),
            Answer::Stored(_) => None,
        };
        let scope_key = idempotency.restore(record, answer);
        if let Some(id) = placed {
            placed_by.insert(id, scope_key);
        }
    }
    // The lines a crash left behind their hold's status, found in the image (the same
    // rule the SKU actor applies): asking every actor about every ended hold instead
    // cost one round trip per line of every hold kept, seconds at a hundred thousand.
    let mut unsettled = Vec::new();
    for hold in replayed.holds.values() {
        let Some(target) = crate::hold::book::line_target(hold.status) else {
            continue;
        };
        for line in &hold.lines {
            let behind = replayed
                .skus
                .get(&line.sku)
                .is_some_and(|state| !state.line_changes_for(hold.id, target).is_empty());
            if behind {
                unsettled.push((line.sku.clone(), hold.id, target));
            }
        }
    }
    for (sku, state) in replayed.skus {
        reservations
            .directory
            .install(&sku, state)
            .map_err(|err| StartupError::Other(format!("recovering sku {sku}: {err}")))?;
    }
    for mut hold in replayed.holds.into_values() {
        hold.placed_by = PlacedBy(placed_by.remove(&hold.id));
        reservations.book.restore(hold);
    }
    for (sku, hold_id, target) in unsettled {
        if let Some(entry) = reservations.directory.get(&sku) {
            entry
                .ask(SettleLine { hold_id, target }, None)
                .await
                .map_err(|e| StartupError::Other(e.to_string()))?;
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
