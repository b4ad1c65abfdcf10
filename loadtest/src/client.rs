//! The HTTP calls a shopper and the back office make, with their answers classified.
//! Shoppers go through [`Lanes`], the lean path sized for load; the back office (seeding,
//! SKU reads, `/metrics`) through reqwest, a few calls per run.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::lanes::Lanes;
use crate::{Error, Scenario};

pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_key: Option<String>,
    shop: Lanes,
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
        Ok(Self {
            http,
            base: base.to_owned(),
            admin_key: scenario.admin_key.clone(),
            shop: Lanes::new(
                base,
                scenario.channel_key.as_deref(),
                usize::try_from(scenario.concurrency)?,
            )?,
        })
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
            let response = request.send().await?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(Error::from(format!(
                    "seeding {sku}: {} {}",
                    response.status(),
                    response.text().await?
                )))
            }
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

    pub async fn get_hold(&self, id: &str) -> Result<Value, Error> {
        let reply = self
            .shop
            .send(Method::GET, &format!("/v1/holds/{id}"), &[], None)
            .await?;
        if reply.status != 200 {
            return Err(format!("GET hold {id}: {}", reply.status).into());
        }
        Ok(serde_json::from_slice(&reply.body)?)
    }

    pub async fn availability(&self, skus: &[&str]) -> Result<(), Error> {
        // SKU names are the run's own (`sku_name`): letters, digits and dashes.
        let query: Vec<String> = skus.iter().map(|sku| format!("sku={sku}")).collect();
        let path = format!("/v1/availability?{}", query.join("&"));
        let reply = self.shop.send(Method::GET, &path, &[], None).await?;
        match reply.status {
            200 => Ok(()),
            other => Err(format!("availability: {other}").into()),
        }
    }

    /// `body` is the hold request's JSON, reused as is on every retry.
    pub async fn hold(&self, key: &str, body: &Bytes, ticket: Option<&str>) -> HoldReply {
        let mut headers = vec![("idempotency-key", key)];
        if let Some(ticket) = ticket {
            headers.push(("queue-ticket", ticket));
        }
        let reply = match self
            .shop
            .send(Method::POST, "/v1/holds", &headers, Some(body.clone()))
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

    pub async fn act(&self, id: &str, action: &str) -> ActionReply {
        let path = format!("/v1/holds/{id}/{action}");
        match self.shop.send(Method::POST, &path, &[], None).await {
            Ok(reply) if (200..300).contains(&reply.status) => ActionReply::Done,
            Ok(reply) if reply.status >= 500 => ActionReply::Unknown,
            Ok(reply) => ActionReply::Refused(reply.status),
            Err(_) => ActionReply::Unknown,
        }
    }
}

/// The fields of a hold's answer the harness looks at (201, 409 and 429 bodies alike).
#[derive(Default, Deserialize)]
struct HoldAnswer {
    hold_id: Option<String>,
    #[serde(rename = "type")]
    problem: Option<String>,
    ticket: Option<String>,
}
