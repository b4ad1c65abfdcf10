//! A stand-in server for the harness's own tests: it answers every request with the same
//! response after `delay`, one request at a time per connection, and counts the
//! connections it accepts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Returns the server's base URL and its count of accepted connections.
pub async fn start(answer: &'static str, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let base = format!("http://{}", listener.local_addr().expect("has an address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, answer, delay));
        }
    });
    (base, accepted)
}

async fn serve(mut stream: TcpStream, answer: &'static str, delay: Duration) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf).await {
        seen.extend_from_slice(&buf[..n]);
        while let Some(request_len) = complete_request(&seen) {
            seen.drain(..request_len);
            tokio::time::sleep(delay).await;
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
    }
}

/// Length of the first request in `seen` (head and `Content-Length` body), once all there.
fn complete_request(seen: &[u8]) -> Option<usize> {
    let head_end = seen.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (seen.len() >= head_end + body_len).then_some(head_end + body_len)
}
