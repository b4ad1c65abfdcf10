//! Virtual customers. Closed loop: `concurrency` customers at a time until `customers`
//! have been served or `duration_s` has passed. Open loop: customers arrive at
//! `arrival_rate_per_s` whatever the server does, and latency counts from each intended
//! arrival, so a slow server is not hidden by a client that waits (coordinated omission).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use tokio::sync::Semaphore;

use crate::client::{ActionReply, Client, HoldReply};
use crate::stats::{Latencies, Op, Outcomes};
use crate::Scenario;

/// Units by SKU and shopper channel (None: the single channel of a run without channels).
pub type UnitsBy = HashMap<(String, Option<String>), u64>;

/// A hold the audit reads back: its channel (whose key may read it) and its id.
pub type HoldRef = (Option<String>, String);

/// What the run acknowledged, for the audit.
#[derive(Default)]
pub struct Ledger {
    /// Units in confirms the server acknowledged.
    pub confirmed_units: Mutex<UnitsBy>,
    /// Units in confirms that got no answer (may or may not have happened).
    pub uncertain_units: Mutex<UnitsBy>,
    pub abandoned: Mutex<Vec<HoldRef>>,
    pub released: Mutex<Vec<HoldRef>>,
}

pub struct Outcome {
    pub outcomes: Outcomes,
    /// The same counts per shopper channel, in the scenario's channel order (empty: one
    /// channel, the key's own).
    pub by_channel: Vec<(String, Outcomes)>,
    pub latencies: Latencies,
    pub ledger: Ledger,
    /// Length of the load phase.
    pub elapsed: Duration,
    /// When the load phase ended (abandoned holds expire within a TTL of it).
    pub ended: Instant,
}

struct Shop<'a> {
    client: &'a Client,
    scenario: &'a Scenario,
    skus: &'a [String],
    zipf: Option<Zipf<f64>>,
    /// Sum of the shopper channels' traffic weights.
    channel_weights: u64,
    outcome: Outcome,
    seed: u64,
}

/// Resolution of tokio's timer.
const TIMER_TICK: Duration = Duration::from_millis(1);

/// A hold request's body.
#[derive(Serialize)]
struct HoldBody<'a> {
    lines: Vec<HoldLine<'a>>,
    customer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    ttl_seconds: u64,
}

#[derive(Serialize)]
struct HoldLine<'a> {
    sku: &'a str,
    quantity: u64,
}

pub async fn drive(
    client: &Client,
    scenario: &Scenario,
    skus: &[String],
    progress: bool,
) -> Outcome {
    let zipf = (scenario.zipf_s > 0.0)
        .then(|| Zipf::new(skus.len() as f64, scenario.zipf_s).ok())
        .flatten();
    let shop = Shop {
        client,
        scenario,
        skus,
        zipf,
        channel_weights: scenario.channels.iter().map(|(_, w)| w).sum(),
        outcome: Outcome {
            outcomes: Outcomes::default(),
            by_channel: scenario
                .channels
                .iter()
                .map(|(name, _)| (name.clone(), Outcomes::default()))
                .collect(),
            latencies: Latencies::default(),
            ledger: Ledger::default(),
            elapsed: Duration::ZERO,
            ended: Instant::now(),
        },
        seed: rand::random(),
    };
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let bar = progress.then(|| progress_bar(scenario));
    let load = async {
        if scenario.arrival_rate_per_s == 0 {
            closed_loop(&shop, started).await;
        } else {
            open_loop(&shop, started).await;
        }
        done.store(true, Ordering::Release);
    };
    let ticker = async {
        while !done.load(Ordering::Acquire) {
            if let Some(bar) = &bar {
                let o = &shop.outcome.outcomes;
                bar.set_position(started.elapsed().as_secs().min(scenario.duration_s));
                bar.set_message(format!(
                    "held {} sold out {} 429 {} errors {}",
                    o.held.load(Ordering::Relaxed),
                    o.sold_out.load(Ordering::Relaxed),
                    o.queue_full.load(Ordering::Relaxed),
                    o.errors.load(Ordering::Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::join!(load, ticker);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut outcome = shop.outcome;
    outcome.elapsed = started.elapsed();
    outcome.ended = Instant::now();
    outcome
}

fn progress_bar(scenario: &Scenario) -> ProgressBar {
    let bar = ProgressBar::new(scenario.duration_s);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

async fn closed_loop(shop: &Shop<'_>, started: Instant) {
    let next = AtomicU64::new(0);
    let deadline = started + Duration::from_secs(shop.scenario.duration_s);
    let workers = (0..shop.scenario.concurrency).map(|_| async {
        loop {
            let id = next.fetch_add(1, Ordering::Relaxed);
            if id >= shop.scenario.customers || Instant::now() >= deadline {
                return;
            }
            shop.customer(id, Instant::now()).await;
        }
    });
    futures_util::future::join_all(workers).await;
}

async fn open_loop(shop: &Shop<'_>, started: Instant) {
    let deadline = started + Duration::from_secs(shop.scenario.duration_s);
    let gap = Duration::from_secs_f64(1.0 / shop.scenario.arrival_rate_per_s as f64);
    // Bounds the client's own memory: customers waiting for a lane or answered with 429 and
    // waiting to retry. Arrivals past it count as client errors.
    let waiting = Arc::new(Semaphore::new(
        usize::try_from(shop.scenario.concurrency).unwrap_or(256) * 16,
    ));
    let mut tasks = futures_util::stream::FuturesUnordered::new();
    let mut id = 0u64;
    use futures_util::StreamExt;
    while id < shop.scenario.customers {
        let intended = started + gap.mul_f64(id as f64);
        if intended >= deadline {
            break;
        }
        // tokio's timer fires on whole milliseconds, up to one late: a customer due within the
        // next tick leaves now, and its latency counts from when it left. One the client sends
        // late (busy) still counts from when it was due.
        let wake = intended.checked_sub(TIMER_TICK).unwrap_or(intended);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                let origin = intended.min(Instant::now());
                match Arc::clone(&waiting).try_acquire_owned() {
                    Ok(permit) => tasks.push(async move {
                        shop.customer(id, origin).await;
                        drop(permit);
                    }),
                    Err(_) => Outcomes::add(&shop.outcome.outcomes.errors),
                }
                id += 1;
            }
            Some(()) = tasks.next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.next().await.is_some() {}
}

impl Shop<'_> {
    /// Counts an outcome in the totals and under the shopper's channel.
    fn count(&self, channel: Option<&str>, counter: impl Fn(&Outcomes) -> &AtomicU64) {
        Outcomes::add(counter(&self.outcome.outcomes));
        let tally = self
            .outcome
            .by_channel
            .iter()
            .find(|(name, _)| Some(name.as_str()) == channel);
        if let Some((_, outcomes)) = tally {
            Outcomes::add(counter(outcomes));
        }
    }

    fn pick_sku(&self, rng: &mut StdRng) -> usize {
        let n = self.skus.len();
        match &self.zipf {
            // The Zipf sample is a whole number in 1..=n, drawn as a float.
            #[expect(clippy::cast_possible_truncation, reason = "a whole number in 1..=n")]
            Some(zipf) => (zipf.sample(rng) as usize).clamp(1, n) - 1,
            None => rng.random_range(0..n),
        }
    }

    /// The shopper's channel, by the scenario's traffic weights (None: the single channel).
    fn pick_channel(&self, rng: &mut StdRng) -> Option<&str> {
        if self.channel_weights == 0 {
            return None;
        }
        let mut ticket = rng.random_range(0..self.channel_weights);
        for (channel, weight) in &self.scenario.channels {
            if ticket < *weight {
                return Some(channel);
            }
            ticket -= weight;
        }
        None
    }

    fn cart(&self, rng: &mut StdRng) -> Vec<(usize, u64)> {
        let lines = usize::try_from(rng.random_range(1..=self.scenario.cart_lines_max))
            .unwrap_or(usize::MAX);
        let mut cart: Vec<(usize, u64)> = Vec::with_capacity(lines);
        for _ in 0..lines * 8 {
            if cart.len() == lines {
                break;
            }
            let sku = self.pick_sku(rng);
            if cart.iter().all(|(seen, _)| *seen != sku) {
                cart.push((sku, rng.random_range(1..=2)));
            }
        }
        cart
    }

    /// One shopper's visit; `due` is when it arrived.
    async fn customer(&self, id: u64, due: Instant) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let stats = &self.outcome;
        let cart = self.cart(&mut rng);
        let channel = self.pick_channel(&mut rng);
        let mut sent = due;
        if rng.random::<f64>() < self.scenario.read_ratio {
            let names: Vec<&str> = cart.iter().map(|(i, _)| self.skus[*i].as_str()).collect();
            match self.client.availability(channel, &names).await {
                Ok(()) => stats.latencies.record(Op::Availability, sent.elapsed()),
                Err(_) => self.count(channel, |o| &o.errors),
            }
            sent = Instant::now();
        }
        let body = HoldBody {
            lines: cart
                .iter()
                .map(|(i, q)| HoldLine {
                    sku: &self.skus[*i],
                    quantity: *q,
                })
                .collect(),
            customer_id: format!("{}-c{id}", self.scenario.run_id),
            channel,
            ttl_seconds: self.scenario.hold_ttl_s,
        };
        let body = match serde_json::to_vec(&body) {
            Ok(json) => Bytes::from(json),
            Err(_) => return self.count(channel, |o| &o.errors),
        };
        let key = format!("{}-{id}", self.scenario.run_id);
        let mut ticket: Option<String> = None;
        for attempt in 0..=self.scenario.retries_max {
            let reply = self
                .client
                .hold(channel, &key, &body, ticket.as_deref())
                .await;
            let op = match reply {
                HoldReply::QueueFull { .. } => Op::HoldQueueFull,
                _ => Op::Hold,
            };
            stats.latencies.record(op, sent.elapsed());
            match reply {
                HoldReply::Held(hold_id) => {
                    self.count(channel, |o| &o.held);
                    self.after_hold(&mut rng, channel, hold_id, &cart).await;
                    return;
                }
                HoldReply::SoldOut => return self.count(channel, |o| &o.sold_out),
                HoldReply::Failed(_) => return self.count(channel, |o| &o.errors),
                HoldReply::QueueFull {
                    retry_after,
                    ticket: next,
                } => {
                    if attempt == self.scenario.retries_max {
                        return self.count(channel, |o| &o.queue_full);
                    }
                    ticket = next.or(ticket);
                    tokio::time::sleep(retry_after.min(Duration::from_secs(5))).await;
                    sent = Instant::now();
                }
            }
        }
    }

    async fn after_hold(
        &self,
        rng: &mut StdRng,
        channel: Option<&str>,
        hold_id: String,
        cart: &[(usize, u64)],
    ) {
        let stats = &self.outcome;
        let ledger = &stats.ledger;
        let choice = rng.random::<f64>();
        if choice < self.scenario.pay_ratio {
            let started = Instant::now();
            let reply = self.client.act(channel, &hold_id, "confirm").await;
            stats.latencies.record(Op::Confirm, started.elapsed());
            let book = match reply {
                ActionReply::Done => {
                    self.count(channel, |o| &o.confirmed);
                    &ledger.confirmed_units
                }
                ActionReply::Unknown => {
                    self.count(channel, |o| &o.errors);
                    &ledger.uncertain_units
                }
                ActionReply::Refused(_) => return self.count(channel, |o| &o.errors),
            };
            let mut units = book.lock().unwrap_or_else(|e| e.into_inner());
            for (sku, quantity) in cart {
                let key = (self.skus[*sku].clone(), channel.map(str::to_owned));
                *units.entry(key).or_default() += quantity;
            }
        } else if choice < self.scenario.pay_ratio + self.scenario.cancel_ratio {
            let started = Instant::now();
            let reply = self.client.act(channel, &hold_id, "release").await;
            stats.latencies.record(Op::Release, started.elapsed());
            match reply {
                ActionReply::Done => {
                    self.count(channel, |o| &o.released);
                    ledger
                        .released
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((channel.map(str::to_owned), hold_id));
                }
                _ => self.count(channel, |o| &o.errors),
            }
        } else {
            self.count(channel, |o| &o.abandoned);
            ledger
                .abandoned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((channel.map(str::to_owned), hold_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::ScenarioArgs;
    use crate::test_server;

    /// 60 shoppers a second for a second, against a server that serves 40 a second over the
    /// 2 connections: the queue grows, and an open loop must show it. Counted from when each
    /// request was sent, every hold would take the server's 50 ms.
    #[tokio::test]
    async fn an_open_loop_counts_the_wait_from_each_arrival() {
        let placed = "HTTP/1.1 201 Created\r\nContent-Length: 15\r\n\r\n{\"hold_id\":\"h\"}";
        let (base, _) = test_server::start(placed, Duration::from_millis(50)).await;
        let scenario = ScenarioArgs {
            target: Some(base.clone()),
            arrival_rate_per_s: Some(60),
            duration_s: Some(1),
            concurrency: Some(2),
            skus: Some(1),
            cart_lines_max: Some(1),
            read_ratio: Some(0.0),
            pay_ratio: Some(0.0),
            cancel_ratio: Some(0.0),
            retries_max: Some(0),
            ..ScenarioArgs::default()
        }
        .resolve(None)
        .expect("valid scenario");
        let client = Client::new(&base, &scenario).expect("client");
        let outcome = drive(&client, &scenario, &[scenario.sku_name(0)], false).await;

        assert_eq!(outcome.outcomes.held.load(Ordering::Relaxed), 60);
        assert_eq!(outcome.outcomes.errors.load(Ordering::Relaxed), 0);
        let latency = outcome.latencies.summary(Op::Hold).expect("holds measured");
        // The last arrivals wait for about 20 answers ahead of them: about half a second.
        assert!(
            latency.p50 > 150.0,
            "p50 {} ms hides the queue",
            latency.p50
        );
        assert!(
            latency.p99 > 300.0,
            "p99 {} ms hides the queue",
            latency.p99
        );
    }
}
