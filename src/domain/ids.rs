use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::ParseError;

/// Longest id the API accepts (API.md: ids are 1–64 chars of `[A-Za-z0-9._:-]`).
pub const ID_LEN_MAX: usize = 64;

fn check_id(kind: &str, raw: &str) -> Result<(), ParseError> {
    if raw.is_empty() || raw.len() > ID_LEN_MAX {
        return Err(ParseError(format!(
            "{kind} must be 1 to {ID_LEN_MAX} characters long, got {}",
            raw.len()
        )));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if let Some(bad) = raw.chars().find(|c| !allowed(*c)) {
        return Err(ParseError(format!(
            "{kind} may only contain A-Z a-z 0-9 . _ : -, found {bad:?}"
        )));
    }
    Ok(())
}

/// The OpenAPI schema of an id: what [`check_id`] accepts.
fn id_schema(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .min_length(Some(1))
        .max_length(Some(ID_LEN_MAX))
        .pattern(Some("^[A-Za-z0-9._:-]+$"))
        .description(Some(description))
        .into()
}

/// Ids are shared, not copied: a hold's customer and channel appear in the hold, in
/// each of its SKU lines, and in the compactor's image of both, and a clone of an
/// `Arc<str>` is a pointer where a `String` was 24 bytes plus a heap block. Serialized
/// as the plain string, so the journal and snapshot bytes are what they were.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, ParseError> {
                check_id($kind, raw)?;
                Ok(Self(Arc::from(raw)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema(concat!("A ", $kind, ": 1 to 64 characters of A-Z a-z 0-9 . _ : -"))
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_id!(
    /// A stock-keeping unit: the thing a shopper buys and one actor owns.
    SkuId,
    "sku"
);
string_id!(
    /// A sales channel (web, app, marketplace, store ...); holds and quotas belong to one.
    Channel,
    "channel"
);
string_id!(
    /// The shopper a hold is for; per-customer limits count by it.
    CustomerId,
    "customer_id"
);
string_id!(
    /// A flash sale: a window, its SKUs, its per-customer limit.
    SaleId,
    "sale_id"
);
string_id!(
    /// A webhook endpoint, named by the admin who registers it.
    WebhookId,
    "webhook_id"
);
string_id!(
    /// A place stock sits: a warehouse or a store.
    LocationId,
    "location"
);
string_id!(
    /// The client's name for one logical attempt, so a retry is recognised as the same one.
    IdempotencyKey,
    "Idempotency-Key"
);

impl Channel {
    /// The channel of holds made without channel keys configured and without naming one.
    /// `default`, one shared allocation for every hold that names no channel.
    pub fn default_channel() -> Self {
        static DEFAULT: std::sync::OnceLock<Channel> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(|| Self(Arc::from("default"))).clone()
    }
}

impl LocationId {
    /// Where a SKU's stock is when no location is named: every deployment has it, and one
    /// that never names a location has nothing else.
    pub fn default_location() -> Self {
        static DEFAULT: std::sync::OnceLock<LocationId> = std::sync::OnceLock::new();
        DEFAULT.get_or_init(|| Self(Arc::from("default"))).clone()
    }

    pub fn is_default(&self) -> bool {
        &*self.0 == "default"
    }
}

/// A hold's id: a ULID, so ids sort by creation time and cannot be guessed from a counter.
/// Stored as its 128-bit value; shown as the 26-character text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldId(Ulid);

impl Serialize for HoldId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u128(self.0 .0)
    }
}

impl<'de> Deserialize<'de> for HoldId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u128::deserialize(deserializer).map(|bits| Self(Ulid(bits)))
    }
}

impl HoldId {
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        // 26 base-32 digits are 130 bits; a ULID is 128, so its first digit is 0-7. The
        // ulid crate drops the two extra bits, which would make `8...` name `0...`'s hold.
        let fits = raw.as_bytes().first().is_some_and(|first| *first <= b'7');
        Ulid::from_str(raw)
            .ok()
            .filter(|_| fits)
            .map(Self)
            .ok_or_else(|| ParseError(format!("hold id must be a 26-character ULID, got {raw:?}")))
    }
}

impl Default for HoldId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for HoldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_and_length() {
        assert!(SkuId::parse("SKU-1.a_b:c").is_ok());
        assert!(SkuId::parse(&"x".repeat(64)).is_ok());
        assert!(SkuId::parse(&"x".repeat(65)).is_err());
        assert!(SkuId::parse("").is_err());
        assert!(SkuId::parse("a b").is_err());
        assert!(SkuId::parse("ü").is_err());
    }

    #[test]
    fn hold_ids_round_trip_through_text() {
        let id = HoldId::new();
        assert_eq!(HoldId::parse(&id.to_string()), Ok(id));
        assert!(HoldId::parse("not-a-ulid").is_err());
    }

    #[test]
    fn hold_ids_past_128_bits_are_refused_not_aliased() {
        let zero = "0".repeat(26);
        assert!(HoldId::parse(&zero).is_ok());
        assert!(HoldId::parse(&"7".repeat(26)).is_ok());
        assert!(HoldId::parse(&format!("8{}", &zero[1..])).is_err());
        assert!(HoldId::parse(&"Z".repeat(26)).is_err());
    }
}
