//! NetworkPolicy semantics, enough to ask "may this pod open a connection to that pod's port?"
//! of the rendered policies the way a policy-enforcing CNI answers it: a pod selected by no policy
//! of a direction is open in that direction; a selected pod accepts only what some rule of some
//! selecting policy allows; a connection needs the source's egress and the destination's ingress.
//!
//! `ipBlock` peers are taken never to match a pod: pod addresses are not known offline, and
//! doumi's only `ipBlock`s exclude the private ranges pods live in.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort},
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};

use super::objects::namespace_of;

pub type Labels = BTreeMap<String, String>;

/// A pod as a policy sees it.
#[derive(Debug, Clone)]
pub struct Pod {
    pub namespace: String,
    pub namespace_labels: Labels,
    pub labels: Labels,
    /// Named container ports, which policies may refer to by name.
    pub named_ports: BTreeMap<String, (u16, String)>,
}

/// Whether `selector` selects `labels`. `{}` selects everything.
pub fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let by_expression = selector.match_expressions.iter().flatten().all(|expr| {
        let value = labels.get(&expr.key);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false, // the API server refuses other operators
        }
    });
    by_label && by_expression
}

/// The pods a policy applies to are in its namespace and match its `podSelector` (absent = `{}`).
pub fn applies_to(policy: &NetworkPolicy, pod: &Pod) -> bool {
    namespace_of(policy) == pod.namespace
        && policy
            .spec
            .as_ref()
            .and_then(|spec| spec.pod_selector.as_ref())
            .is_none_or(|selector| selects(selector, &pod.labels))
}

/// `policyTypes`, with the API's default: Ingress always, Egress when there are egress rules.
pub fn governs(policy: &NetworkPolicy, direction: &str) -> bool {
    let Some(spec) = &policy.spec else {
        return false;
    };
    match &spec.policy_types {
        Some(types) => types.iter().any(|t| t == direction),
        None => direction == "Ingress" || (direction == "Egress" && spec.egress.is_some()),
    }
}

/// Whether a rule's peer (relative to the policy's namespace) is `pod`.
fn peer_is(peer: &NetworkPolicyPeer, policy_namespace: &str, pod: &Pod) -> bool {
    if peer.ip_block.is_some() {
        return false;
    }
    let namespace_ok = match &peer.namespace_selector {
        Some(selector) => selects(selector, &pod.namespace_labels),
        None => pod.namespace == policy_namespace,
    };
    let pod_ok = peer
        .pod_selector
        .as_ref()
        .is_none_or(|selector| selects(selector, &pod.labels));
    namespace_ok && pod_ok && (peer.namespace_selector.is_some() || peer.pod_selector.is_some())
}

/// Whether a rule's port list lets `port`/`protocol` on `destination` through (absent = all).
fn port_allowed(
    ports: Option<&Vec<NetworkPolicyPort>>,
    port: u16,
    protocol: &str,
    destination: &Pod,
) -> bool {
    let Some(ports) = ports else { return true };
    ports.iter().any(|p| {
        if p.protocol.as_deref().unwrap_or("TCP") != protocol {
            return false;
        }
        match &p.port {
            None => true,
            Some(IntOrString::Int(first)) => {
                let last = p.end_port.unwrap_or(*first);
                (*first..=last).contains(&i32::from(port))
            }
            Some(IntOrString::String(name)) => destination
                .named_ports
                .get(name)
                .is_some_and(|(number, proto)| *number == port && proto == protocol),
        }
    })
}

/// Whether `from` may open `protocol` connections to `port` of `to` under `policies`.
pub fn allows(policies: &[NetworkPolicy], from: &Pod, to: &Pod, port: u16, protocol: &str) -> bool {
    let egress = direction_allows(policies, from, "Egress", |policy| {
        let rules = policy.spec.as_ref().and_then(|s| s.egress.as_ref());
        rules.iter().copied().flatten().any(|rule| {
            let peer_ok = rule.to.as_ref().is_none_or(|peers| {
                peers
                    .iter()
                    .any(|peer| peer_is(peer, namespace_of(policy), to))
            });
            peer_ok && port_allowed(rule.ports.as_ref(), port, protocol, to)
        })
    });
    let ingress = direction_allows(policies, to, "Ingress", |policy| {
        let rules = policy.spec.as_ref().and_then(|s| s.ingress.as_ref());
        rules.iter().copied().flatten().any(|rule| {
            let peer_ok = rule.from.as_ref().is_none_or(|peers| {
                peers
                    .iter()
                    .any(|peer| peer_is(peer, namespace_of(policy), from))
            });
            peer_ok && port_allowed(rule.ports.as_ref(), port, protocol, to)
        })
    });
    egress && ingress
}

/// Open when no policy governs `pod` in `direction`; otherwise open only if one of those policies
/// has a matching rule.
fn direction_allows(
    policies: &[NetworkPolicy],
    pod: &Pod,
    direction: &str,
    rule_matches: impl Fn(&NetworkPolicy) -> bool,
) -> bool {
    let mut governing = policies
        .iter()
        .filter(|p| applies_to(p, pod) && governs(p, direction))
        .peekable();
    governing.peek().is_none() || governing.any(rule_matches)
}
