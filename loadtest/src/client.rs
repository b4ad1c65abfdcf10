//! The HTTP calls a shopper and the back office make, with their answers classified.

use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::{Error, Scenario};

pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_key: Option<String>,
    channel_key: Option<String>,
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
            channel_key: scenario.channel_key.clone(),
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

    fn shopper(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.channel_key {
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
        let response = self
            .shopper(self.http.get(self.url(&format!("/v1/holds/{id}"))))
            .send()
            .await?;
        Ok(response.error_for_status()?.json().await?)
    }

    pub async fn availability(&self, skus: &[&str]) -> Result<(), Error> {
        let query: Vec<(&str, &str)> = skus.iter().map(|sku| ("sku", *sku)).collect();
        let request = self.shopper(self.http.get(self.url("/v1/availability")).query(&query));
        request.send().await?.error_for_status()?;
        Ok(())
    }

    pub async fn hold(&self, key: &str, body: &Value, ticket: Option<&str>) -> HoldReply {
        let mut request = self
            .shopper(self.http.post(self.url("/v1/holds")))
            .header("Idempotency-Key", key)
            .json(body);
        if let Some(ticket) = ticket {
            request = request.header("Queue-Ticket", ticket);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => return HoldReply::Failed(err.to_string()),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(1), Duration::from_secs);
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status {
            201 => match body["hold_id"].as_str() {
                Some(id) => HoldReply::Held(id.to_owned()),
                None => HoldReply::Failed("201 without hold_id".into()),
            },
            409 if body["type"] == "/problems/sold-out" => HoldReply::SoldOut,
            429 => HoldReply::QueueFull {
                retry_after,
                ticket: body["ticket"].as_str().map(str::to_owned),
            },
            other => HoldReply::Failed(format!("{other}: {body}")),
        }
    }

    pub async fn act(&self, id: &str, action: &str) -> ActionReply {
        let request = self.shopper(
            self.http
                .post(self.url(&format!("/v1/holds/{id}/{action}"))),
        );
        match request.send().await {
            Ok(response) if response.status().is_success() => ActionReply::Done,
            Ok(response) if response.status().is_server_error() => ActionReply::Unknown,
            Ok(response) => ActionReply::Refused(response.status().as_u16()),
            Err(_) => ActionReply::Unknown,
        }
    }
}
