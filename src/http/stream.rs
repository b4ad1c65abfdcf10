//! Availability as it changes, for any key: `GET /v1/availability/stream` (Server-Sent
//! Events) and `GET /v1/changes` (the same events, a page at a time, for pollers and
//! reconciliation jobs). Both read the broadcast hub's ring of durable events; a cursor
//! older than the ring gets a reset (re-read `GET /v1/availability`, go on from the head).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use tokio::sync::watch;

use super::auth::Principal;
use super::openapi::AvailabilityErrors;
use super::{ApiError, AppState};
use crate::broadcast::event::{Audience, AvailabilityEvent};
use crate::broadcast::hub::READ_GATHER;
use crate::broadcast::{Hub, Read, StockEvent};
use crate::domain::SkuId;

/// Events looked at per read of the ring, whatever the SKU filter keeps: bounds the time
/// the ring's lock is held.
const SCAN_MAX: usize = 10_000;
/// What a `GET /v1/changes` page holds when `limit` is not given.
const LIMIT_DEFAULT: usize = 100;
/// How long a browser waits before reconnecting a dropped stream, in milliseconds.
const RECONNECT_MS: u64 = 2_000;

/// Streams open now, bounded by `--stream-subscribers-max`.
#[derive(Default)]
pub struct Subscribers(Arc<AtomicUsize>);

/// One open stream's place; given back when the stream ends (the client went away).
struct Subscription(Arc<AtomicUsize>);

impl Subscribers {
    fn join(&self, max: usize) -> Option<Subscription> {
        let count = Arc::clone(&self.0);
        let joined = count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now < max).then_some(now + 1)
            })
            .ok()?;
        crate::metrics::stock_subscribers(joined + 1);
        Some(Subscription(count))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let left = self.0.fetch_sub(1, Ordering::AcqRel) - 1;
        crate::metrics::stock_subscribers(left);
    }
}

/// What both routes take from the query string.
struct Query {
    skus: Option<BTreeSet<SkuId>>,
    since: Option<u64>,
    limit: Option<usize>,
}

fn parse_query(request: &HttpRequest, state: &AppState, paged: bool) -> Result<Query, ApiError> {
    let mut query = Query {
        skus: None,
        since: None,
        limit: None,
    };
    let skus_max = state.settings.availability_skus_max;
    for (name, value) in form_urlencoded::parse(request.query_string().as_bytes()) {
        match name.as_ref() {
            "sku" => {
                let skus = query.skus.get_or_insert_with(BTreeSet::new);
                if skus.len() >= skus_max {
                    return Err(ApiError::Invalid(format!(
                        "at most {skus_max} sku parameters per request"
                    )));
                }
                let sku = SkuId::parse(&value).map_err(|err| ApiError::Invalid(err.to_string()))?;
                skus.insert(sku);
            }
            "since" => query.since = Some(parse_cursor(&value, "since")?),
            "limit" if paged => {
                let max = state.settings.changes_limit_max;
                let limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=max).contains(limit))
                    .ok_or_else(|| {
                        ApiError::Invalid(format!("limit must be an integer from 1 to {max}"))
                    })?;
                query.limit = Some(limit);
            }
            other => {
                let known = if paged {
                    "sku, since, limit"
                } else {
                    "sku, since"
                };
                return Err(ApiError::Invalid(format!(
                    "unknown query parameter {other:?}; this route takes {known}"
                )));
            }
        }
    }
    Ok(query)
}

/// The largest cursor: the largest integer a JSON reader (JavaScript) holds exactly. A
/// journal reaches it after 8.8 trillion changes.
const CURSOR_MAX: u64 = (1 << 53) - 1;

fn parse_cursor(value: &str, what: &str) -> Result<u64, ApiError> {
    let cursor = value.trim().parse::<u64>().unwrap_or(u64::MAX);
    check_cursor(cursor, what)
}

/// `cursor` if it is one (at most [`CURSOR_MAX`]), else why not, naming `what`.
pub(crate) fn check_cursor(cursor: u64, what: &str) -> Result<u64, ApiError> {
    if cursor > CURSOR_MAX {
        return Err(ApiError::Invalid(format!(
            "{what} must be a cursor: an integer from 0 to {CURSOR_MAX}"
        )));
    }
    Ok(cursor)
}

fn audience(principal: Principal) -> Audience {
    match principal {
        Principal::Admin | Principal::Open => Audience::All,
        Principal::Channel(channel) => Audience::Channel(channel),
    }
}

fn keeps(skus: &Option<BTreeSet<SkuId>>) -> impl Fn(&StockEvent) -> bool + '_ {
    move |event| skus.as_ref().is_none_or(|skus| skus.contains(&event.sku))
}

/// A page of the change feed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ChangesPage<'a> {
    /// The events after `since`, oldest first.
    events: Vec<AvailabilityEvent<'a>>,
    /// Pass as `since` for the next page.
    next: u64,
    /// True when `since` is older than the events kept: re-read `GET /v1/availability`
    /// for the SKUs you follow, then go on from `next`.
    reset: bool,
}

/// `GET /v1/changes?since=N&limit=M&sku=A`: the availability events after a cursor.
#[utoipa::path(
    get,
    path = "/v1/changes",
    tag = "stock",
    summary = "Availability events after a cursor: the change feed",
    description = "The same events as `/v1/availability/stream`, a page at a time, for \
        consumers that poll and for reconciliation jobs. Start with `since=0` on a fresh \
        server, or from the `next` of `GET /v1/changes` with no `since` (the head: only \
        what comes after). Events carry state, not deltas: keep the highest `version` per \
        SKU. When `reset` is true the cursor was older than what the server keeps: re-read \
        `GET /v1/availability`, then continue from `next`.",
    params(
        ("since" = Option<u64>, Query, description = "Cursor: events after it (default: the head, so only `next` is answered)", minimum = 0, maximum = 9_007_199_254_740_991_i64),
        ("limit" = Option<usize>, Query, description = "Most events in the page (default 100, at most `--changes-limit-max`)", minimum = 1, maximum = 1000),
        ("sku" = Option<Vec<SkuId>>, Query, explode = true, style = Form,
            description = "Only these SKUs (at most `--availability-skus-max`)", max_items = 100),
    ),
    responses(
        (status = 200, description = "A page of events and the next cursor", body = ChangesPage),
        AvailabilityErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn get_changes(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let audience = audience(state.auth.authenticate(&request)?);
    let query = parse_query(&request, &state, true)?;
    let hub = &state.hub;
    let since = query.since.unwrap_or_else(|| hub.head());
    let limit = query.limit.unwrap_or(LIMIT_DEFAULT);
    let (events, next, reset) = match hub.read(since, limit, SCAN_MAX, &keeps(&query.skus)) {
        Read::Events { events, next } => (events, next, false),
        Read::Reset { head } => (Vec::new(), head, true),
    };
    let page = ChangesPage {
        events: events
            .iter()
            .map(|event| AvailabilityEvent::of(event, &audience))
            .collect(),
        next,
        reset,
    };
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /v1/availability/stream?sku=A&sku=B`: Server-Sent Events, one per durable change.
#[utoipa::path(
    get,
    path = "/v1/availability/stream",
    tag = "stock",
    summary = "Availability as it changes: Server-Sent Events",
    description = "`text/event-stream`: one event per durable availability change (hold, \
        expiry, release, confirm, fulfil, stock set, adjustment, feed line, allocation, \
        rebalance), with `id: <seq>` and the event as JSON in `data`. Without `sku`, every \
        SKU. A channel key sees its own channel's availability, the admin key every \
        channel. Reconnect with `Last-Event-ID` (browsers do) or `?since=` to resume right \
        after that event; with neither, the stream starts at the head. A cursor older than \
        what the server keeps gets `event: reset` (re-read `GET /v1/availability`; its \
        `id` is where the stream goes on from). A subscriber that falls that far behind \
        while connected gets `reset` and is disconnected. Idle streams get a keep-alive \
        comment every `--stream-keepalive-s` seconds.",
    params(
        ("sku" = Option<Vec<SkuId>>, Query, explode = true, style = Form,
            description = "Only these SKUs (at most `--availability-skus-max`)", max_items = 100),
        ("since" = Option<u64>, Query, description = "Cursor to resume after, when no `Last-Event-ID` is sent", minimum = 0, maximum = 9_007_199_254_740_991_i64),
        ("Last-Event-ID" = Option<u64>, Header, description = "Cursor to resume after", minimum = 0, maximum = 9_007_199_254_740_991_i64),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        AvailabilityErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn get_stream(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let audience = audience(state.auth.authenticate(&request)?);
    let query = parse_query(&request, &state, false)?;
    let last_event_id = match request.headers().get("last-event-id") {
        Some(value) => Some(parse_cursor(
            value
                .to_str()
                .map_err(|_| ApiError::Invalid("Last-Event-ID must be a cursor".into()))?,
            "Last-Event-ID",
        )?),
        None => None,
    };
    let subscription = state
        .subscribers
        .join(state.settings.stream_subscribers_max)
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "{} availability streams are open, the configured maximum; poll GET /v1/changes or retry later",
                state.settings.stream_subscribers_max
            ))
        })?;
    let hub = Arc::clone(&state.hub);
    // Subscribed before the first read, so no event published in between is missed.
    let watch = hub.watch();
    let cursor = last_event_id.or(query.since).unwrap_or_else(|| hub.head());
    let follow = Follow {
        hub,
        watch,
        cursor,
        audience,
        skus: query.skus,
        keepalive: Duration::from_secs(state.settings.stream_keepalive_s),
        batch_max: state.settings.changes_limit_max,
        greeted: false,
        reading: false,
        ended: false,
        _subscription: subscription,
    };
    let body = futures_util::stream::unfold(follow, Follow::next);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer (nginx) would hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// One subscriber's place in the ring.
struct Follow {
    hub: Arc<Hub>,
    watch: watch::Receiver<u64>,
    cursor: u64,
    audience: Audience,
    skus: Option<BTreeSet<SkuId>>,
    keepalive: Duration,
    batch_max: usize,
    /// The first chunk (the reconnect delay) was sent.
    greeted: bool,
    /// The cursor was read from once: a reset from now on means the stream fell behind.
    reading: bool,
    /// Cut off: the last chunk was a reset.
    ended: bool,
    _subscription: Subscription,
}

impl Follow {
    /// The next chunk of the stream: events, a reset, or a keep-alive comment. Waits for
    /// the hub to move; holds nothing but its cursor in the meantime.
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Self)> {
        if self.ended {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            let hello = format!("retry: {RECONNECT_MS}\n: holdfast availability stream\n\n");
            return Some((Ok(Bytes::from(hello)), self));
        }
        loop {
            self.watch.mark_unchanged();
            let read = self
                .hub
                .read(self.cursor, self.batch_max, SCAN_MAX, &keeps(&self.skus));
            match read {
                Read::Reset { head } => {
                    // Connected with an old cursor: say so and go on from the head. Fell
                    // behind while connected: say so and end, so a slow reader never
                    // holds more than its cursor.
                    let behind = self.reading;
                    self.reading = true;
                    self.cursor = head;
                    if behind {
                        self.ended = true;
                        crate::metrics::stock_subscriber_cut();
                    }
                    let reason = if behind {
                        "this stream fell behind the events the server keeps"
                    } else {
                        "the cursor is older than the events the server keeps"
                    };
                    let reset = format!(
                        "event: reset\nid: {head}\ndata: {}\n\n",
                        serde_json::json!({"next": head, "reason": reason,
                            "action": "re-read GET /v1/availability, then follow from next"})
                    );
                    return Some((Ok(Bytes::from(reset)), self));
                }
                Read::Events { events, next } => {
                    self.reading = true;
                    self.cursor = next;
                    if !events.is_empty() {
                        let chunk = self.render(&events);
                        return Some((Ok(chunk), self));
                    }
                }
            }
            match tokio::time::timeout(self.keepalive, self.watch.changed()).await {
                Ok(Ok(())) => tokio::time::sleep(READ_GATHER).await,
                // The hub is gone: the server is stopping.
                Ok(Err(_)) => return None,
                Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self)),
            }
        }
    }

    fn render(&self, events: &[Arc<StockEvent>]) -> Bytes {
        let mut chunk = Vec::with_capacity(events.len() * 200);
        for event in events {
            chunk.extend_from_slice(format!("id: {}\ndata: ", event.seq).as_bytes());
            match &self.audience {
                Audience::All => chunk.extend_from_slice(event.rendered_for_all().as_bytes()),
                channel => {
                    // Plain data: serializing it cannot fail.
                    let _ =
                        serde_json::to_writer(&mut chunk, &AvailabilityEvent::of(event, channel));
                }
            }
            chunk.extend_from_slice(b"\n\n");
        }
        Bytes::from(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::hub::cursor;
    use crate::sku::mark::StockMark;
    use crate::sku::SkuState;

    fn event(seq: u64) -> StockEvent {
        StockEvent::new(
            cursor(seq, 0),
            SkuId::parse("A").expect("sku"),
            StockMark::reading(&SkuState::default()).mark(seq, 0, None),
        )
    }

    async fn chunk(follow: Follow) -> (String, Follow) {
        let (chunk, follow) = follow.next().await.expect("a chunk");
        let Ok(bytes) = chunk;
        (String::from_utf8(bytes.to_vec()).expect("utf-8"), follow)
    }

    /// A subscriber that stops reading while the ring moves past it is sent a reset and
    /// its stream ends: it never holds more than its cursor.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_cut_off() {
        let hub = Hub::new(4);
        let subscribers = Subscribers::default();
        let follow = Follow {
            watch: hub.watch(),
            hub: Arc::clone(&hub),
            cursor: 0,
            audience: Audience::All,
            skus: None,
            keepalive: Duration::from_secs(60),
            batch_max: 100,
            greeted: false,
            reading: false,
            ended: false,
            _subscription: subscribers.join(1).expect("a place"),
        };
        assert!(subscribers.join(1).is_none(), "one place only");
        let (hello, follow) = chunk(follow).await;
        assert!(hello.starts_with("retry:"));
        hub.publish([event(1), event(2)], cursor(2, 0));
        let (events, follow) = chunk(follow).await;
        assert_eq!(events.matches("id: ").count(), 2);
        // Ten more while the subscriber does not read: six of them leave the ring.
        hub.publish((3..=12).map(event), cursor(12, 0));
        let (reset, follow) = chunk(follow).await;
        assert!(reset.starts_with("event: reset\n"), "{reset}");
        assert!(follow.next().await.is_none(), "cut off after the reset");
        assert!(subscribers.join(1).is_some(), "its place is free again");
    }
}
