//! The admission queue in front of `POST /v1/holds`. At most `in_flight_max` hold requests
//! run at once; behind them a FIFO of at most `queue_max` waits, each for at most
//! `wait_max_ms`; an optional token bucket caps admissions at `rate_per_s`. Anyone who
//! cannot be served in time gets a 429 with a signed ticket that keeps their place: the
//! FIFO is ordered by arrival sequence, and a retry with a ticket re-enters at its old one.
//! A cart with a sold-out line is answered 409 at once, and waiters whose SKU sells out
//! while they wait are answered 409 by the next tick, never left to time out.

pub mod ticket;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::domain::SkuId;
use crate::metrics as m;
use crate::sku::actor::SkuGauge;
use crate::sku::SkuError;
use ticket::{Ticket, TicketSigner};

/// How often a queue admits on fresh rate tokens, answers waiters whose SKU sold out and
/// publishes its gauges.
pub const TICK: Duration = Duration::from_millis(5);

/// The four knobs, changeable at runtime (`PUT /v1/admission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmissionLimits {
    /// Hold requests served at once.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    pub in_flight_max: usize,
    /// Hold requests waiting, in FIFO order, beyond those.
    #[schema(minimum = 0, maximum = 1000000)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    pub queue_max: usize,
    /// Longest wait in the queue before a 429.
    #[schema(minimum = 0, maximum = 60000)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    pub wait_max_ms: u64,
    /// Hold requests admitted per second; 0: no rate limit.
    #[schema(minimum = 0, maximum = 10000000)]
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    pub rate_per_s: u64,
}

impl AdmissionLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.in_flight_max == 0 || self.in_flight_max > 100_000 {
            return Err("in_flight_max must be 1..=100000".into());
        }
        if self.queue_max > 1_000_000 {
            return Err("queue_max must be at most 1000000".into());
        }
        if self.wait_max_ms > 60_000 {
            return Err("wait_max_ms must be at most 60000".into());
        }
        if self.rate_per_s > 10_000_000 {
            return Err("rate_per_s must be at most 10000000".into());
        }
        Ok(())
    }
}

/// One line of a waiting cart, so a sell-out can answer it early.
pub struct CartLine {
    pub sku: SkuId,
    pub quantity: u64,
    pub gauge: Arc<SkuGauge>,
}

fn sold_out_line(cart: &[CartLine]) -> Option<Refusal> {
    cart.iter().find_map(|line| {
        let available = line
            .gauge
            .available
            .load(std::sync::atomic::Ordering::Relaxed);
        (available < line.quantity).then(|| {
            Refusal::SoldOut(SkuError::SoldOut {
                sku: line.sku.clone(),
                available,
                requested: line.quantity,
            })
        })
    })
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    QueueFull {
        ticket: String,
        position: u32,
        retry_after_s: u64,
    },
    /// A line asks for more than is available: the SKU actor's own refusal, made
    /// before the request takes a place in the queue.
    SoldOut(SkuError),
}

struct Waiter {
    answer: oneshot::Sender<Result<(), Refusal>>,
    cart: Vec<CartLine>,
}

/// Token bucket; a burst of a twentieth of a second's rate (at least one).
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn take(&mut self, rate_per_s: u64, now: Instant) -> bool {
        if rate_per_s == 0 {
            return true;
        }
        let rate = rate_per_s as f64;
        let capacity = (rate / 20.0).max(1.0);
        let earned = now.duration_since(self.refilled).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Admissions per second, exponentially decayed over about a second.
struct Outflow {
    per_s: f64,
    updated: Instant,
}

impl Outflow {
    fn decayed(&self, now: Instant) -> f64 {
        self.per_s * (-now.duration_since(self.updated).as_secs_f64()).exp()
    }

    fn record(&mut self, now: Instant) {
        self.per_s = self.decayed(now) + 1.0;
        self.updated = now;
    }
}

struct State {
    limits: AdmissionLimits,
    in_flight: usize,
    /// Waiting requests by arrival sequence.
    waiters: BTreeMap<u64, Waiter>,
    next_seq: u64,
    bucket: Bucket,
    outflow: Outflow,
}

impl State {
    /// Admits waiters from the head while there is room and a token.
    fn dispatch(&mut self, now: Instant) {
        while self.in_flight < self.limits.in_flight_max {
            let Some(entry) = self.waiters.first_entry() else {
                return;
            };
            let rate_per_s = self.limits.rate_per_s;
            if !self.bucket.take(rate_per_s, now) {
                return;
            }
            if entry.remove().answer.send(Ok(())).is_ok() {
                self.in_flight += 1;
                self.outflow.record(now);
            }
        }
    }

    /// Answers 409 to waiters whose cart has a line that has sold out.
    fn refuse_sold_out(&mut self) {
        let sold_out: Vec<(u64, Refusal)> = self
            .waiters
            .iter()
            .filter_map(|(seq, waiter)| sold_out_line(&waiter.cart).map(|refusal| (*seq, refusal)))
            .collect();
        for (seq, refusal) in sold_out {
            if let Some(waiter) = self.waiters.remove(&seq) {
                let _gone = waiter.answer.send(Err(refusal));
                m::admission_decision(m::AdmissionDecision::SoldOut);
            }
        }
    }

    /// Seconds until `position` would be served at the measured outflow.
    fn retry_after_s(&self, position: u32, now: Instant) -> u64 {
        let per_s = self.outflow.decayed(now);
        let wait_s = if per_s >= 1.0 {
            f64::from(position) / per_s
        } else {
            self.limits.wait_max_ms as f64 / 1_000.0
        };
        #[expect(
            clippy::cast_possible_truncation,
            reason = "clamped to 1..=60 s first; a NaN casts to 0 and is then clamped to 1"
        )]
        let retry_after_s = wait_s.ceil().clamp(1.0, 60.0) as u64;
        retry_after_s.max(1)
    }
}

pub struct Admission {
    state: Mutex<State>,
    signer: TicketSigner,
    ticket_ttl_ms: u64,
    /// Tickets carry and are checked against wall-clock time.
    clock: Clock,
    gauges: m::QueueGauges,
    /// Requests answered 429 since start (what a console shows beside the queue).
    refused: std::sync::atomic::AtomicU64,
}

/// The queue in front of every hold not on a sale with its own limits.
pub const GLOBAL_QUEUE: &str = "global";

/// A queue that is gone waits for nobody: its series say so rather than keep the last
/// length seen.
impl Drop for Admission {
    fn drop(&mut self) {
        self.gauges.set(0, 0, 0, 0);
    }
}

/// A running hold request's place; dropping it lets the next one in.
pub struct Permit {
    admission: Arc<Admission>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.admission.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.dispatch(Instant::now());
    }
}

/// What `GET /v1/admission` shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdmissionStatus {
    // The limits, spelled out: flattening `AdmissionLimits` would make the schema inherit
    // its refusal of any other field.
    pub in_flight_max: usize,
    pub queue_max: usize,
    pub wait_max_ms: u64,
    pub rate_per_s: u64,
    pub in_flight: usize,
    pub queued: usize,
    pub outflow_per_s: f64,
    /// How long the last in the queue would wait at the current outflow.
    pub estimated_wait_ms: u64,
    /// Requests answered 429 `queue-full` since the server started.
    pub refused_total: u64,
}

impl Admission {
    /// A queue named `name` in its metrics (`global`, or a sale id).
    pub fn new(
        name: &str,
        limits: AdmissionLimits,
        secret: [u8; 32],
        ticket_ttl_ms: u64,
        clock: Clock,
    ) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Self {
            state: Mutex::new(State {
                limits,
                in_flight: 0,
                waiters: BTreeMap::new(),
                next_seq: 0,
                bucket: Bucket {
                    tokens: 1.0,
                    refilled: now,
                },
                outflow: Outflow {
                    per_s: 0.0,
                    updated: now,
                },
            }),
            signer: TicketSigner::new(secret),
            ticket_ttl_ms,
            clock,
            gauges: m::QueueGauges::new(name),
            refused: Default::default(),
        })
    }

    pub fn limits(&self) -> AdmissionLimits {
        self.state.lock().limits
    }

    pub fn status(&self) -> AdmissionStatus {
        let state = self.state.lock();
        let outflow = state.outflow.decayed(Instant::now());
        let queued = state.waiters.len();
        let queued_f64 = u32::try_from(queued).map_or(f64::from(u32::MAX), f64::from);
        let estimated_wait_ms = Duration::try_from_secs_f64(queued_f64 / outflow)
            .map_or(0, |wait| {
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
            });
        AdmissionStatus {
            in_flight_max: state.limits.in_flight_max,
            queue_max: state.limits.queue_max,
            wait_max_ms: state.limits.wait_max_ms,
            rate_per_s: state.limits.rate_per_s,
            in_flight: state.in_flight,
            queued,
            outflow_per_s: (outflow * 10.0).round() / 10.0,
            estimated_wait_ms,
            refused_total: self.refused.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub fn set_limits(&self, limits: AdmissionLimits) {
        let mut state = self.state.lock();
        state.limits = limits;
        state.dispatch(Instant::now());
    }

    fn queue_full(
        &self,
        state: &State,
        seq: u64,
        position: u32,
        presented: Option<Ticket>,
        now: Instant,
    ) -> Refusal {
        let position = presented
            .map_or(position, |t| position.min(t.position))
            .max(1);
        m::admission_decision(m::AdmissionDecision::QueueFull);
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Refusal::QueueFull {
            ticket: self.signer.sign(Ticket {
                seq,
                issued_at_ms: presented.map_or_else(|| self.clock.now_ms(), |t| t.issued_at_ms),
                position,
            }),
            position,
            retry_after_s: state.retry_after_s(position, now),
        }
    }

    /// Waits for a place for a hold request, or says why there is none.
    pub async fn admit(
        self: &Arc<Self>,
        presented: Option<&str>,
        cart: Vec<CartLine>,
    ) -> Result<Permit, Refusal> {
        if let Some(refusal) = sold_out_line(&cart) {
            m::admission_decision(m::AdmissionDecision::SoldOut);
            return Err(refusal);
        }
        let arrived = Instant::now();
        let presented = presented.and_then(|text| {
            self.signer
                .verify(text, self.clock.now_ms(), self.ticket_ttl_ms)
        });
        let (mut answer, seq, wait) = {
            let mut state = self.state.lock();
            state.dispatch(arrived);
            let seq = match presented {
                Some(ticket) if !state.waiters.contains_key(&ticket.seq) => ticket.seq,
                _ => {
                    state.next_seq += 1;
                    state.next_seq
                }
            };
            let ahead = state.waiters.range(..seq).count();
            let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
            let rate_per_s = state.limits.rate_per_s;
            if ahead == 0
                && state.in_flight < state.limits.in_flight_max
                && state.bucket.take(rate_per_s, arrived)
            {
                state.in_flight += 1;
                state.outflow.record(arrived);
                m::admission_decision(m::AdmissionDecision::Admitted);
                return Ok(Permit {
                    admission: Arc::clone(self),
                });
            }
            let wait = Duration::from_millis(state.limits.wait_max_ms);
            let outflow = state.outflow.decayed(arrived);
            let too_long = outflow >= 1.0 && f64::from(position) / outflow > wait.as_secs_f64();
            if state.waiters.len() >= state.limits.queue_max || too_long || wait.is_zero() {
                return Err(self.queue_full(&state, seq, position, presented, arrived));
            }
            let (sender, receiver) = oneshot::channel();
            state.waiters.insert(
                seq,
                Waiter {
                    answer: sender,
                    cart,
                },
            );
            (receiver, seq, wait)
        };
        let answered = tokio::time::timeout(wait, &mut answer).await;
        let result = match answered {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => {
                let mut state = self.state.lock();
                if state.waiters.remove(&seq).is_some() {
                    let ahead = state.waiters.range(..seq).count();
                    let position = u32::try_from(ahead + 1).unwrap_or(u32::MAX);
                    return Err(self.queue_full(&state, seq, position, presented, Instant::now()));
                }
                drop(state);
                // Admitted or refused in the instant the wait ran out: dispatch and the
                // sold-out sweep send an answer for every waiter they remove. Without one,
                // refuse rather than hand out a permit the in-flight count never took.
                match answer.try_recv() {
                    Ok(result) => result,
                    Err(_) => {
                        let state = self.state.lock();
                        return Err(self.queue_full(&state, seq, 1, presented, Instant::now()));
                    }
                }
            }
        };
        result?;
        m::admission_decision(m::AdmissionDecision::AdmittedAfterWait);
        m::admission_wait(arrived.elapsed());
        Ok(Permit {
            admission: Arc::clone(self),
        })
    }

    /// Periodic work: admit on fresh rate tokens, answer waiters whose SKU sold out,
    /// publish the queue gauges.
    pub fn tick(&self) {
        let mut state = self.state.lock();
        state.refuse_sold_out();
        state.dispatch(Instant::now());
        self.gauges.set(
            state.waiters.len(),
            state.in_flight,
            state.limits.queue_max,
            state.limits.in_flight_max,
        );
    }

    /// Runs [`Admission::run_ticks`] at the admission tick on the current actix arbiter.
    pub fn tick_in_background(self: Arc<Self>) {
        tokio::task::spawn_local(self.run_ticks(TICK));
    }

    /// Ticks until nothing else holds the queue: a sale's queue is dropped when the sale
    /// is replaced or ends and its last waiter and permit are gone, and its ticker with it
    /// (holding the queue itself, it woke every few milliseconds forever).
    pub async fn run_ticks(self: Arc<Self>, period: Duration) {
        let queue = Arc::downgrade(&self);
        drop(self);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(queue) = queue.upgrade() else {
                return;
            };
            queue.tick();
        }
    }
}

#[cfg(test)]
mod tests;
