//! SIGTERM and SIGINT as the future that stops the server. `main` registers them before
//! the server is built, so a signal during start-up is not fatal: it stops the server as
//! soon as it serves.

use tokio::signal::unix::{signal, Signal, SignalKind};

pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    pub fn register() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn recv(mut self) {
        let name = tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "Shutting down: draining in-flight requests.");
    }
}
