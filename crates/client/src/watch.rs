//! The informer the node-side components share: a reflector that keeps a store in line with a
//! watch and wakes one sync loop after every event.

use std::sync::Arc;

use futures::StreamExt as _;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Api;
use tokio::sync::Notify;

/// Keeps `writer`'s store in line with `api` (relisting with kube-runtime's default backoff
/// after an error), waking `changed` after each event; `what` names the watch in the logs.
/// Runs until the task is dropped.
pub async fn reflect<K>(api: Api<K>, writer: Writer<K>, changed: Arc<Notify>, what: &'static str)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(_) => changed.notify_one(),
            Err(error) => tracing::debug!(%error, "{what} watch error, retrying"),
        }
    }
}
