//! Leader election on a coordination.k8s.io/v1 Lease, as client-go's `leaderelection` does it:
//! a candidate takes the Lease when it is free or its holder stopped renewing for longer than
//! `leaseDurationSeconds`, then renews it every `retry_period`; an update that loses the race
//! gets 409 and the candidate waits. A leader that cannot renew within `renew_deadline` stops
//! its work (upstream exits the process; here the caller decides).
//!
//! `leader_election_master_status{name}` ([`crate::metrics`]) is 1 while the candidate leads.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::Api;

/// Timings, upstream's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a Lease stays valid without renewal (15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up (10 s).
    pub renew_deadline: Duration,
    /// How often candidates try and the leader renews (2 s).
    pub retry_period: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why leadership ended.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be renewed within the renew deadline.
    #[error("lost the lease {0}: not renewed within the deadline")]
    Lost(String),
}

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    config: Config,
}

/// What one attempt found.
enum Attempt {
    Held,
    Other,
}

impl Elector {
    /// A candidate `identity` for the Lease `namespace/name` (upstream's components use
    /// `kube-system/kube-scheduler`, `kube-system/kube-controller-manager`).
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        config: Config,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            config,
        }
    }

    /// Waits until this candidate holds the Lease, then runs `work` while renewing it. Returns
    /// what `work` returns, or [`LeaderError::Lost`] if the Lease slipped away first.
    pub async fn run<F, T>(&self, work: F) -> Result<T, LeaderError>
    where
        F: Future<Output = T>,
    {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Held) => break,
                Ok(Attempt::Other) => {}
                Err(error) => {
                    tracing::debug!(%error, lease = %self.name, "leader election attempt")
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
        tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
        let status = self.status();
        status.set(1);
        let renew = async {
            let mut last_renewal = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(self.config.retry_period).await;
                match self.try_acquire_or_renew().await {
                    Ok(Attempt::Held) => last_renewal = tokio::time::Instant::now(),
                    Ok(Attempt::Other) => return LeaderError::Lost(self.name.clone()),
                    Err(error) => tracing::warn!(%error, lease = %self.name, "renewing the lease"),
                }
                if last_renewal.elapsed() > self.config.renew_deadline {
                    return LeaderError::Lost(self.name.clone());
                }
            }
        };
        let result = tokio::select! {
            result = work => Ok(result),
            lost = renew => Err(lost),
        };
        status.set(0);
        result
    }

    /// This Lease's `leader_election_master_status` series.
    fn status(&self) -> prometheus_client::metrics::gauge::Gauge {
        crate::metrics::LEADER_ELECTION_MASTER_STATUS
            .get_or_create(&crate::metrics::LeaseLabels {
                name: self.name.as_str().into(),
            })
            .clone()
    }

    /// Gives the Lease up if this candidate holds it (upstream's `ReleaseOnCancel`), so a
    /// successor need not wait for it to expire.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Held),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Other),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !ours {
            let duration = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(seconds)).unwrap_or(0),
            );
            let renewed = spec.renew_time.as_ref().map(|t| t.0);
            let expired = match renewed {
                Some(renewed) => {
                    let age = jiff::Timestamp::now().duration_since(renewed);
                    age.is_negative() || age.unsigned_abs() > duration
                }
                None => true,
            };
            let held = spec
                .holder_identity
                .as_deref()
                .is_some_and(|h| !h.is_empty());
            if held && !expired {
                return Ok(Attempt::Other);
            }
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now);
        spec.lease_duration_seconds = Some(seconds);
        // The update carries the resourceVersion read above: losing a race gives 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Held),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Other),
            Err(error) => Err(error),
        }
    }
}
