//! Wall-clock time as integer milliseconds since the Unix epoch. Hold deadlines are absolute
//! wall-clock times so they mean the same thing after a restart.
//!
//! The server reads the time through a [`Clock`] handle it is built with: the system clock
//! in production, a manual one in tests, which move it forward instead of sleeping until a
//! hold expires or a sale opens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where the server reads the time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: a clock that moves only when told to.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `start_ms` until [`Clock::advance`] moves it.
    pub fn manual(start_ms: u64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(at) => at.load(Ordering::Acquire),
            None => system_now_ms(),
        }
    }

    /// Moves a manual clock forward by `ms`. The system clock cannot be moved: returns
    /// false and changes nothing.
    pub fn advance(&self, ms: u64) -> bool {
        match &self.manual {
            Some(at) => {
                at.fetch_add(ms, Ordering::AcqRel);
                true
            }
            None => false,
        }
    }
}

fn system_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, as the API shows times.
pub fn rfc3339(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time as milliseconds since the epoch, or why `field` cannot be one.
pub fn parse_rfc3339_ms(field: &str, text: &str) -> Result<u64, String> {
    u64::try_from(parse_rfc3339_signed_ms(field, text)?)
        .map_err(|_| format!("{field} is before 1970"))
}

/// As [`parse_rfc3339_ms`], any time before 1970 read as 1970 (a count that old is older
/// than anything kept, and is refused as such).
pub fn parse_rfc3339_ms_from_1970(field: &str, text: &str) -> Result<u64, String> {
    Ok(u64::try_from(parse_rfc3339_signed_ms(field, text)?.max(0)).unwrap_or(0))
}

fn parse_rfc3339_signed_ms(field: &str, text: &str) -> Result<i128, String> {
    let at = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("{field} must be an RFC 3339 time: {e}"))?;
    Ok(at.unix_timestamp_nanos() / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        assert!(clock.advance(250));
        assert_eq!(clock.clone().now_ms(), 1_250, "clones share the time");
        assert!(!Clock::system().advance(1), "the system clock is not moved");
    }

    #[test]
    fn formats_utc_with_millis() {
        assert_eq!(
            super::rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
