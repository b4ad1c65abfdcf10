//! Reading integers from JSON as JSON Schema defines them: `266.0` is the integer 266
//! (2020-12, "integer"), so a client whose serializer writes every number with a decimal
//! point is understood, while `266.5` is still refused. serde's own integer impls refuse
//! any float. Formats that are not human-readable (postcard, in the journal and snapshots)
//! read the plain integer, since they cannot describe themselves.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};

/// `#[serde(deserialize_with = "integer")]` on an integer field.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128> + Deserialize<'de>,
{
    if !deserializer.is_human_readable() {
        return T::deserialize(deserializer);
    }
    deserializer.deserialize_any(IntegerVisitor(PhantomData))
}

/// `#[serde(default, deserialize_with = "optional_integer")]` on an `Option` of one.
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128> + Deserialize<'de>,
{
    Option::<Integer<T>>::deserialize(deserializer).map(|value| value.map(|Integer(v)| v))
}

/// An integer read by [`integer`], for places where an attribute cannot go.
struct Integer<T>(T);

impl<'de, T: TryFrom<i128> + Deserialize<'de>> Deserialize<'de> for Integer<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        integer(deserializer).map(Integer)
    }
}

struct IntegerVisitor<T>(PhantomData<T>);

impl<T: TryFrom<i128>> IntegerVisitor<T> {
    fn fit<E: de::Error>(value: i128) -> Result<T, E> {
        T::try_from(value).map_err(|_| E::custom(format!("integer {value} is out of range")))
    }
}

impl<T: TryFrom<i128>> Visitor<'_> for IntegerVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        Self::fit(i128::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        Self::fit(i128::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        // Beyond 2^63 no target type fits, and the cast below would saturate.
        if value.fract() == 0.0 && value.abs() < 2f64.powi(63) {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "a whole number under 2^63 in magnitude: exact in i128"
            )]
            let whole = value as i128;
            Self::fit(whole)
        } else {
            Err(E::invalid_value(Unexpected::Float(value), &self))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "integer")]
        units: u64,
        #[serde(default, deserialize_with = "optional_integer")]
        ttl: Option<i64>,
    }

    #[test]
    fn json_integers_may_be_written_with_a_zero_fraction() {
        let read = |text: &str| serde_json::from_str::<Body>(text).map_err(|e| e.to_string());
        assert_eq!(
            read(r#"{"units": 266.0}"#),
            Ok(Body {
                units: 266,
                ttl: None
            })
        );
        assert_eq!(
            read(r#"{"units": 2, "ttl": -3.0}"#),
            Ok(Body {
                units: 2,
                ttl: Some(-3)
            })
        );
        assert_eq!(
            read(r#"{"units": 2, "ttl": null}"#),
            Ok(Body {
                units: 2,
                ttl: None
            })
        );
        assert!(read(r#"{"units": 266.5}"#).is_err());
        assert!(read(r#"{"units": -1}"#).is_err());
        assert!(read(r#"{"units": 1e300}"#).is_err());
        assert!(read(r#"{"units": "3"}"#).is_err());
    }

    #[test]
    fn binary_formats_read_the_plain_integer() {
        let body = Body {
            units: 7,
            ttl: Some(-2),
        };
        let bytes = postcard::to_stdvec(&body).expect("serializes");
        assert_eq!(postcard::from_bytes::<Body>(&bytes).ok(), Some(body));
    }
}
