//! The HTTP calls a shopper and the back office make, with their answers classified.
//! Shoppers go through [`Lanes`], the lean path sized for load; the back office (seeding,
//! SKU reads, `/metrics`) through reqwest, a few calls per run.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::lanes::{Lanes, Reply};
use crate::scenario::Quota;
use crate::{Error, Scenario};

pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_key: Option<String>,
    shop: Lanes,
    /// `Authorization` of the shoppers when they are of one channel (the key's, if any).
    single_bearer: Option<String>,
    /// `Authorization` of each named shopper channel (None against an open server).
    channel_bearers: BTreeMap<String, Option<String>>,
}

/// What a hold attempt came back with.
pub enum HoldReply {
    Held(String),
    SoldOut,
    QueueFull {
        retry_after: Duration,
        ticket: Option<String>,
    },
    Failed(String),
}

/// What a confirm or release came back with.
pub enum ActionReply {
    Done,
    Refused(u16),
    /// No answer: the change may or may not have happened.
    Unknown,
}

impl Client {
    pub fn new(base: &str, scenario: &Scenario) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(usize::try_from(scenario.concurrency).unwrap_or(256))
            .build()?;
        let bearer = |key: &String| format!("Bearer {key}");
        // A key that cannot be a header fails here, not as an error on every request.
        let keys = scenario.channel_keys.values().chain(&scenario.channel_key);
        for key in keys.chain(&scenario.admin_key) {
            http::HeaderValue::try_from(bearer(key))
                .map_err(|_| "a key has characters a header cannot carry")?;
        }
        let channel_bearers = scenario
            .channels
            .iter()
            .map(|(channel, _)| {
                // A channel without a key of its own shops with the admin key, naming itself.
                let key = scenario
                    .channel_keys
                    .get(channel)
                    .or(scenario.admin_key.as_ref());
                (channel.clone(), key.map(bearer))
            })
            .collect();
        Ok(Self {
            http,
            base: base.to_owned(),
            admin_key: scenario.admin_key.clone(),
            shop: Lanes::new(base, usize::try_from(scenario.concurrency)?)?,
            single_bearer: scenario.channel_key.as_ref().map(bearer),
            channel_bearers,
        })
    }

    /// A shopper request of `channel` (None: the single channel), with its key.
    async fn shop(
        &self,
        channel: Option<&str>,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Option<Bytes>,
    ) -> Result<Reply, Error> {
        let bearer = match channel {
            None => self.single_bearer.as_ref(),
            Some(channel) => self
                .channel_bearers
                .get(channel)
                .ok_or_else(|| format!("channel {channel} is not one of the scenario's"))?
                .as_ref(),
        };
        match bearer {
            Some(bearer) => {
                let mut with_key = Vec::with_capacity(headers.len() + 1);
                with_key.push(("authorization", bearer.as_str()));
                with_key.extend_from_slice(headers);
                self.shop.send(method, path, &with_key, body).await
            }
            None => self.shop.send(method, path, headers, body).await,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub async fn metrics(&self) -> Result<String, Error> {
        Ok(self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?)
    }

    /// Creates this run's SKUs with `stock` units each; returns their names.
    pub async fn seed(&self, scenario: &Scenario) -> Result<Vec<String>, Error> {
        let skus: Vec<String> = (0..scenario.skus).map(|i| scenario.sku_name(i)).collect();
        let puts = stream::iter(skus.iter().map(|sku| async move {
            let body = json!({"on_hand": scenario.stock, "safety_stock": 0});
            let request = self
                .admin(self.http.put(self.url(&format!("/v1/skus/{sku}"))))
                .json(&body);
            expect_success(request, &format!("seeding {sku}")).await?;
            if !scenario.allocation.is_empty() {
                let body = AllocationBody {
                    channels: scenario.allocation.iter().map(|(c, q)| (c, q)).collect(),
                };
                let request = self
                    .admin(
                        self.http
                            .put(self.url(&format!("/v1/skus/{sku}/allocation"))),
                    )
                    .json(&body);
                expect_success(request, &format!("allocating {sku}")).await?;
            }
            Ok::<(), Error>(())
        }));
        let results: Vec<Result<(), Error>> = puts.buffer_unordered(32).collect().await;
        results.into_iter().collect::<Result<(), Error>>()?;
        Ok(skus)
    }

    pub async fn sku(&self, sku: &str) -> Result<Value, Error> {
        let response = self
            .admin(self.http.get(self.url(&format!("/v1/skus/{sku}"))))
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    pub async fn get_hold(&self, channel: Option<&str>, id: &str) -> Result<Value, Error> {
        let reply = self
            .shop(channel, Method::GET, &format!("/v1/holds/{id}"), &[], None)
            .await?;
        if reply.status != 200 {
            return Err(format!("GET hold {id}: {}", reply.status).into());
        }
        Ok(serde_json::from_slice(&reply.body)?)
    }

    pub async fn availability(&self, channel: Option<&str>, skus: &[&str]) -> Result<(), Error> {
        // SKU names are the run's own (`sku_name`): letters, digits and dashes.
        let query: Vec<String> = skus.iter().map(|sku| format!("sku={sku}")).collect();
        let path = format!("/v1/availability?{}", query.join("&"));
        let reply = self.shop(channel, Method::GET, &path, &[], None).await?;
        match reply.status {
            200 => Ok(()),
            other => Err(format!("availability: {other}").into()),
        }
    }

    /// `body` is the hold request's JSON, reused as is on every retry.
    pub async fn hold(
        &self,
        channel: Option<&str>,
        key: &str,
        body: &Bytes,
        ticket: Option<&str>,
    ) -> HoldReply {
        let mut headers = vec![("idempotency-key", key)];
        if let Some(ticket) = ticket {
            headers.push(("queue-ticket", ticket));
        }
        let reply = match self
            .shop(
                channel,
                Method::POST,
                "/v1/holds",
                &headers,
                Some(body.clone()),
            )
            .await
        {
            Ok(reply) => reply,
            Err(err) => return HoldReply::Failed(err.to_string()),
        };
        let answer: HoldAnswer = serde_json::from_slice(&reply.body).unwrap_or_default();
        match reply.status {
            201 => match answer.hold_id {
                Some(id) => HoldReply::Held(id),
                None => HoldReply::Failed("201 without hold_id".into()),
            },
            409 if answer.problem.as_deref() == Some("/problems/sold-out") => HoldReply::SoldOut,
            429 => HoldReply::QueueFull {
                retry_after: reply.retry_after.unwrap_or(Duration::from_secs(1)),
                ticket: answer.ticket,
            },
            status => HoldReply::Failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&reply.body)
            )),
        }
    }

    pub async fn act(&self, channel: Option<&str>, id: &str, action: &str) -> ActionReply {
        let path = format!("/v1/holds/{id}/{action}");
        match self.shop(channel, Method::POST, &path, &[], None).await {
            Ok(reply) if (200..300).contains(&reply.status) => ActionReply::Done,
            Ok(reply) if reply.status >= 500 => ActionReply::Unknown,
            Ok(reply) => ActionReply::Refused(reply.status),
            Err(_) => ActionReply::Unknown,
        }
    }
}

/// `PUT /v1/skus/{sku}/allocation`.
#[derive(Serialize)]
struct AllocationBody<'a> {
    channels: BTreeMap<&'a String, &'a Quota>,
}

/// Sends a back-office request; anything but 2xx is an error naming `what`.
async fn expect_success(request: reqwest::RequestBuilder, what: &str) -> Result<(), Error> {
    let response = request.send().await?;
    if response.status().is_success() {
        return Ok(());
    }
    Err(format!("{what}: {} {}", response.status(), response.text().await?).into())
}

/// The fields of a hold's answer the harness looks at (201, 409 and 429 bodies alike).
#[derive(Default, Deserialize)]
struct HoldAnswer {
    hold_id: Option<String>,
    #[serde(rename = "type")]
    problem: Option<String>,
    ticket: Option<String>,
}
