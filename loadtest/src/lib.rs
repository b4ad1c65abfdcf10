//! The flash-sale load harness for holdfast.
//!
//! - [`scenario`]: what to run (flags, TOML, defaults).
//! - [`spawn`]: starting a holdfast next to the harness on a temp dir and free port.
//! - [`client`]: the HTTP calls a shopper and the back office make.
//! - [`lanes`]: the shoppers' keep-alive connections, lean enough for tens of thousands a second.
//! - [`driver`]: virtual customers, closed loop or open loop, with Zipf-skewed carts.
//! - [`stats`]: latency histograms and outcome counts.
//! - [`audit`]: the end-of-run checks that nothing was oversold or leaked.
//! - [`report`]: the JSON report, the human table and `--compare`.
//! - [`torture`]: the crash torture suite (kill -9, power cuts through LazyFS, restarts).
//! - [`fill`]: `--fill-holds` / `--fill-skus`: memory per hold or SKU, snapshot cost and
//!   restart time of a big sale.

pub mod audit;
pub mod client;
pub mod driver;
pub mod fill;
pub mod lanes;
pub mod report;
pub mod scenario;
pub mod spawn;
pub mod stats;
#[cfg(test)]
mod test_server;
pub mod torture;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub use report::Report;
pub use scenario::Scenario;

/// Runs a whole scenario: seed, load, audit. The report says whether every check passed.
pub async fn run(scenario: Scenario, progress: bool) -> Result<Report, Error> {
    let spawned = match &scenario.target {
        Some(_) => None,
        None => Some(spawn::Spawned::start(&scenario).await?),
    };
    let base = match (&scenario.target, &spawned) {
        (Some(url), _) => url.trim_end_matches('/').to_owned(),
        (None, Some(server)) => server.base.clone(),
        (None, None) => return Err("no target and nothing spawned".into()),
    };
    let client = client::Client::new(&base, &scenario)?;
    let metrics_before = client.metrics().await.unwrap_or_default();
    let skus = client.seed(&scenario).await?;
    let outcome = driver::drive(&client, &scenario, &skus, progress).await;
    let checks = audit::audit(&client, &scenario, &skus, &outcome).await;
    let metrics_after = client.metrics().await.unwrap_or_default();
    if let Some(server) = spawned {
        server.stop().await;
    }
    Ok(Report::new(
        &scenario,
        &outcome,
        checks,
        &metrics_before,
        &metrics_after,
    ))
}
