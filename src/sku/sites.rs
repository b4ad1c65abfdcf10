//! Stock per location inside one SKU, and where a hold line's units were taken.
//!
//! A SKU's counters (`on_hand`, `safety_stock`, `held`, `committed`) stay its totals over
//! every location. Named locations keep their own figures here; the default location's
//! are the totals less theirs. A deployment that never names a location (and every data
//! dir from before locations) therefore has no per-location state at all: the SKU is its
//! default location, as it always was.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::LocationId;

/// Units of a hold line taken at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Allocation {
    pub location: LocationId,
    pub quantity: u64,
}

/// Where a line's units were taken. `None`: all at the default location, which is what
/// every line is in a deployment that never named a location; such lines are shown
/// without allocations, byte for byte as before locations existed. One pointer wide (an
/// `Arc<[_]>` is two): it sits on every line of the book, the actors and the image, and
/// at a million holds the second word cost tens of megabytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement(pub Option<Arc<Vec<Allocation>>>);

impl Placement {
    pub fn new(allocations: Vec<Allocation>) -> Self {
        Self(Some(Arc::new(allocations)))
    }

    /// Units per location for a line of `quantity` units.
    pub fn units(&self, quantity: u64) -> Vec<(LocationId, u64)> {
        match &self.0 {
            None => vec![(LocationId::default_location(), quantity)],
            Some(allocations) => allocations
                .iter()
                .map(|a| (a.location.clone(), a.quantity))
                .collect(),
        }
    }

    /// The allocations to show, if the line was placed by location.
    pub fn shown(&self) -> Option<&[Allocation]> {
        self.0.as_deref().map(Vec::as_slice)
    }
}

/// One named location's stock of a SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteStock {
    pub on_hand: u64,
    pub safety_stock: u64,
    /// Units in unpaid hold lines allocated here (rebuilt from the lines after a restart).
    pub held: u64,
    /// Units paid for and not yet shipped from here.
    pub committed: u64,
}

impl SiteStock {
    pub fn sellable(&self) -> u64 {
        self.on_hand.saturating_sub(self.safety_stock)
    }

    pub fn available(&self) -> u64 {
        self.sellable()
            .saturating_sub(self.held)
            .saturating_sub(self.committed)
    }
}

/// The named locations' stock of one SKU, sorted by location (a handful per SKU: a sorted
/// vector is smaller than any map and empty costs nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sites(pub Vec<(LocationId, SiteStock)>);

impl Sites {
    pub fn get(&self, location: &LocationId) -> Option<&SiteStock> {
        let at = self.0.binary_search_by(|(id, _)| id.cmp(location)).ok()?;
        Some(&self.0[at].1)
    }

    /// The named location's stock, added at zero if the SKU had none there.
    pub fn entry(&mut self, location: &LocationId) -> &mut SiteStock {
        let at = match self.0.binary_search_by(|(id, _)| id.cmp(location)) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (location.clone(), SiteStock::default()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// The sum of the named locations' figures.
    pub fn total(&self) -> SiteStock {
        self.0
            .iter()
            .fold(SiteStock::default(), |sum, (_, site)| SiteStock {
                on_hand: sum.on_hand + site.on_hand,
                safety_stock: sum.safety_stock + site.safety_stock,
                held: sum.held + site.held,
                committed: sum.committed + site.committed,
            })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How a line is to be placed, as the channel's policy and the request decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The locations the line may draw from, in the policy's order of preference.
    pub candidates: Arc<[LocationId]>,
    /// Reorder the candidates by units available here, most first (the policy `most_stock`).
    pub most_stock: bool,
    /// Whether a line may be split across locations when no one location can fill it.
    pub allow_split: bool,
    /// Whether the placement is recorded and shown: false while no location is named,
    /// so such a deployment's lines and answers are what they always were.
    pub located: bool,
}

impl Route {
    /// The route of every line while no location is named: all at `default`, unrecorded.
    pub fn unlocated() -> &'static Route {
        static ROUTE: std::sync::LazyLock<Route> = std::sync::LazyLock::new(|| Route {
            candidates: Arc::from(vec![LocationId::default_location()]),
            most_stock: false,
            allow_split: true,
            located: false,
        });
        &ROUTE
    }
}

/// Places `units` over `available` (the candidates' units available, in preference order):
/// the whole line from the first location that can fill it; otherwise, if splitting is
/// allowed, greedily in that order. `Err` carries the most that could have been placed.
pub fn place(
    units: u64,
    available: &[(LocationId, u64)],
    allow_split: bool,
) -> Result<Vec<Allocation>, u64> {
    if let Some((location, _)) = available.iter().find(|(_, free)| *free >= units) {
        return Ok(vec![Allocation {
            location: location.clone(),
            quantity: units,
        }]);
    }
    if !allow_split {
        return Err(available.iter().map(|(_, free)| *free).max().unwrap_or(0));
    }
    let total: u64 = available.iter().map(|(_, free)| *free).sum();
    if total < units {
        return Err(total);
    }
    let mut left = units;
    let mut allocations = Vec::new();
    for (location, free) in available {
        if left == 0 {
            break;
        }
        let take = left.min(*free);
        if take > 0 {
            allocations.push(Allocation {
                location: location.clone(),
                quantity: take,
            });
            left -= take;
        }
    }
    Ok(allocations)
}

/// Most stock moves a SKU remembers for `as_of` feeds; past it the oldest go, and a count
/// taken before what is kept is refused.
pub const MOVES_MAX: usize = 256;

/// A change of a location's `on_hand` that holdfast made or was told of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub location: LocationId,
    pub at_ms: u64,
    /// Units added (received, found) or taken (shipped, damaged); 0 for a reset.
    pub delta: i64,
    /// A reset to a counted figure: what came before it no longer matters, and a count
    /// older than it is stale.
    pub reset: bool,
}

/// `complete_since_ms` of a SKU whose state came from a build that kept no moves: until
/// this build dates a change of it, no count with an `as_of` can be corrected. The first
/// dated change replaces it with its time (every move since the upgrade is dated).
pub const MOVES_UNKNOWN: u64 = u64::MAX;

/// The recent stock moves of one SKU, for feeds counted before they are loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moves {
    pub kept: std::collections::VecDeque<Move>,
    /// Every move since then is kept (0: since the SKU began).
    pub complete_since_ms: u64,
}

impl Moves {
    pub fn record(&mut self, step: Move) {
        if step.reset {
            // Moves before a reset no longer matter: a count older than the reset is
            // refused, and a newer one only looks at what came after it.
            self.kept.retain(|kept| kept.location != step.location);
        }
        self.kept.push_back(step);
        while self.kept.len() > MOVES_MAX {
            if let Some(gone) = self.kept.pop_front() {
                self.complete_since_ms = self.complete_since_ms.max(gone.at_ms);
            }
        }
    }

    /// Units to add to a count of `location` taken at `as_of_ms`, for what moved there
    /// after it; or why the count cannot be used.
    pub fn since(&self, location: &LocationId, as_of_ms: u64) -> Result<i64, String> {
        if self.complete_since_ms == MOVES_UNKNOWN {
            return Err("this SKU's stock moves before this build are not known; send the count without as_of".into());
        }
        if as_of_ms < self.complete_since_ms {
            return Err(format!(
                "as_of {} is older than the stock moves kept for this SKU (from {}); send a newer count",
                crate::clock::rfc3339(as_of_ms),
                crate::clock::rfc3339(self.complete_since_ms)
            ));
        }
        let mut delta: i64 = 0;
        for step in self
            .kept
            .iter()
            .filter(|m| m.at_ms > as_of_ms && m.location == *location)
        {
            if step.reset {
                return Err(format!(
                    "the stock at {location} was set at {}, after this count (as_of {}); the count is stale",
                    crate::clock::rfc3339(step.at_ms),
                    crate::clock::rfc3339(as_of_ms)
                ));
            }
            delta = delta.saturating_add(step.delta);
        }
        Ok(delta)
    }
}
