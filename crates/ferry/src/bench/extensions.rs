//! The API-extension figures of `ferry bench api`, on one server (API server alone) in one run:
//!
//! - **custom resource creates/s**: objects of a CustomResourceDefinition with a 50-field schema
//!   (types, bounds, patterns, defaults) and 3 `x-kubernetes-validations` CEL rules, next to
//!   ConfigMap creates (a built-in kind without rules of its own) by the same clients;
//! - **server-side applies/s** of Deployments (each apply creating its Deployment, managed
//!   fields computed from the type's schema), next to plain Deployment creates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ferry_apiserver::pki::Pki;
use serde_json::{json, Map, Value};

use super::api::{start_server_with, Connection};

/// What this part measured.
pub struct Figures {
    /// ConfigMap creates/s (the reference of custom resource creates).
    pub configmap_creates_per_s: f64,
    /// Custom resource creates/s.
    pub custom_creates_per_s: f64,
    /// Deployment creates/s (the reference of applies).
    pub deployment_creates_per_s: f64,
    /// Deployment server-side applies/s.
    pub deployment_applies_per_s: f64,
}

/// The definition: 50 fields under `spec`, 3 CEL rules.
fn definition() -> Value {
    let mut fields = Map::new();
    for i in 0..50 {
        let field = match i % 5 {
            0 => json!({"type": "string", "maxLength": 64, "pattern": "^[a-z0-9-]*$"}),
            1 => json!({"type": "integer", "minimum": 0, "maximum": 1000, "default": 1}),
            2 => json!({"type": "boolean", "default": false}),
            3 => json!({"type": "string", "enum": ["red", "green", "blue"]}),
            _ => json!({"type": "array", "maxItems": 8, "items": {"type": "string"}}),
        };
        fields.insert(format!("field{i:02}"), field);
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "benches.bench.ferry.dev"},
    "spec": {"group": "bench.ferry.dev", "scope": "Namespaced",
        "names": {"plural": "benches", "kind": "Bench"},
        "versions": [{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": fields,
                    "x-kubernetes-validations": [
                        {"rule": "self.field01 <= self.field06 + 1000", "message": "field01 too large"},
                        {"rule": "!has(self.field00) || self.field00.size() < 64"},
                        {"rule": "!has(self.field04) || self.field04.all(x, x.size() < 32)"},
                    ]}}}}}]}})
}

fn custom(name: &str) -> Value {
    let mut spec = Map::new();
    for i in 0..50 {
        let value = match i % 5 {
            0 => json!(format!("value-{i}")),
            1 => json!(i * 10),
            2 => json!(i % 2 == 0),
            3 => json!("green"),
            _ => json!(["a", "b"]),
        };
        spec.insert(format!("field{i:02}"), value);
    }
    json!({"apiVersion": "bench.ferry.dev/v1", "kind": "Bench", "metadata": {"name": name}, "spec": spec})
}

fn configmap(name: &str) -> Value {
    let data: Map<String, Value> = (0..50)
        .map(|i| (format!("field{i:02}"), json!(format!("value-{i}"))))
        .collect();
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:1",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "env": [{"name": "MODE", "value": "bench"}]}]}}}})
}

/// How a request of object `i` is made: method, path, body, content type.
type Make = dyn Fn(usize) -> (&'static str, String, Value, &'static str) + Send + Sync;

/// Creates (POST to `collection`) of objects `body` makes, named `<prefix>-NNNNN`.
fn creates(collection: &'static str, prefix: &'static str, body: fn(&str) -> Value) -> Arc<Make> {
    Arc::new(move |i| {
        (
            "POST",
            collection.to_string(),
            body(&format!("{prefix}-{i:05}")),
            "application/json",
        )
    })
}

/// Runs `count` requests made by `make` over `clients` connections; requests per second.
async fn rate(
    address: &str,
    tls: &Arc<rustls::ClientConfig>,
    count: usize,
    clients: usize,
    make: Arc<Make>,
) -> anyhow::Result<f64> {
    let per_client = count.div_ceil(clients);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (address, tls, make) = (address.to_string(), tls.clone(), make.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(&address, tls).await?;
                for i in (c * per_client).min(count)..((c + 1) * per_client).min(count) {
                    let (method, path, body, content_type) = make(i);
                    let (status, answer) = connection
                        .request_as(method, &path, Some(&body), content_type)
                        .await?;
                    if status != 201 && status != 200 {
                        bail!(
                            "{method} {path} returned {status}: {}",
                            String::from_utf8_lossy(&answer)
                        );
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await.context("a client")??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Measures on a server of its own.
pub async fn measure(count: usize, clients: usize) -> anyhow::Result<Figures> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().join("server");
    let (server, address, _) =
        start_server_with(&data_dir, &["--disable-controllers", "--disable-scheduler"])?;
    let pki = Pki::load_or_create(&data_dir.join("tls"))?;
    let tls = Arc::new(pki.client_tls(&pki.admin)?);
    let mut setup = Connection::open(&address, tls.clone()).await?;
    let (status, body) = setup
        .request(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some(&definition()),
        )
        .await?;
    if status != 201 {
        bail!(
            "creating the definition: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = setup
            .request(
                "GET",
                "/apis/bench.ferry.dev/v1/namespaces/default/benches",
                None,
            )
            .await?;
        if status == 200 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the definition was not served within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(setup);

    let configmap_creates_per_s = rate(
        &address,
        &tls,
        count,
        clients,
        creates("/api/v1/namespaces/default/configmaps", "cm", configmap),
    )
    .await?;
    let custom_creates_per_s = rate(
        &address,
        &tls,
        count,
        clients,
        creates(
            "/apis/bench.ferry.dev/v1/namespaces/default/benches",
            "b",
            custom,
        ),
    )
    .await?;
    println!(
        "custom resources: {count} creates (50 fields, 3 CEL rules): {custom_creates_per_s:.0}/s; ConfigMaps: {configmap_creates_per_s:.0}/s (ratio {:.2})",
        custom_creates_per_s / configmap_creates_per_s
    );
    let deployment_creates_per_s = rate(
        &address,
        &tls,
        count,
        clients,
        creates(
            "/apis/apps/v1/namespaces/default/deployments",
            "d",
            deployment,
        ),
    )
    .await?;
    let deployment_applies_per_s = rate(
        &address,
        &tls,
        count,
        clients,
        Arc::new(|i| {
            let name = format!("a-{i:05}");
            (
                "PATCH",
                format!("/apis/apps/v1/namespaces/default/deployments/{name}?fieldManager=bench"),
                deployment(&name),
                "application/apply-patch+yaml",
            )
        }),
    )
    .await?;
    println!(
        "server-side apply: {count} Deployments applied: {deployment_applies_per_s:.0}/s; created: {deployment_creates_per_s:.0}/s (ratio {:.2})",
        deployment_applies_per_s / deployment_creates_per_s
    );
    drop(server);
    Ok(Figures {
        configmap_creates_per_s,
        custom_creates_per_s,
        deployment_creates_per_s,
        deployment_applies_per_s,
    })
}
