//! Each container's environment as the kubelet would build it, and what follows from it: every
//! variable is one the binary reads, secrets come from Secrets, every reference resolves, and the
//! binary's own start-up validation accepts the result (which also says where it listens).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar};

use super::{
    binaries::{Binary, Listener},
    netpol::{Labels, Pod, selects},
    objects::{Objects, name_of, namespace_labels, namespace_of, pod_labels},
};

/// Overlays that must carry everything they need: tests/kind/run.sh applies the kind overlay as
/// it is. The others may leave a non-optional Secret key to the operator (production creates the
/// Secret out of band; the base ships it empty on purpose).
const SELF_CONTAINED: &[&str] = &["kind"];

/// Stands in for a secret the operator provides out of band, so the binary's validation can still
/// run. Shaped like a WeChat token (letters and digits), the only secret a binary requires.
const OUT_OF_BAND_SECRET: &str = "OutOfBandSecret42";

/// One container of a Deployment's pods and what follows from it.
pub struct Workload<'a> {
    pub deployment: &'a str,
    pub container: &'a Container,
    pub binary: Binary,
    pub pod: Pod,
    /// The environment the container starts with, values resolved from ConfigMaps and Secrets.
    pub env: BTreeMap<String, String>,
    /// Where the binary listens with that environment; empty when it would not start.
    pub listeners: Vec<Listener>,
}

impl Workload<'_> {
    pub fn main_port(&self) -> Option<u16> {
        self.listeners.first().map(|l| l.addr.port())
    }
}

pub fn workloads<'a>(
    overlay: &str,
    objects: &'a Objects,
    problems: &mut Vec<String>,
) -> Vec<Workload<'a>> {
    let mut found = Vec::new();
    for deployment in &objects.deployments {
        let name = name_of(deployment);
        let namespace = namespace_of(deployment);
        let Some(template) = deployment.spec.as_ref().map(|s| &s.template) else {
            problems.push(format!("Deployment {name} has no spec"));
            continue;
        };
        let labels: Labels = pod_labels(deployment);
        let selector = deployment.spec.as_ref().map(|s| &s.selector);
        if !selector.is_some_and(|s| {
            (s.match_labels.is_some() || s.match_expressions.is_some()) && selects(s, &labels)
        }) {
            problems.push(format!(
                "Deployment {name}: its selector does not select its own pods"
            ));
        }
        let containers = template
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let named_ports: BTreeMap<String, (u16, String)> = containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let number = u16::try_from(p.container_port).ok()?;
                Some((
                    p.name.clone()?,
                    (number, p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                ))
            })
            .collect();
        for container in containers {
            let image = container.image.as_deref().unwrap_or_default();
            let Some(binary) = Binary::from_image(image) else {
                problems.push(format!(
                    "Deployment {name}: container {} runs {image:?}, which no check knows",
                    container.name
                ));
                continue;
            };
            let env = container_env(
                overlay, objects, namespace, name, container, binary, problems,
            );
            let args = container.args.clone().unwrap_or_default();
            if container.command.is_some() {
                problems.push(format!(
                    "Deployment {name}: `command` replaces the image's entrypoint; use `args`"
                ));
            }
            let listeners = binary.listeners(&env, &args).unwrap_or_else(|e| {
                problems.push(format!(
                    "Deployment {name}: {} would not start with this environment: {e}",
                    binary.name()
                ));
                Vec::new()
            });
            found.push(Workload {
                deployment: name,
                container,
                binary,
                pod: Pod {
                    namespace: namespace.to_owned(),
                    namespace_labels: namespace_labels(objects, namespace),
                    labels: labels.clone(),
                    named_ports: named_ports.clone(),
                },
                env,
                listeners,
            });
        }
    }
    found
}

/// The container's environment as the kubelet would build it, after checking each variable is
/// one the binary reads and that secrets come from Secrets.
fn container_env(
    overlay: &str,
    objects: &Objects,
    namespace: &str,
    deployment: &str,
    container: &Container,
    binary: Binary,
    problems: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let here = format!("Deployment {deployment}");
    let reads = binary.env_names();
    let secrets = binary.secret_env_names();
    if container.env_from.is_some() {
        problems.push(format!(
            "{here}: envFrom passes whatever a ConfigMap holds; list the variables under env"
        ));
    }
    // A managed Redis's password goes in the Secret, beside the URL in the ConfigMap; without
    // this the only place left for it would be that URL.
    let vars = || container.env.iter().flatten();
    let password_from_secret = vars().any(|v| {
        v.name == "DOUMI_REDIS_PASSWORD"
            && v.value_from
                .as_ref()
                .is_some_and(|f| f.secret_key_ref.is_some())
    });
    if vars().any(|v| v.name == "DOUMI_REDIS_URL") && !password_from_secret {
        problems.push(format!(
            "{here}: DOUMI_REDIS_URL without DOUMI_REDIS_PASSWORD from the Secret (a managed \
             Redis's password would have to sit in the ConfigMap)"
        ));
    }
    let mut env = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let name = &var.name;
        if !reads.contains(name) {
            problems.push(format!(
                "{here}: sets {name}, but {} does not read it (it reads {})",
                binary.name(),
                reads.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            continue;
        }
        let from_secret = var
            .value_from
            .as_ref()
            .is_some_and(|v| v.secret_key_ref.is_some());
        if secrets.contains(name) && !from_secret {
            problems.push(format!(
                "{here}: {name} is a secret; it must come from a Secret (secretKeyRef)"
            ));
        }
        if let Some(value) = resolve(overlay, objects, namespace, &here, var, problems)
            && env.insert(name.clone(), value).is_some()
        {
            problems.push(format!("{here}: {name} is set twice"));
        }
    }
    for (name, default) in binary.loopback_defaults() {
        if !env.contains_key(&name) {
            problems.push(format!(
                "{here}: {name} is unset, so {} would use its default {default}, inside its own pod",
                binary.name()
            ));
        }
    }
    env
}

/// A variable's value, or `None` when it stays unset (an optional reference to nothing).
fn resolve(
    overlay: &str,
    objects: &Objects,
    namespace: &str,
    here: &str,
    var: &EnvVar,
    problems: &mut Vec<String>,
) -> Option<String> {
    let name = &var.name;
    let Some(source) = &var.value_from else {
        return Some(var.value.clone().unwrap_or_default());
    };
    if let Some(r) = &source.config_map_key_ref {
        let value = objects
            .config_maps
            .iter()
            .find(|cm| name_of(*cm) == r.name && namespace_of(*cm) == namespace)
            .and_then(|cm| cm.data.as_ref()?.get(&r.key).cloned());
        if value.is_none() && r.optional != Some(true) {
            problems.push(format!(
                "{here}: {name} needs key {} of ConfigMap {}, which the render lacks: the container would not start",
                r.key, r.name
            ));
        }
        return value;
    }
    if let Some(r) = &source.secret_key_ref {
        let secret = objects
            .secrets
            .iter()
            .find(|s| name_of(*s) == r.name && namespace_of(*s) == namespace);
        let value = secret.and_then(|s| {
            let text = s.string_data.as_ref().and_then(|d| d.get(&r.key).cloned());
            text.or_else(|| String::from_utf8(s.data.as_ref()?.get(&r.key)?.0.clone()).ok())
        });
        return match value {
            Some(value) => Some(value),
            None if r.optional == Some(true) => None,
            None if SELF_CONTAINED.contains(&overlay) => {
                problems.push(format!(
                    "{here}: {name} needs key {} of Secret {}, which this overlay must carry (it is applied as it is)",
                    r.key, r.name
                ));
                None
            }
            None => Some(OUT_OF_BAND_SECRET.to_owned()),
        };
    }
    problems.push(format!(
        "{here}: {name} comes from neither a ConfigMap nor a Secret; no check knows that source"
    ));
    None
}
