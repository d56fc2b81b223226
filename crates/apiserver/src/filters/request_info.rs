//! Request info (upstream's `WithRequestInfo`): the verb, API group, version, namespace,
//! resource, subresource and name read off the method, path and query
//! ([`crate::request::parse`]), and the decoded query, for every filter after it.

use std::collections::HashMap;
use std::convert::Infallible;

use tower::Service;

use super::{BoxFuture, Filter, Query};
use crate::body::{Request, Response};
use crate::request;

/// The request-info filter.
#[derive(Debug, Clone, Default)]
pub struct ParseRequestInfo;

/// The query string's parameters, percent-decoded (`+` is a space); the first of a repeated
/// name wins, as Go's `url.Values.Get`.
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut parsed = HashMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        parsed
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    parsed
}

impl Filter for ParseRequestInfo {
    fn call<S>(&self, mut request: Request, mut next: S) -> BoxFuture
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
        S::Future: Send,
    {
        let query = parse_query(request.uri().query());
        // The Python client sends `watch=True`.
        let watch = query.get("watch").is_some_and(|w| request::query_bool(w));
        let info = request::parse(request.method().as_str(), request.uri().path(), watch);
        request.extensions_mut().insert(info);
        request
            .extensions_mut()
            .insert(crate::journey::Stamps::received());
        request.extensions_mut().insert(Query(query));
        Box::pin(next.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::testing::{get, Reached};
    use crate::filters::FilterLayer;
    use crate::request::RequestInfo;
    use tower::{Layer, ServiceExt};

    #[test]
    fn queries_are_decoded() {
        let q = parse_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&watch=0&x",
        ));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "");
        assert!(parse_query(None).is_empty());
    }

    #[tokio::test]
    async fn the_next_filter_gets_the_request_info() {
        let reached = Reached::default();
        FilterLayer(ParseRequestInfo)
            .layer(reached.service())
            .oneshot(get(
                "/api/v1/namespaces/default/pods?watch=True&labelSelector=a%3Db",
            ))
            .await
            .expect("infallible");
        let parts = reached.0.lock().expect("lock");
        let info = parts[0].extensions.get::<RequestInfo>().expect("info");
        assert_eq!(
            (
                info.verb.as_str(),
                info.resource.as_str(),
                info.namespace.as_str()
            ),
            ("watch", "pods", "default")
        );
        let query = parts[0].extensions.get::<Query>().expect("query");
        assert_eq!(query.0["labelSelector"], "a=b");
    }
}
