use serde::{Deserialize, Serialize};

/// Where a hold is in its life: `held → confirmed → fulfilled`, or `held → released | expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HoldStatus {
    Held,
    Confirmed,
    Released,
    Expired,
    Fulfilled,
}

impl HoldStatus {
    /// True once the hold can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Released | Self::Expired | Self::Fulfilled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "held",
            Self::Confirmed => "confirmed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Fulfilled => "fulfilled",
        }
    }
}

/// Why `on_hand` was adjusted; kept on the journal event for audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustReason {
    Received,
    Damaged,
    Lost,
    Found,
    /// An inspected return, back on sale. Uninspected returns are not sent to holdfast.
    Returned,
    CycleCount,
    PosSale,
}
