//! Bearer keys: the admin key for stock, one key per channel for holds. A channel key's
//! holds are that channel's; the admin key may act for any channel. With no key
//! configured the server is open (and `config` keeps it on loopback).

use actix_web::http::header;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::Settings;
use crate::domain::Channel;

/// The token of `Bearer <token>`; the scheme name is case-insensitive (RFC 9110 11.1),
/// and some clients send `bearer`.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Channel(Channel),
    /// No keys are configured.
    Open,
}

pub struct Auth {
    admin_key: Option<Vec<u8>>,
    channel_keys: Vec<(Channel, Vec<u8>)>,
}

impl Auth {
    pub fn new(settings: &Settings) -> Self {
        Self {
            admin_key: settings.admin_key.as_ref().map(|k| k.as_bytes().to_vec()),
            channel_keys: settings
                .channel_keys
                .iter()
                .map(|(channel, key)| (channel.clone(), key.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn is_open(&self) -> bool {
        self.admin_key.is_none() && self.channel_keys.is_empty()
    }

    /// Checks the bearer key against every configured key, each in constant time and all
    /// of them every time, so timing tells nothing about which key nearly matched.
    pub fn authenticate(&self, request: &HttpRequest) -> Result<Principal, ApiError> {
        if self.is_open() {
            return Ok(Principal::Open);
        }
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)?
            .as_bytes();
        let mut principal = None;
        if let Some(admin) = &self.admin_key {
            if bool::from(admin.as_slice().ct_eq(presented)) {
                principal = Some(Principal::Admin);
            }
        }
        for (channel, key) in &self.channel_keys {
            if bool::from(key.as_slice().ct_eq(presented)) {
                principal = Some(Principal::Channel(channel.clone()));
            }
        }
        principal.ok_or(ApiError::Unauthorized)
    }

    /// `channel` as the configured channel of that name, if there is one: holds on it then
    /// share the configuration's allocation instead of each keeping its own copy.
    pub fn canonical(&self, channel: Channel) -> Channel {
        self.channel_keys
            .iter()
            .find(|(known, _)| *known == channel)
            .map_or(channel, |(known, _)| known.clone())
    }

    pub fn admin(&self, request: &HttpRequest) -> Result<(), ApiError> {
        match self.authenticate(request)? {
            Principal::Admin | Principal::Open => Ok(()),
            Principal::Channel(_) => Err(ApiError::Forbidden("this needs the admin key".into())),
        }
    }
}

impl Principal {
    /// The channel a new hold draws on: the key's own channel, or for the admin (and in
    /// open mode) the one the body names.
    pub fn hold_channel(&self, named: Option<Channel>) -> Result<Channel, ApiError> {
        match (self, named) {
            (Self::Channel(own), Some(named)) if *own != named => Err(ApiError::Forbidden(
                format!("this key is for channel {own}, not {named}"),
            )),
            (Self::Channel(own), _) => Ok(own.clone()),
            (Self::Admin | Self::Open, named) => Ok(named.unwrap_or_else(Channel::default_channel)),
        }
    }

    /// A channel key sees and changes only its own channel's holds.
    pub fn may_access(&self, hold_channel: &Channel) -> Result<(), ApiError> {
        match self {
            Self::Channel(own) if own != hold_channel => Err(ApiError::Forbidden(format!(
                "this key is for channel {own}; the hold belongs to another channel"
            ))),
            _ => Ok(()),
        }
    }
}
