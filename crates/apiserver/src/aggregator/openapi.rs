//! The OpenAPI v3 documents of remote APIServices, as upstream's aggregator serves them:
//! `/openapi/v3` lists each available remote group-version (`apis/<group>/<version>`), and its
//! document is fetched from the APIService's server when asked for, from where that server's own
//! `/openapi/v3` index says it is.

use bytes::Bytes;
use serde_json::Value;

use super::available::{fetch, FetchError};
use super::Aggregator;
use crate::status::ApiError;

impl Aggregator {
    /// The paths (`apis/<group>/<version>`) of the available remote group-versions, for the
    /// `/openapi/v3` index.
    pub fn openapi_v3_paths(&self) -> Vec<String> {
        self.apiservices
            .remotes
            .read()
            .values()
            .flat_map(|versions| versions.values())
            .filter(|remote| remote.available)
            .map(|remote| format!("apis/{}/{}", remote.group, remote.version))
            .collect()
    }

    /// The OpenAPI v3 document at `path` (`apis/<group>/<version>`) when a remote APIService
    /// serves that group-version (`None` otherwise), fetched from its server.
    pub async fn openapi_v3_document(&self, path: &str) -> Option<Result<Bytes, ApiError>> {
        let (group, version) = path.strip_prefix("apis/")?.split_once('/')?;
        let remote = self.remote_for(group, version)?;
        let unavailable = |why: String| {
            tracing::debug!(apiservice = %remote.name, %why, "fetching an OpenAPI v3 document");
            ApiError::unavailable(format!(
                "the OpenAPI document of {group}/{version} could not be fetched from its APIService"
            ))
        };
        let why = |error: FetchError| match error {
            FetchError::Unreachable(why) | FetchError::Failed(_, why) => why,
            FetchError::TimedOut(url) => format!("timed out waiting for {url}"),
        };
        let fetched = async {
            let index = fetch(self, &remote, "/openapi/v3").await.map_err(why)?;
            let url = document_url(&index, path)
                .ok_or_else(|| format!("its /openapi/v3 does not list {path}"))?;
            fetch(self, &remote, &url).await.map_err(why)
        };
        Some(fetched.await.map_err(unavailable))
    }
}

/// Where a server's `/openapi/v3` index says the document of `path` is.
fn document_url(index: &[u8], path: &str) -> Option<String> {
    let index: Value = serde_json::from_slice(index).ok()?;
    let url = index["paths"][path]["serverRelativeURL"].as_str()?;
    url.starts_with('/').then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_index_names_the_document() {
        let index = br#"{"paths": {"apis/wardle.example.com/v1alpha1":
            {"serverRelativeURL": "/openapi/v3/apis/wardle.example.com/v1alpha1?hash=AB"},
            "apis/evil/v1": {"serverRelativeURL": "https://elsewhere/"}}}"#;
        assert_eq!(
            document_url(index, "apis/wardle.example.com/v1alpha1").as_deref(),
            Some("/openapi/v3/apis/wardle.example.com/v1alpha1?hash=AB")
        );
        assert_eq!(document_url(index, "apis/other/v1"), None);
        // Only a path on the same server is followed.
        assert_eq!(document_url(index, "apis/evil/v1"), None);
        assert_eq!(document_url(b"not json", "apis/x/v1"), None);
    }
}
