use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};

use super::*;

fn limits(
    in_flight_max: usize,
    queue_max: usize,
    wait_max_ms: u64,
    rate_per_s: u64,
) -> AdmissionLimits {
    AdmissionLimits {
        in_flight_max,
        queue_max,
        wait_max_ms,
        rate_per_s,
    }
}

fn gauge(available: u64) -> Arc<SkuGauge> {
    let gauge = Arc::new(SkuGauge::default());
    gauge.available.store(available, Ordering::Relaxed);
    gauge
}

fn cart(gauge: &Arc<SkuGauge>) -> Vec<CartLine> {
    vec![CartLine {
        sku: SkuId::parse("S").unwrap(),
        quantity: 1,
        gauge: Arc::clone(gauge),
    }]
}

/// Starts `admit` for `name` as a task and lets it reach its wait, so arrival order is
/// the order of these calls; the task records `name` once admitted and holds its permit
/// until `release` says so.
async fn arrive(
    admission: &Arc<Admission>,
    stock: &Arc<SkuGauge>,
    name: &'static str,
    ticket: Option<String>,
    served: &Arc<StdMutex<Vec<&'static str>>>,
) -> tokio::task::JoinHandle<Result<Permit, Refusal>> {
    let (admission, served, cart) = (Arc::clone(admission), Arc::clone(served), cart(stock));
    let task = tokio::task::spawn_local(async move {
        let permit = admission.admit(ticket.as_deref(), cart).await?;
        served.lock().unwrap().push(name);
        Ok(permit)
    });
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    task
}

fn run(test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, test);
}

/// A queue with these limits, its tickets signed with a fixed key.
fn queue(limits: AdmissionLimits) -> Arc<Admission> {
    Admission::new("test", limits, [1; 32], 60_000, Clock::system())
}

#[test]
fn waiters_are_admitted_in_arrival_order() {
    run(async {
        let admission = queue(limits(1, 10, 5_000, 0));
        let stock = gauge(100);
        let served = Arc::default();
        let first = arrive(&admission, &stock, "first", None, &served)
            .await
            .await
            .unwrap();
        let mut waiting = Vec::new();
        for name in ["a", "b", "c", "d"] {
            waiting.push(arrive(&admission, &stock, name, None, &served).await);
        }
        assert_eq!(admission.status().queued, 4);
        drop(first);
        for task in waiting {
            drop(task.await.unwrap().expect("admitted"));
        }
        assert_eq!(*served.lock().unwrap(), ["first", "a", "b", "c", "d"]);
    });
}

#[test]
fn a_ticket_keeps_its_place_ahead_of_newer_arrivals_and_a_forgery_does_not() {
    run(async {
        let admission = queue(limits(1, 2, 5_000, 0));
        let stock = gauge(100);
        let served = Arc::default();
        let holder = arrive(&admission, &stock, "holder", None, &served)
            .await
            .await
            .unwrap();
        let w1 = arrive(&admission, &stock, "w1", None, &served).await;
        let w2 = arrive(&admission, &stock, "w2", None, &served).await;
        let Err(Refusal::QueueFull {
            ticket, position, ..
        }) = arrive(&admission, &stock, "x", None, &served)
            .await
            .await
            .unwrap()
        else {
            panic!("the queue is full");
        };
        assert_eq!(position, 3);
        drop(holder);
        let w1 = w1.await.unwrap().expect("w1 admitted");
        let newer = arrive(&admission, &stock, "newer", None, &served).await;
        let Err(Refusal::QueueFull {
            position: again,
            ticket: ticket_again,
            ..
        }) = arrive(&admission, &stock, "x", Some(ticket.clone()), &served)
            .await
            .await
            .unwrap()
        else {
            panic!("still full");
        };
        assert_eq!(
            again, 2,
            "only w2 is ahead of the ticket now; the newer arrival is behind it"
        );
        admission.set_limits(limits(1, 3, 5_000, 0));
        let x = arrive(&admission, &stock, "x", Some(ticket_again), &served).await;
        let mut forged = ticket.clone();
        forged.pop();
        forged.push(if ticket.ends_with('0') { '1' } else { '0' });
        admission.set_limits(limits(1, 4, 5_000, 0));
        let fake = arrive(&admission, &stock, "forged", Some(forged), &served).await;
        drop(w1);
        for task in [w2, x, newer, fake] {
            drop(task.await.unwrap().expect("admitted"));
        }
        assert_eq!(
            *served.lock().unwrap(),
            ["holder", "w1", "w2", "x", "newer", "forged"]
        );
    });
}

#[test]
fn sold_out_carts_are_answered_409_at_once_and_waiters_when_their_sku_sells_out() {
    run(async {
        let admission = queue(limits(1, 10, 5_000, 0));
        let stock = gauge(5);
        let gone = gauge(0);
        let served = Arc::default();
        let refused = arrive(&admission, &gone, "gone", None, &served)
            .await
            .await
            .unwrap();
        assert!(matches!(
            refused,
            Err(Refusal::SoldOut(crate::sku::SkuError::SoldOut {
                available: 0,
                ..
            }))
        ));
        let holder = arrive(&admission, &stock, "holder", None, &served)
            .await
            .await
            .unwrap();
        let waiter = arrive(&admission, &stock, "waiter", None, &served).await;
        stock.available.store(0, Ordering::Relaxed);
        admission.tick();
        assert!(matches!(waiter.await.unwrap(), Err(Refusal::SoldOut(_))));
        drop(holder);
        assert_eq!(admission.status().queued, 0);
    });
}

#[test]
fn a_wait_past_the_limit_ends_in_429_with_a_ticket() {
    run(async {
        let admission = queue(limits(1, 10, 50, 0));
        let stock = gauge(5);
        let served = Arc::default();
        let _holder = arrive(&admission, &stock, "holder", None, &served)
            .await
            .await
            .unwrap();
        let waited = arrive(&admission, &stock, "late", None, &served)
            .await
            .await
            .unwrap();
        let Err(Refusal::QueueFull {
            ticket,
            position,
            retry_after_s,
        }) = waited
        else {
            panic!("timed out waiting");
        };
        assert_eq!(position, 1);
        assert!(retry_after_s >= 1);
        assert!(admission
            .signer
            .verify(&ticket, Clock::system().now_ms(), 60_000)
            .is_some());
        assert_eq!(
            admission.status().queued,
            0,
            "a timed-out waiter leaves the queue"
        );
    });
}

#[test]
fn the_rate_limit_bounds_admissions() {
    run(async {
        let admission = queue(limits(1_000, 0, 0, 20));
        let stock = gauge(1_000);
        let started = Instant::now();
        let mut admitted = Vec::new();
        while started.elapsed() < Duration::from_millis(500) {
            if let Ok(permit) = admission.admit(None, cart(&stock)).await {
                admitted.push(permit);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed_s = started.elapsed().as_secs_f64();
        #[expect(clippy::cast_possible_truncation, reason = "a few seconds' worth")]
        let bound = (20.0 * elapsed_s).ceil() as usize + 1;
        assert!(
            admitted.len() <= bound,
            "{} admitted in {elapsed_s:.2} s at 20/s",
            admitted.len()
        );
        assert!(
            admitted.len() >= 5,
            "the limiter admits at its rate: {}",
            admitted.len()
        );
    });
}

/// A queue's ticker ends once nothing else holds the queue (a replaced or ended sale's).
#[test]
fn a_ticker_stops_when_its_queue_is_gone() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let admission = queue(limits(1, 10, 5_000, 0));
        let ticker = tokio::spawn(Arc::clone(&admission).run_ticks(Duration::from_millis(1)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!ticker.is_finished(), "ticks while the queue is held");
        drop(admission);
        let ended = tokio::time::timeout(Duration::from_secs(5), ticker).await;
        assert!(matches!(ended, Ok(Ok(()))), "the ticker ended");
    });
}
