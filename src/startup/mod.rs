//! Building and running the server, in three steps: open storage (`storage`: the data dir,
//! recovery, the journal writer and the compactor), start the core (the SKU actors, the
//! hold book, the checkout, admission and sales) and restore the recovered state into it
//! (`restore`), then serve HTTP until the shutdown future resolves (`signals` has the one
//! `main` passes).

pub mod restore;
pub mod signals;
pub mod storage;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Arbiter;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

use crate::admission::Admission;
use crate::broadcast::Hub;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::SkuId;
use crate::hold::idempotency::IdempotencyStore;
use crate::hold::log::HoldLog;
use crate::hold::{expiry, Checkout, HoldBook, Reservations};
use crate::http::{self, AppState};
use crate::location::Locations;
use crate::sale::SaleBook;
use crate::sku::directory::DirectoryFull;
use crate::sku::log::SkuLog;
use crate::sku::SkuDirectory;
use crate::store::{Journal, JournalError};
use crate::webhook::log::WebhookLog;
use crate::webhook::target::AddressPolicy;
use crate::webhook::{WebhookSettings, Webhooks};

/// Delivery attempts `GET /v1/webhooks/{id}/deliveries` lists per endpoint.
const WEBHOOK_DELIVERIES_KEPT: usize = 100;

pub use crate::store::data_dir::DATA_FORMAT_VERSION;
use storage::Storage;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data dir {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error(transparent)]
    Recovery(#[from] crate::store::recovery::RecoveryError),
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Metrics(String),
    #[error("writing the ready file {path}: {err}")]
    ReadyFile { path: PathBuf, err: std::io::Error },
    #[error("recovering sku {sku}: {full}")]
    SkuCount { sku: SkuId, full: DirectoryFull },
    #[error("settling a line of sku {sku} left open by the crash: {err}")]
    Settle {
        sku: SkuId,
        err: actix::MailboxError,
    },
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
}

impl From<crate::store::data_dir::DataDirError> for StartupError {
    fn from(err: crate::store::data_dir::DataDirError) -> Self {
        StartupError::DataDir {
            path: err.path,
            reason: err.reason,
        }
    }
}

/// Queue tickets are signed with a key made fresh at each start: after a restart old
/// tickets count as new arrivals, which loses a place, never a request.
fn random_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

/// The server's core: what the handlers call and what recovery fills.
struct Core {
    arbiters: Vec<Arbiter>,
    webhooks: Arc<Webhooks>,
    directory: Arc<SkuDirectory>,
    idempotency: Arc<IdempotencyStore>,
    reservations: Arc<Reservations>,
    checkout: Arc<Checkout>,
}

/// Starts the SKU actors' threads, the hold book, admission and the sales the journal
/// named. Their state comes afterwards, from [`restore::restore`].
fn start_core(
    settings: &Settings,
    journal: &Journal,
    hub: &Arc<Hub>,
    clock: &Clock,
    image: &crate::store::image::Image,
) -> Result<Core, StartupError> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let arbiters: Vec<Arbiter> = (0..cores).map(|_| Arbiter::new()).collect();
    // The core writes through the logs it defines; the journal is both.
    let sku_log: Arc<dyn SkuLog> = Arc::new(journal.clone());
    let hold_log: Arc<dyn HoldLog> = Arc::new(journal.clone());
    let directory = Arc::new(SkuDirectory::new(
        arbiters.iter().map(Arbiter::handle).collect(),
        sku_log,
        clock.clone(),
        settings.sku_count_max,
        settings.sku_hold_lines_max,
        settings.sku_mailbox_max,
    ));
    let idempotency = Arc::new(IdempotencyStore::new(
        settings.idempotency_keys_max,
        settings.idempotency_ttl_s.saturating_mul(1_000),
    ));
    let book = Arc::new(HoldBook::new(
        Arc::clone(&hold_log),
        settings.holds_max,
        settings.hold_retention_s.saturating_mul(1_000),
        Arc::clone(&idempotency),
    ));
    let locations = Arc::new(Locations::new(
        settings.locations_max,
        settings.channel_policies_max,
    ));
    for location in image.locations.values() {
        locations.put(location.clone());
    }
    for policy in image.policies.values() {
        locations.put_policy(policy.clone());
    }
    let reservations = Arc::new(Reservations {
        locations,
        directory: Arc::clone(&directory),
        book,
        journal: hold_log,
        actor_send_timeout: Duration::from_millis(settings.actor_send_timeout_ms),
        clock: clock.clone(),
    });
    let secret = random_secret()?;
    let ticket_ttl_ms = settings.admission_ticket_ttl_s.saturating_mul(1_000);
    let admission = Admission::new(
        crate::admission::GLOBAL_QUEUE,
        settings.admission_limits(),
        secret,
        ticket_ttl_ms,
        clock.clone(),
    );
    Arc::clone(&admission).tick_in_background();
    let sale_book = Arc::new(SaleBook::new(
        settings.sales_max,
        secret,
        ticket_ttl_ms,
        clock.clone(),
    ));
    for sale in image.sales.values().cloned() {
        if let Some(queue) = sale_book.put(sale) {
            queue.tick_in_background();
        }
    }
    let checkout = Arc::new(Checkout {
        reservations: Arc::clone(&reservations),
        idempotency: Arc::clone(&idempotency),
        sales: sale_book,
        admission,
        render_refusal: http::holds::render_refusal,
    });
    let webhook_log: Arc<dyn WebhookLog> = Arc::new(journal.clone());
    let webhooks = Arc::new(Webhooks::new(
        crate::webhook::Shared {
            hub: Arc::clone(hub),
            directory: Arc::clone(&directory),
            log: webhook_log,
            clock: clock.clone(),
            settings: WebhookSettings {
                timeout: Duration::from_millis(settings.webhook_timeout_ms),
                in_flight_max: settings.webhook_in_flight_max,
                retry_max: Duration::from_secs(settings.webhook_retry_max_s),
                failures_max: settings.webhook_failures_max,
                coalesce: Duration::from_millis(settings.webhook_coalesce_ms),
                policy: AddressPolicy {
                    allowed: settings.webhook_allow_cidrs.clone(),
                },
                deliveries_kept: WEBHOOK_DELIVERIES_KEPT,
            },
        },
        settings.webhooks_max,
    ));
    Ok(Core {
        arbiters,
        webhooks,
        directory,
        idempotency,
        reservations,
        checkout,
    })
}

/// What every handler can reach.
fn app_state(
    settings: &Settings,
    core: &Core,
    storage: &Storage,
    clock: &Clock,
    ready: &Arc<AtomicBool>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> web::Data<AppState> {
    web::Data::new(AppState {
        auth: http::auth::Auth::new(settings),
        settings: settings.clone(),
        directory: Arc::clone(&core.directory),
        checkout: Arc::clone(&core.checkout),
        admission: Arc::clone(&core.checkout.admission),
        sales: Arc::clone(&core.checkout.sales),
        locations: Arc::clone(&core.reservations.locations),
        journal: storage.journal.clone(),
        clock: clock.clone(),
        ready: Arc::clone(ready),
        hub: Arc::clone(&storage.hub),
        webhooks: Arc::clone(&core.webhooks),
        subscribers: http::stream::Subscribers::default(),
        metrics,
        openapi: serde_json::to_vec(&http::openapi::document(settings))
            .unwrap_or_default()
            .into(),
    })
}

/// The tasks that run for the server's life, once state is restored: the expiry sweep
/// and the metrics sampler.
fn start_background(settings: &Settings, core: &Core, journal: &Journal, ready: &Arc<AtomicBool>) {
    actix_web::rt::spawn(crate::sampler::run(
        Arc::clone(&core.checkout),
        crate::sampler::Readiness {
            ready: Arc::clone(ready),
            journal: journal.clone(),
        },
        crate::sampler::Watch {
            skus: settings.metrics_watch_skus.clone(),
            channels: settings.channel_keys.keys().cloned().collect(),
        },
    ));
    let tick = Duration::from_millis(settings.expiry_tick_ms);
    actix_web::rt::spawn(crate::sale::windows::run(
        Arc::clone(&core.checkout.sales),
        Arc::clone(&core.directory),
        core.reservations.clock.clone(),
        tick,
    ));
    actix_web::rt::spawn(expiry::run(
        Arc::clone(&core.reservations),
        Arc::clone(&core.idempotency),
        tick,
    ));
}

/// Binds the listener and starts the HTTP workers. Until `ready` is set, the API answers
/// 503 while health and metrics answer.
fn serve(
    settings: &Settings,
    state: &web::Data<AppState>,
    ready: &Arc<AtomicBool>,
) -> Result<(Server, u16), StartupError> {
    let listener = TcpListener::bind(settings.listen)?;
    let port = listener.local_addr()?.port();
    let app_state = state.clone();
    let readiness = http::Readiness(Arc::clone(ready));
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
    Ok((server.run(), port))
}

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    arbiters: Vec<Arbiter>,
    storage: Storage,
}

impl Application {
    /// Builds everything and recovers state, reading the system clock; call inside an
    /// actix System.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// As [`Application::build`], reading the time from `clock` (tests pass a manual one).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let metrics = crate::metrics::install().map_err(StartupError::Metrics)?;
        let recovery_started = Instant::now();
        let (storage, image) = storage::open(&settings, &clock)?;
        let opened_ms = recovery_started.elapsed().as_millis();
        let core = start_core(&settings, &storage.journal, &storage.hub, &clock, &image)?;
        let ready = Arc::new(AtomicBool::new(false));
        let state = app_state(&settings, &core, &storage, &clock, &ready, metrics);
        let (server, port) = serve(&settings, &state, &ready)?;
        tracing::info!(listen = %settings.listen, port, "Listening; recovering before serving the API.");
        let seq = image.seq;
        let restore_started = Instant::now();
        let mut image = image;
        let webhooks = std::mem::take(&mut image.webhooks);
        restore::restore(image, &core.reservations, &core.idempotency).await?;
        core.webhooks.restore(webhooks.into_values());
        crate::metrics::recovery(recovery_started.elapsed());
        tracing::info!(
            seq,
            elapsed_ms = recovery_started.elapsed().as_millis(),
            storage_ms = opened_ms,
            restore_ms = restore_started.elapsed().as_millis(),
            "Recovery done."
        );

        start_background(&settings, &core, &storage.journal, &ready);
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
            arbiters: core.arbiters,
            storage,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves (`main` passes SIGTERM/SIGINT): then it says
    /// not-ready at once (load balancers stop sending), stops accepting, lets in-flight
    /// requests finish, makes everything journaled durable and stops the actors.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StartupError> {
        let Self {
            server,
            state,
            arbiters,
            storage,
            ..
        } = self;
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let served = tokio::select! {
            served = &mut server => served,
            () = shutdown => {
                state.ready.store(false, Ordering::Release);
                // The server acts on the stop only while it is polled: both at once.
                let ((), served) = tokio::join!(handle.stop(true), server);
                served
            }
        };
        state.ready.store(false, Ordering::Release);
        let flushed = state.journal.barrier().await;
        for arbiter in &arbiters {
            arbiter.stop();
        }
        storage.compactor.stop();
        // The journal holds everything a snapshot would: a snapshot store that cannot
        // flush (a full disk) costs replay time at the next start, not data.
        if let Err(err) = storage.snapshot_db.flush() {
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
        let _detached = storage.journal_thread;
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
        .map_err(|err| StartupError::ReadyFile {
            path: path.to_path_buf(),
            err,
        })
}
