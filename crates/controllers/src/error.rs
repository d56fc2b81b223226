//! What every controller's sync can fail with: a call to the API server. Controllers with
//! failures of their own ([`crate::deployment::DeploymentError`], …) wrap this [`Error`] in a
//! variant of their enum.
//!
//! An [`Error::Api`]'s message is what the controller was doing (`updating replicaset status`);
//! the client's error is its [`source`](std::error::Error::source). Logs print the whole chain
//! with [`ErrorChain`] (`updating replicaset status: ApiError: …`).

use std::fmt;

/// A failed call to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call made while doing `action` failed.
    #[error("{action}")]
    Api {
        /// What the call was for, as the logs say it (`updating replicaset status`).
        action: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A call failed where the client's error says enough (a read).
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// A service-account token could not be signed.
    #[error("signing a token: {0}")]
    Signing(String),
    /// The sync cannot go on until something else happens first (a claim still being
    /// deleted): retried with backoff.
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    /// `source`, which happened while doing `action`.
    pub fn api(action: &'static str, source: kube::Error) -> Error {
        Error::Api { action, source }
    }
}

/// `.context("doing what")` on the result of a client call: its error as [`Error::Api`].
pub(crate) trait ApiContext<T> {
    /// The error, if any, as [`Error::Api`] with `action`.
    fn context(self, action: &'static str) -> Result<T, Error>;
}

impl<T> ApiContext<T> for Result<T, kube::Error> {
    fn context(self, action: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::api(action, source))
    }
}

/// Displays an error followed by each of its sources, `outer: inner: …` — one line for a log.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_action_then_the_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(ErrorChain(&error).to_string(), "outer: inner");
        let api = Error::api(
            "updating replicaset status",
            kube::Error::LinesCodecMaxLineLengthExceeded,
        );
        assert_eq!(api.to_string(), "updating replicaset status");
        assert_eq!(
            ErrorChain(&api).to_string(),
            format!(
                "updating replicaset status: {}",
                kube::Error::LinesCodecMaxLineLengthExceeded
            )
        );
    }
}
