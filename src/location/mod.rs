//! Stock locations (warehouses and stores) and the channels' routing policies: which
//! locations a channel may sell from and in what order a hold line takes units there.
//! The stock itself lives in each SKU's actor ([`crate::sku::sites`]); this registry only
//! says where a line may go, so routing and reserving stay one step in the actor.

pub mod routing;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::domain::{Channel, LocationId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocationKind {
    #[default]
    Warehouse,
    Store,
}

/// Whether a location takes new holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocationStatus {
    /// Takes holds routed to it.
    #[default]
    Active,
    /// Takes no new holds (holds it has keep their units there).
    Paused,
    /// Takes only lines pinned to it (click and collect).
    PickupOnly,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: LocationId,
    pub name: String,
    pub kind: LocationKind,
    pub status: LocationStatus,
    /// Lower first under the `priority` policy, and to break ties under the others.
    pub priority: u32,
    /// Matched against a hold's `ship_to.region` by the `nearest` policy.
    pub region: Option<String>,
}

impl Location {
    /// The default location as it is until someone describes it.
    pub fn default_location() -> Self {
        Self {
            id: LocationId::default_location(),
            name: "Default".into(),
            kind: LocationKind::Warehouse,
            status: LocationStatus::Active,
            priority: 0,
            region: None,
        }
    }
}

/// How a channel's hold lines are routed to locations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Lowest priority number first.
    #[default]
    Priority,
    /// The location with the most units available first.
    MostStock,
    /// The whole cart from as few locations as possible, across its SKUs.
    FewestLocations,
    /// Locations in the hold's `ship_to.region` first, then by priority.
    Nearest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPolicy {
    pub channel: Channel,
    pub routing: Routing,
    /// The locations the channel may sell from; every location when `None`.
    pub locations: Option<Vec<LocationId>>,
    /// Whether a line may be split over locations when no one location can fill it.
    pub allow_split: bool,
}

impl ChannelPolicy {
    pub fn default_for(channel: Channel) -> Self {
        Self {
            channel,
            routing: Routing::Priority,
            locations: None,
            allow_split: true,
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Named locations, and `default` once it was described.
    locations: BTreeMap<LocationId, Location>,
    policies: BTreeMap<Channel, Arc<ChannelPolicy>>,
    /// Every location, `default` first: what routing reads for each hold, rebuilt when a
    /// location changes so a hold shares it instead of copying each location.
    listed: Arc<[Location]>,
}

impl Inner {
    fn relist(&mut self) {
        let mut all = Vec::with_capacity(self.locations.len() + 1);
        if !self.locations.contains_key(&LocationId::default_location()) {
            all.push(Location::default_location());
        }
        all.extend(self.locations.values().cloned());
        all.sort_by_key(|location| (!location.id.is_default(), location.id.clone()));
        self.listed = all.into();
    }
}

/// Why a location or a policy cannot be stored.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("{0}")]
    Full(String),
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Conflict(String),
}

fn unknown(id: &LocationId) -> LocationError {
    LocationError::Unknown(format!(
        "unknown location {id}; PUT /v1/locations/{id} first"
    ))
}

pub struct Locations {
    inner: RwLock<Inner>,
    /// Whether any location (`default` included) was ever described: read for every hold,
    /// so a flag rather than the lock shared by every request thread.
    described: std::sync::atomic::AtomicBool,
    locations_max: usize,
    policies_max: usize,
}

impl Locations {
    pub fn new(locations_max: usize, policies_max: usize) -> Self {
        let mut inner = Inner::default();
        inner.relist();
        Self {
            inner: RwLock::new(inner),
            described: Default::default(),
            locations_max,
            policies_max,
        }
    }

    /// Why `location` cannot be stored now, if it cannot.
    pub fn check(&self, location: &Location) -> Result<(), LocationError> {
        let inner = self.inner.read();
        let named = inner.locations.keys().filter(|id| !id.is_default()).count();
        let new = !location.id.is_default() && !inner.locations.contains_key(&location.id);
        if new && named >= self.locations_max {
            return Err(LocationError::Full(format!(
                "{named} locations are kept, the configured maximum (--locations-max)"
            )));
        }
        Ok(())
    }

    /// Stores or replaces a location (checked, or replayed).
    pub fn put(&self, location: Location) {
        let mut inner = self.inner.write();
        inner.locations.insert(location.id.clone(), location);
        inner.relist();
        self.described
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether any location was described: until then every line is at `default`.
    pub fn described(&self) -> bool {
        self.described.load(std::sync::atomic::Ordering::Acquire)
    }

    /// `Ok` for a location that exists (`default` always), else why not.
    pub fn require(&self, id: &LocationId) -> Result<(), LocationError> {
        match id.is_default() || self.inner.read().locations.contains_key(id) {
            true => Ok(()),
            false => Err(unknown(id)),
        }
    }

    pub fn get(&self, id: &LocationId) -> Option<Location> {
        let inner = self.inner.read();
        match inner.locations.get(id) {
            Some(location) => Some(location.clone()),
            None if id.is_default() => Some(Location::default_location()),
            None => None,
        }
    }

    /// Every location, `default` first, then by id.
    pub fn all(&self) -> Arc<[Location]> {
        Arc::clone(&self.inner.read().listed)
    }

    /// Why `policy` cannot be stored now, if it cannot.
    pub fn check_policy(&self, policy: &ChannelPolicy) -> Result<(), LocationError> {
        let inner = self.inner.read();
        if !inner.policies.contains_key(&policy.channel)
            && inner.policies.len() >= self.policies_max
        {
            return Err(LocationError::Full(format!(
                "{} channels have a policy, the configured maximum (--channel-policies-max)",
                inner.policies.len()
            )));
        }
        for id in policy.locations.iter().flatten() {
            if !id.is_default() && !inner.locations.contains_key(id) {
                return Err(unknown(id));
            }
        }
        Ok(())
    }

    pub fn put_policy(&self, policy: ChannelPolicy) {
        self.inner
            .write()
            .policies
            .insert(policy.channel.clone(), Arc::new(policy));
    }

    /// The channel's policy, or the default one (priority, every location, splits allowed).
    pub fn policy(&self, channel: &Channel) -> Arc<ChannelPolicy> {
        self.inner
            .read()
            .policies
            .get(channel)
            .cloned()
            .unwrap_or_else(|| Arc::new(ChannelPolicy::default_for(channel.clone())))
    }

    /// Every location and policy, for a snapshot.
    pub fn contents(&self) -> (Vec<Location>, Vec<ChannelPolicy>) {
        let inner = self.inner.read();
        (
            inner.locations.values().cloned().collect(),
            inner.policies.values().map(|p| (**p).clone()).collect(),
        )
    }
}
