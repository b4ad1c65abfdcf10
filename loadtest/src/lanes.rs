//! The shoppers' connections to the server: at most `lanes_max` keep-alive HTTP/1.1
//! connections, one request at a time each, over hyper's connection API.
//!
//! Why not reqwest here: the harness shares the machine's cores with the server, and every
//! microsecond it spends is one the server does not get. Through reqwest (its pool, URL
//! parsing, timeouts, a new connection whenever none is idle) a shopper request cost the
//! harness about 60 µs of CPU, which capped an open-loop run near 10k requests/s.
//!
//! A request that finds every lane busy waits for one, first come first served. In an open
//! loop that wait is part of the latency the driver records, as it would be behind a
//! gateway with a fixed pool of upstream connections.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::Error;

/// Longest a connect plus one request and its answer may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Lanes {
    /// `host:port` of the server, for connecting and for the Host header.
    authority: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    free: Semaphore,
}

/// A response, read to the end.
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in whole seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    pub body: Bytes,
}

impl Lanes {
    /// `base` is `http://host:port`.
    pub fn new(base: &str, lanes_max: usize) -> Result<Self, Error> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base}: shoppers speak plain http:// only"))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Self {
            authority,
            idle: Mutex::new(Vec::with_capacity(lanes_max)),
            free: Semaphore::new(lanes_max),
        })
    }

    /// Sends one request on a free lane and reads the whole answer. `headers` are extra
    /// request headers; `body`, when given, is sent as JSON.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Option<Bytes>,
    ) -> Result<Reply, Error> {
        let request = self.request(method, path, headers, body)?;
        let _lane = self.free.acquire().await?;
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| format!("{path}: no answer within {EXCHANGE_TIMEOUT:?}"))?
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Reply, Error> {
        let (mut sender, reused) = match self.ready_idle().await {
            Some(sender) => (sender, true),
            None => (self.connect().await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            // A kept connection the server closed just now (keep-alive timeout) gives back
            // the request unsent: it goes once more on a new connection, which is
            // safe whatever the request is because the server never saw it.
            Err(mut err) => match (reused, err.take_message()) {
                (true, Some(request)) => {
                    sender = self.connect().await?;
                    sender.send_request(request).await?
                }
                _ => return Err(err.into_error().into()),
            },
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.into_body().collect().await?.to_bytes();
        // Only a lane whose exchange completed goes back: after an error its state is unknown.
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.authority.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Ok(match body {
            Some(json) => request
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(json))?,
            None => request.body(Full::default())?,
        })
    }

    /// The idle lane used last, once it is ready: a connection is ready when it has
    /// finished with its last answer, and never if the server has closed it meanwhile.
    async fn ready_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut sender = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
        sender.ready().await.ok()?;
        Some(sender)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Error> {
        let stream = TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // Ends when the server closes the connection or the sender is dropped.
        tokio::spawn(connection);
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::test_server;

    #[tokio::test]
    async fn a_connection_the_server_closed_is_replaced() {
        let answer = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let (base, accepted) = test_server::start(answer, Duration::ZERO).await;
        let lanes = Lanes::new(&base, 1).expect("valid base");
        for _ in 0..3 {
            let reply = lanes
                .send(Method::GET, "/", &[], None)
                .await
                .expect("answered");
            assert_eq!((reply.status, &reply.body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn requests_beyond_the_lanes_wait_for_one_and_reuse_it() {
        let answer =
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n";
        let (base, accepted) = test_server::start(answer, Duration::from_millis(20)).await;
        let lanes = Lanes::new(&base, 3).expect("valid base");
        let sends = (0..12).map(|_| lanes.send(Method::POST, "/", &[], Some(Bytes::from("{}"))));
        for reply in futures_util::future::join_all(sends).await {
            let reply = reply.expect("answered");
            assert_eq!(reply.status, 429);
            assert_eq!(reply.retry_after, Some(Duration::from_secs(2)));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn only_plain_http_bases_are_accepted() {
        assert!(Lanes::new("https://shop.example", 1).is_err());
        assert!(Lanes::new("shop.example:8080", 1).is_err());
        assert!(Lanes::new("http://127.0.0.1:8080/", 1).is_ok());
    }
}
