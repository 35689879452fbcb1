//! Who decides tokens in a service: its own configuration, or talea-scope.
//!
//! Shared by talead and the fan-out, which take the same variables
//! (`TALEA_SCOPE_URL` + `TALEA_SCOPE_SERVICE_TOKEN`, else `TALEA_API_TOKEN`
//! and `TALEA_TOKENS_FILE`) and must decide identically.

use std::path::Path;
use std::sync::Arc;

use talea_telemetry::AuthMetrics;

use crate::{
    Authenticator, ConfigError, ScopeClient, ScopeClientConfig, ScopeClientError, Secret, TokenSet,
};

/// Where a service's token decisions come from.
#[derive(Debug)]
pub enum TokenSource {
    /// Tokens configured in this process (possibly none yet).
    Local(TokenSet),
    /// talea-scope, through a caching client.
    Scope(ScopeClientConfig),
}

/// A token configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// `TALEA_SCOPE_URL` without the token to present to it.
    #[error("TALEA_SCOPE_URL is set but TALEA_SCOPE_SERVICE_TOKEN is not")]
    MissingServiceToken,
    /// The scope client's settings are invalid.
    #[error("TALEA_SCOPE_URL: {0}")]
    Scope(#[from] ScopeClientError),
    /// The tokens file is unreadable or invalid.
    #[error(transparent)]
    Tokens(#[from] ConfigError),
}

impl TokenSource {
    /// Chooses from the variables: talea-scope when `scope_url` is set
    /// (local tokens are then ignored, with a warning), else the local tokens.
    pub fn configure(
        scope_url: Option<&str>,
        scope_service_token: Option<&Secret>,
        api_token: Option<&Secret>,
        tokens_file: Option<&Path>,
    ) -> Result<TokenSource, SourceError> {
        if let Some(url) = scope_url {
            let Some(service_token) = scope_service_token else {
                return Err(SourceError::MissingServiceToken);
            };
            if api_token.is_some() || tokens_file.is_some() {
                // `talead init` writes TALEA_API_TOKEN to .env, so this is
                // common; the point is that it authenticates nothing here.
                tracing::warn!(
                    "TALEA_SCOPE_URL is set: TALEA_API_TOKEN and TALEA_TOKENS_FILE are ignored \
                     here (configure them on talea-scope)"
                );
            }
            let config = ScopeClientConfig::new(url.to_owned(), service_token.clone());
            config.check()?;
            tracing::info!("tokens decided by talea-scope");
            return Ok(TokenSource::Scope(config));
        }
        Ok(TokenSource::Local(TokenSet::load(api_token, tokens_file)?))
    }

    /// True when local tokens are configured and there are none.
    pub fn is_empty(&self) -> bool {
        matches!(self, TokenSource::Local(set) if set.is_empty())
    }

    /// The authenticator, counting into `metrics`.
    pub fn into_authenticator(
        self,
        metrics: AuthMetrics,
    ) -> Result<Arc<dyn Authenticator>, SourceError> {
        Ok(match self {
            TokenSource::Local(set) => Arc::new(set),
            TokenSource::Scope(config) => Arc::new(ScopeClient::new(config, metrics)?),
        })
    }
}
