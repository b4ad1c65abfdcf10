//! `POST /v1/feeds/stock` (admin key): the start-of-day stock feed from the ERP/WMS, a hard
//! reset of `on_hand` and `safety_stock` per SKU (a line without `safety_stock` keeps it). NDJSON (`{"sku", "on_hand",
//! "safety_stock"}` per line) or, with `Content-Type: text/csv`, CSV with a header line
//! naming `sku,on_hand[,safety_stock]` (no quoting: SKU ids cannot hold commas). The body is
//! read as a stream, line by line, never whole; valid lines are applied even when others
//! are bad, and bad lines are reported by number. Limits: body bytes, lines, line length,
//! and the number of errors listed (all are counted).

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use super::body::refuse_declared_over;
use super::openapi::AdminBodyErrors;
use super::{ApiError, AppState};
use crate::clock::parse_rfc3339_ms_from_1970;
use crate::domain::{LocationId, SkuId};
use crate::sku::messages::SetStock;

/// Longest feed line, in bytes.
const LINE_BYTES_MAX: usize = 4 * 1024;
/// Errors listed in the answer; past it they are only counted.
const ERRORS_LISTED_MAX: usize = 1_000;
/// SKU updates applied at once.
const APPLY_IN_FLIGHT_MAX: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedLine {
    sku: String,
    #[serde(deserialize_with = "crate::domain::integer::integer")]
    on_hand: i64,
    #[serde(default, deserialize_with = "crate::domain::integer::optional_integer")]
    safety_stock: Option<i64>,
    location: Option<String>,
    as_of: Option<String>,
}

/// A feed line that was not applied, and why.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LineError {
    /// 1-based line number in the body.
    line: u64,
    detail: String,
}

/// What a feed did.
#[derive(Serialize, Default, utoipa::ToSchema)]
pub(crate) struct FeedReport {
    /// Lines applied.
    applied: u64,
    /// Bad lines, by line number; at most 1000 are listed.
    errors: Vec<LineError>,
    /// Bad lines in all.
    errors_total: u64,
}

impl FeedReport {
    fn error(&mut self, line: u64, detail: impl Into<String>) {
        self.errors_total += 1;
        if self.errors.len() < ERRORS_LISTED_MAX {
            self.errors.push(LineError {
                line,
                detail: detail.into(),
            });
        }
    }
}

/// Column positions in a CSV feed, from its header.
#[derive(Clone, Copy)]
struct Columns {
    sku: usize,
    on_hand: usize,
    safety_stock: Option<usize>,
    location: Option<usize>,
    as_of: Option<usize>,
}

enum Format {
    Ndjson,
    /// The columns, once the header is read.
    Csv(Option<Columns>),
}

/// One stock line to apply.
#[derive(Debug, PartialEq, Eq)]
struct StockLine {
    sku: SkuId,
    on_hand: u64,
    /// `None` keeps the SKU's current safety stock there.
    safety_stock: Option<u64>,
    /// `None`: the feed's location (`?location=`), else `default`.
    location: Option<String>,
    /// When the count was taken (RFC 3339), `None`: the feed's `?as_of=`, else now.
    as_of: Option<String>,
}

fn units(name: &str, raw: i64) -> Result<u64, String> {
    crate::domain::units(name, raw).map_err(|err| err.to_string())
}

/// One parsed stock line, or why it is bad; `Ok(None)` for a line with nothing to apply
/// (blank, or the CSV header). A field the line does not give (no field, no column, an
/// empty cell) is `None`: for `safety_stock`, the SKU keeps the one it has.
fn parse_line(format: &mut Format, text: &str) -> Result<Option<StockLine>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (line, on_hand, safety) = match format {
        Format::Ndjson => {
            let line: FeedLine =
                serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
            (
                (line.sku, line.location, line.as_of),
                line.on_hand,
                line.safety_stock,
            )
        }
        Format::Csv(None) => {
            let names: Vec<&str> = text.split(',').map(str::trim).collect();
            let find = |name: &str| names.iter().position(|n| *n == name);
            let (Some(sku), Some(on_hand)) = (find("sku"), find("on_hand")) else {
                return Err("the CSV header must name sku and on_hand (and may name \
                     safety_stock, location and as_of)"
                    .into());
            };
            *format = Format::Csv(Some(Columns {
                sku,
                on_hand,
                safety_stock: find("safety_stock"),
                location: find("location"),
                as_of: find("as_of"),
            }));
            return Ok(None);
        }
        Format::Csv(Some(columns)) => {
            let cells: Vec<&str> = text.split(',').map(str::trim).collect();
            let cell = |at: usize| {
                cells
                    .get(at)
                    .copied()
                    .ok_or_else(|| format!("missing column {}", at + 1))
            };
            let number = |at: usize, name: &str| -> Result<i64, String> {
                cell(at)?
                    .parse::<i64>()
                    .map_err(|_| format!("{name} is not an integer"))
            };
            let given = |at: Option<usize>| {
                at.and_then(|at| cells.get(at).copied())
                    .filter(|cell| !cell.is_empty())
            };
            let safety = match given(columns.safety_stock) {
                Some(_) => columns
                    .safety_stock
                    .map(|at| number(at, "safety_stock"))
                    .transpose()?,
                None => None,
            };
            (
                (
                    cell(columns.sku)?.to_owned(),
                    given(columns.location).map(str::to_owned),
                    given(columns.as_of).map(str::to_owned),
                ),
                number(columns.on_hand, "on_hand")?,
                safety,
            )
        }
    };
    let (sku, location, as_of) = line;
    let sku = SkuId::parse(&sku).map_err(|e| e.to_string())?;
    let safety_stock = match safety {
        Some(raw) => Some(units("safety_stock", raw)?),
        None => None,
    };
    Ok(Some(StockLine {
        sku,
        on_hand: units("on_hand", on_hand)?,
        safety_stock,
        location,
        as_of,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/feeds/stock",
    tag = "feeds",
    params(FeedQuery),
    summary = "Apply a start-of-day stock feed",
    description = "NDJSON, one `{\"sku\", \"on_hand\", \"safety_stock\"}` per line, or CSV \
        (`Content-Type: text/csv`) with a header naming `sku,on_hand[,safety_stock]`. Each \
        line hard-resets one SKU, creating it if needed; a line that does not give \
        `safety_stock` (no field, no column, an empty cell) keeps the SKU's. Valid lines are applied even when \
        others are bad; bad lines are reported by number. The body is read as a stream, \
        within `--feed-bytes-max` and `--feed-lines-max`.",
    request_body(description = "The feed", content(
        (String = "application/x-ndjson",
            example = "{\"sku\": \"TSHIRT\", \"on_hand\": 100, \"safety_stock\": 5}\n"),
        (String = "text/csv", example = "sku,on_hand,safety_stock\nTSHIRT,100,5\n"),
    )),
    responses(
        (status = 200, description = "What was applied and which lines were bad", body = FeedReport),
        AdminBodyErrors,
    ),
    security(("bearer" = [])),
)]
pub async fn post_stock_feed(
    request: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin(&request)?;
    state.journal.accepting()?;
    let bytes_max = state.settings.feed_bytes_max;
    refuse_declared_over(&request, bytes_max)?;
    let csv = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    let mut format = if csv {
        Format::Csv(None)
    } else {
        Format::Ndjson
    };
    let mut report = FeedReport::default();
    let mut applying = FuturesUnordered::new();
    let mut pending: Vec<u8> = Vec::new();
    let (mut read, mut line_no, mut overlong) = (0usize, 0u64, false);
    let mut first_line_of: HashMap<(SkuId, LocationId), u64> = HashMap::new();
    let query = web::Query::<FeedQuery>::from_query(request.query_string())
        .map_err(|err| ApiError::Invalid(format!("the query string: {err}")))?;
    let query = FeedDefaults::parse(&query)?;
    loop {
        let chunk = payload.next().await;
        let end = chunk.is_none();
        if let Some(chunk) = chunk {
            let chunk = chunk
                .map_err(|err| ApiError::Invalid(format!("could not read the body: {err}")))?;
            read += chunk.len();
            if read > bytes_max {
                return Err(ApiError::PayloadTooLarge(bytes_max));
            }
            pending.extend_from_slice(&chunk);
        }
        // Each line is copied out at its own length and the consumed prefix dropped once.
        // (Splitting the buffer off line by line left every line with the capacity of the
        // whole rest of its chunk: heaptrack put 2.9 KB a SKU on it during a feed.)
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut start = 0;
        while let Some(offset) = pending[start..].iter().position(|b| *b == b'\n') {
            let end_of_line = start + offset + 1;
            lines.push(pending[start..end_of_line].to_vec());
            start = end_of_line;
        }
        pending.drain(..start);
        if end && !pending.is_empty() {
            lines.push(std::mem::take(&mut pending));
        }
        if pending.len() > LINE_BYTES_MAX {
            // Drop the partial line now so one endless line cannot hold the memory.
            pending.clear();
            overlong = true;
        }
        if end && overlong && lines.is_empty() {
            lines.push(Vec::new());
        }
        for raw in lines {
            line_no += 1;
            if line_no > state.settings.feed_lines_max {
                return Err(ApiError::Invalid(format!(
                    "a feed has at most {} lines; nothing after line {} was read",
                    state.settings.feed_lines_max, state.settings.feed_lines_max
                )));
            }
            if overlong || raw.len() > LINE_BYTES_MAX {
                overlong = false;
                report.error(line_no, format!("longer than {LINE_BYTES_MAX} bytes"));
                continue;
            }
            let parsed = std::str::from_utf8(&raw)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(|text| parse_line(&mut format, text));
            match parsed {
                Ok(None) => {}
                Err(detail) => report.error(line_no, detail),
                Ok(Some(line)) => {
                    let set = match stock_set(&state, &query, &line) {
                        Ok(set) => set,
                        Err(detail) => {
                            report.error(line_no, detail);
                            continue;
                        }
                    };
                    let sku = line.sku;
                    let place = (sku.clone(), set.location.clone());
                    if let Some(first) = first_line_of.get(&place) {
                        let at = &set.location;
                        report.error(line_no, format!("sku {sku} at {at} was already set on line {first}; this line was not applied"));
                        continue;
                    }
                    first_line_of.insert(place, line_no);
                    let entry = match state.directory.get_or_create(&sku) {
                        Ok(entry) => entry,
                        Err(err) => {
                            report.error(line_no, err.to_string());
                            continue;
                        }
                    };
                    let timeout = state.actor_send_timeout();
                    applying.push(async move { (line_no, entry.ask(set, Some(timeout)).await) });
                    while applying.len() >= APPLY_IN_FLIGHT_MAX {
                        record(&mut report, applying.next().await);
                    }
                }
            }
        }
        if end {
            break;
        }
    }
    if read == 0 {
        // An export that produced nothing is a failed export, not a day with no stock.
        return Err(ApiError::Invalid(
            "the feed is empty: send NDJSON lines or a CSV with a header".into(),
        ));
    }
    while let Some(done) = applying.next().await {
        record(&mut report, Some(done));
    }
    state.durable().await?;
    report.errors.sort_by_key(|error| error.line);
    Ok(HttpResponse::Ok().json(report))
}

/// `?location=` and `?as_of=`: what lines that name neither default to.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// The location of lines that name none; `default` when omitted.
    #[param(value_type = Option<LocationId>)]
    location: Option<String>,
    /// When the feed's counts were taken (RFC 3339), for lines that give none; units
    /// holdfast shipped or adjusted there since are taken off the counted figure.
    #[param(value_type = Option<String>, format = DateTime)]
    as_of: Option<String>,
}

struct FeedDefaults {
    location: Option<LocationId>,
    as_of_ms: Option<u64>,
}

impl FeedDefaults {
    fn parse(query: &FeedQuery) -> Result<Self, ApiError> {
        let location = match &query.location {
            Some(raw) => Some(
                LocationId::parse(raw).map_err(|e| ApiError::Invalid(format!("location: {e}")))?,
            ),
            None => None,
        };
        let as_of_ms = match &query.as_of {
            Some(raw) => Some(parse_rfc3339_ms_from_1970("as_of", raw).map_err(ApiError::Invalid)?),
            None => None,
        };
        Ok(Self { location, as_of_ms })
    }
}

/// The stock change a line asks for, with the feed's defaults filled in; or why not.
fn stock_set(
    state: &AppState,
    defaults: &FeedDefaults,
    line: &StockLine,
) -> Result<SetStock, String> {
    let location = match &line.location {
        Some(raw) => LocationId::parse(raw).map_err(|e| format!("location: {e}"))?,
        None => defaults
            .location
            .clone()
            .unwrap_or_else(LocationId::default_location),
    };
    state
        .locations
        .require(&location)
        .map_err(|err| err.to_string())?;
    let as_of_ms = match &line.as_of {
        Some(raw) => Some(parse_rfc3339_ms_from_1970("as_of", raw)?),
        None => defaults.as_of_ms,
    };
    Ok(SetStock {
        location,
        on_hand: line.on_hand,
        safety_stock: line.safety_stock,
        low_stock_threshold: None,
        as_of_ms,
    })
}

type Applied = (
    u64,
    Result<Result<crate::sku::SkuView, crate::sku::SkuError>, actix::MailboxError>,
);

fn record(report: &mut FeedReport, done: Option<Applied>) {
    match done {
        Some((_, Ok(Ok(_)))) => report.applied += 1,
        Some((line, Ok(Err(err)))) => report.error(line, err.to_string()),
        Some((line, Err(err))) => report.error(line, format!("sku actor did not answer: {err}")),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_needs_a_header_and_reads_columns_by_name() {
        let mut format = Format::Csv(None);
        assert!(parse_line(&mut format, "a,b").is_err());
        assert_eq!(parse_line(&mut format, "on_hand, sku").unwrap(), None);
        let line = parse_line(&mut format, "12,X-1").unwrap().unwrap();
        assert_eq!(
            (line.sku.as_str(), line.on_hand, line.safety_stock),
            ("X-1", 12, None)
        );
        assert!(parse_line(&mut format, "twelve,X-1").is_err());
        assert!(parse_line(&mut format, "-1,X-1").is_err());
        assert_eq!(parse_line(&mut format, "   ").unwrap(), None);
    }
}
