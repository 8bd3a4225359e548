//! Store errors.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. canceling a finished run).
    #[error("{0}")]
    Conflict(String),
    /// A write about an attempt that is not the caller's current one.
    #[error("stale attempt {0}: it is not current for this agent")]
    Stale(i64),
    /// Input the store refuses.
    #[error("{0}")]
    Invalid(String),
    /// The database failed or is unreachable.
    #[error("database error: {message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a driver error.
    pub fn backend(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Backend {
            message: message.into(),
            source: Box::new(source),
        }
    }
}
