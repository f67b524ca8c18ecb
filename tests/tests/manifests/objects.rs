//! From a kustomization to typed Kubernetes objects: `kubectl kustomize` renders it, every
//! document is read into k8s-openapi's structs, and every field those structs do not have is
//! reported instead of silently dropped.

use std::{
    collections::BTreeMap,
    io::ErrorKind,
    path::{Path, PathBuf},
    process::Command,
};

use k8s_openapi::{
    Metadata,
    api::{
        apps::v1::Deployment,
        autoscaling::v2::HorizontalPodAutoscaler,
        core::v1::{ConfigMap, Namespace, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use serde::{Deserialize, de::DeserializeOwned};

use super::crds::{HttpRoute, PodMonitor};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_owned()
}

/// Every kustomization an operator may apply or build on: the base and each overlay, by name.
pub fn kustomizations() -> Vec<(String, PathBuf)> {
    let k8s = repo_root().join("deploy/k8s");
    let mut found = vec![("base".to_owned(), k8s.join("base"))];
    let overlays = std::fs::read_dir(k8s.join("overlays")).expect("deploy/k8s/overlays exists");
    let mut overlays: Vec<_> = overlays
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.join("kustomization.yaml").is_file())
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                path,
            )
        })
        .collect();
    overlays.sort();
    found.extend(overlays);
    found
}

/// `kubectl kustomize DIR`: `Ok(None)` when kubectl is not installed, an error when it fails.
pub fn kustomize(dir: &Path) -> Result<Option<String>, String> {
    match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot run kubectl: {e}")),
        Ok(out) if !out.status.success() => Err(format!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(out) => String::from_utf8(out.stdout)
            .map(Some)
            .map_err(|e| format!("kubectl kustomize printed invalid UTF-8: {e}")),
    }
}

/// One rendered kustomization, by kind. Kinds without a field here are refused by [`parse`], so
/// a new kind of object cannot slip past the checks unread.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    pub namespaces: Vec<Namespace>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub ingresses: Vec<Ingress>,
    pub network_policies: Vec<NetworkPolicy>,
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub http_routes: Vec<HttpRoute>,
    pub pod_monitors: Vec<PodMonitor>,
}

impl Objects {
    /// Every object's kind and metadata, for the checks that apply to all of them.
    pub fn all_metadata(&self) -> Vec<(&'static str, &ObjectMeta)> {
        fn of<T: Metadata<Ty = ObjectMeta>>(
            objects: &[T],
        ) -> impl Iterator<Item = (&'static str, &ObjectMeta)> {
            objects.iter().map(|o| (T::KIND, o.metadata()))
        }
        of(&self.namespaces)
            .chain(of(&self.config_maps))
            .chain(of(&self.secrets))
            .chain(of(&self.deployments))
            .chain(of(&self.services))
            .chain(of(&self.ingresses))
            .chain(of(&self.network_policies))
            .chain(of(&self.autoscalers))
            .chain(of(&self.disruption_budgets))
            .chain(of(&self.http_routes))
            .chain(of(&self.pod_monitors))
            .collect()
    }
}

/// Reads every document of `yaml` into its typed struct, with the problems found on the way:
/// unreadable documents, kinds no check knows, wrong `apiVersion`s and types (those objects are
/// left out), and every field the Kubernetes API (as of k8s-openapi's version feature) does not
/// have, with its path (those objects are kept, so the other checks still run on them).
pub fn parse(yaml: &str) -> (Objects, Vec<String>) {
    let mut objects = Objects::default();
    let mut problems = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(yaml).enumerate() {
        let value = match serde_norway::Value::deserialize(document) {
            Ok(serde_norway::Value::Null) => continue, // an empty document (a trailing `---`)
            Ok(value) => value,
            Err(e) => {
                problems.push(format!("document {index}: not YAML: {e}"));
                continue;
            }
        };
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_owned();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("<unnamed>");
        let what = format!("{kind} {name}");
        let p = &mut problems;
        match kind.as_str() {
            "Namespace" => objects.namespaces.extend(typed(value, &what, p)),
            "ConfigMap" => objects.config_maps.extend(typed(value, &what, p)),
            "Secret" => objects.secrets.extend(typed(value, &what, p)),
            "Deployment" => objects.deployments.extend(typed(value, &what, p)),
            "Service" => objects.services.extend(typed(value, &what, p)),
            "Ingress" => objects.ingresses.extend(typed(value, &what, p)),
            "NetworkPolicy" => objects.network_policies.extend(typed(value, &what, p)),
            "HorizontalPodAutoscaler" => objects.autoscalers.extend(typed(value, &what, p)),
            "PodDisruptionBudget" => objects.disruption_budgets.extend(typed(value, &what, p)),
            "HTTPRoute" => objects.http_routes.extend(typed(value, &what, p)),
            "PodMonitor" => objects.pod_monitors.extend(typed(value, &what, p)),
            _ => problems.push(format!(
                "document {index} ({what}): no check reads kind {kind:?}; teach tests/tests/manifests/objects.rs about it"
            )),
        }
    }
    (objects, problems)
}

/// Deserializes one object, collecting the paths serde would otherwise ignore. k8s-openapi's
/// structs skip unknown keys through `IgnoredAny`, which is exactly what `serde_ignored` sees.
fn typed<T: DeserializeOwned>(
    value: serde_norway::Value,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    let mut unknown = Vec::new();
    let parsed = serde_ignored::deserialize(value, |path| unknown.push(readable(&path)));
    match parsed {
        Ok(object) => {
            problems.extend(
                unknown
                    .into_iter()
                    .map(|path| format!("{what}: unknown field `{path}`")),
            );
            Some(object)
        }
        Err(e) => {
            problems.push(format!("{what}: {e}"));
            None
        }
    }
}

/// serde_ignored writes `Option`s as `?` segments (`spec.?.template.?.spec`); drop them.
fn readable(path: &serde_ignored::Path<'_>) -> String {
    path.to_string()
        .split('.')
        .filter(|segment| *segment != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// The name of any object, for messages.
pub fn name_of<T: Metadata<Ty = ObjectMeta>>(object: &T) -> &str {
    object.metadata().name.as_deref().unwrap_or("<unnamed>")
}

/// The namespace an object lands in (every doumi object gets one from the kustomization).
pub fn namespace_of<T: Metadata<Ty = ObjectMeta>>(object: &T) -> &str {
    object.metadata().namespace.as_deref().unwrap_or("default")
}

/// The labels a Deployment gives its pods.
pub fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    let template = deployment.spec.as_ref().map(|s| &s.template);
    let metadata = template.and_then(|t| t.metadata.as_ref());
    metadata.and_then(|m| m.labels.clone()).unwrap_or_default()
}

/// Labels of a namespace as the API server sees them: its own plus the automatic
/// `kubernetes.io/metadata.name`, which NetworkPolicy namespace selectors usually match on.
pub fn namespace_labels(objects: &Objects, namespace: &str) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = objects
        .namespaces
        .iter()
        .find(|ns| name_of(*ns) == namespace)
        .and_then(|ns| ns.metadata.labels.clone())
        .unwrap_or_default();
    labels.insert(
        "kubernetes.io/metadata.name".to_owned(),
        namespace.to_owned(),
    );
    labels
}
