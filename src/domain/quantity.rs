use serde::{Deserialize, Serialize};

use super::ParseError;

/// Largest unit count anywhere (on hand, safety stock, a line). Keeps every sum of counters
/// far from u64 overflow: held + committed <= on_hand <= UNITS_MAX.
pub const UNITS_MAX: u64 = 1_000_000_000_000;

/// Units on one hold line: at least 1, at most UNITS_MAX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quantity(u64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, ParseError> {
        match u64::try_from(raw) {
            Ok(units) if (1..=UNITS_MAX).contains(&units) => Ok(Self(units)),
            _ => Err(ParseError(format!(
                "quantity must be an integer from 1 to {UNITS_MAX}, got {raw}"
            ))),
        }
    }

    pub fn units(self) -> u64 {
        self.0
    }

    /// Both together, if that is still at most UNITS_MAX.
    /// What is left after taking `units` away; `None` if nothing (or less) is.
    pub fn checked_sub_units(self, units: u64) -> Option<Quantity> {
        self.0
            .checked_sub(units)
            .filter(|left| *left > 0)
            .map(Quantity)
    }

    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        Some(self.0 + other.0)
            .filter(|units| *units <= UNITS_MAX)
            .map(Self)
    }
}

/// A count of units from a request (on hand, safety stock, a threshold): 0 to UNITS_MAX.
pub fn units(name: &str, value: i64) -> Result<u64, ParseError> {
    u64::try_from(value)
        .ok()
        .filter(|units| *units <= UNITS_MAX)
        .ok_or_else(|| {
            ParseError(format!(
                "{name} must be an integer from 0 to {UNITS_MAX}, got {value}"
            ))
        })
}

impl utoipa::PartialSchema for Quantity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(UNITS_MAX))
            .description(Some("Units on one line"))
            .into()
    }
}

impl utoipa::ToSchema for Quantity {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_refuses_zero_negative_and_huge() {
        assert!(Quantity::parse(0).is_err());
        assert!(Quantity::parse(-1).is_err());
        assert!(Quantity::parse(i64::MAX).is_err());
        assert_eq!(Quantity::parse(3).map(Quantity::units), Ok(3));
    }
}
