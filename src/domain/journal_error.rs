//! Why the journal cannot make a change durable now. Shared by the core, which refuses
//! work with it (503), and the store, whose writer reports it.

#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("the journal cannot write ({0}); it retries on its own")]
    Failed(String),
    #[error("the journal writer has stopped")]
    Stopped,
    #[error("the journal is {backlog} events behind (limit {limit}); retry shortly")]
    Behind { backlog: usize, limit: usize },
}
