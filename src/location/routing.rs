//! From a channel's policy and a hold request to each line's [`Route`]: the locations it
//! may draw from, in the order it prefers them. The SKU actor then places the line over
//! them atomically with the reservation (see [`crate::sku::sites::place`]).

use std::sync::Arc;

use super::{LocationStatus, Locations, Routing};
use crate::domain::{Channel, LocationId};
use crate::sku::sites::Route;

/// What a hold request says about where its units may come from.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    pub channel: &'a Channel,
    /// The shopper's region, for the `nearest` policy.
    pub ship_to_region: Option<&'a str>,
    /// Overrides the channel's `allow_split` for this hold.
    pub allow_split: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("unknown location {0}")]
    Unknown(LocationId),
    #[error("channel {channel} does not sell from location {location}")]
    NotForChannel {
        channel: Channel,
        location: LocationId,
    },
    #[error("location {0} is paused and takes no new holds")]
    Paused(LocationId),
}

/// Each line's route (`None`: [`Route::unlocated`]), and whether the cart should be taken
/// from as few locations as possible (the coordinator then orders the candidates by what
/// each can fill).
#[derive(Debug, Clone)]
pub struct Plan {
    pub routes: Vec<Option<Arc<Route>>>,
    pub fewest: bool,
}

impl Locations {
    /// Each line's route; `pins` has a line's pinned location (click and collect), if any.
    pub fn plan(
        &self,
        request: RouteRequest<'_>,
        pins: &[Option<LocationId>],
    ) -> Result<Plan, RouteError> {
        if !self.described() && pins.iter().all(Option::is_none) {
            return Ok(Plan {
                routes: vec![None; pins.len()],
                fewest: false,
            });
        }
        // One snapshot of the locations for the whole plan: `default` and the named ones.
        // Until a named one exists, lines are placed without allocations, as always.
        let all = self.all();
        let located = all.len() > 1;
        let policy = self.policy(request.channel);
        let allowed = |id: &LocationId| {
            policy
                .locations
                .as_ref()
                .is_none_or(|list| list.contains(id))
        };
        let allow_split = request.allow_split.unwrap_or(policy.allow_split);
        let mut open: Vec<&super::Location> = all
            .iter()
            .filter(|location| location.status == LocationStatus::Active && allowed(&location.id))
            .collect();
        match policy.routing {
            Routing::Nearest => open.sort_by_key(|location| {
                let near = request.ship_to_region.is_some()
                    && location.region.as_deref() == request.ship_to_region;
                (!near, location.priority, location.id.clone())
            }),
            _ => open.sort_by_key(|location| (location.priority, location.id.clone())),
        }
        let candidates: Arc<[LocationId]> = open.into_iter().map(|l| l.id.clone()).collect();
        let shared = Arc::new(Route {
            candidates,
            most_stock: policy.routing == Routing::MostStock,
            allow_split,
            located,
        });
        let mut routes = Vec::with_capacity(pins.len());
        for pin in pins {
            let Some(pin) = pin else {
                routes.push(Some(Arc::clone(&shared)));
                continue;
            };
            let location = self
                .get(pin)
                .ok_or_else(|| RouteError::Unknown(pin.clone()))?;
            if !allowed(pin) {
                return Err(RouteError::NotForChannel {
                    channel: request.channel.clone(),
                    location: pin.clone(),
                });
            }
            if location.status == LocationStatus::Paused {
                return Err(RouteError::Paused(pin.clone()));
            }
            routes.push(Some(Arc::new(Route {
                candidates: Arc::from(vec![pin.clone()]),
                most_stock: false,
                allow_split: false,
                located: true,
            })));
        }
        Ok(Plan {
            routes,
            fewest: policy.routing == Routing::FewestLocations,
        })
    }
}

/// The order in which a cart's lines should try `candidates` to come from as few
/// locations as possible: repeatedly the location that can fill the most of the lines not
/// yet covered (ties: the earlier candidate, so priority then id), then the rest in their
/// order. `fills[line][candidate]` says whether that location can fill that whole line.
pub fn fewest_order(candidates: &[LocationId], fills: &[Vec<bool>]) -> Vec<LocationId> {
    let mut uncovered: Vec<usize> = (0..fills.len()).collect();
    let mut order: Vec<usize> = Vec::with_capacity(candidates.len());
    while !uncovered.is_empty() {
        let best = (0..candidates.len())
            .filter(|at| !order.contains(at))
            .map(|at| {
                let covers = uncovered
                    .iter()
                    .filter(|line| fills[**line].get(at).copied().unwrap_or(false))
                    .count();
                (covers, at)
            })
            .filter(|(covers, _)| *covers > 0)
            // Most lines covered; of equals, the earliest candidate.
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let Some((_, at)) = best else { break };
        order.push(at);
        uncovered.retain(|line| !fills[*line].get(at).copied().unwrap_or(false));
    }
    let rest: Vec<usize> = (0..candidates.len())
        .filter(|at| !order.contains(at))
        .collect();
    order
        .into_iter()
        .chain(rest)
        .map(|at| candidates[at].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<LocationId> {
        names
            .iter()
            .map(|n| LocationId::parse(n).expect("id"))
            .collect()
    }

    /// The location that can fill most lines comes first, even if a higher-priority one
    /// can fill one of them; ties go to the earlier (higher-priority) candidate.
    #[test]
    fn fewest_prefers_the_location_that_fills_most_lines() {
        let candidates = ids(&["a", "b", "c"]);
        let fills = vec![
            vec![true, true, false],
            vec![false, true, false],
            vec![false, true, true],
        ];
        assert_eq!(fewest_order(&candidates, &fills), ids(&["b", "a", "c"]));
        let tie = vec![vec![true, true, false], vec![true, true, false]];
        assert_eq!(fewest_order(&candidates, &tie), ids(&["a", "b", "c"]));
        let split = vec![vec![true, false, false], vec![false, false, true]];
        assert_eq!(fewest_order(&candidates, &split), ids(&["a", "c", "b"]));
    }
}
