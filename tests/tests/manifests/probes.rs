//! Ports and probes: the container declares exactly the ports its binary listens on, every probe
//! fits the protocol and port it probes, and (with [`ProbeServers`]) every probed path or gRPC
//! health service answers on the real services run in-process.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::{ContainerPort, Probe},
    apimachinery::pkg::util::intstr::IntOrString,
};

use super::{
    Report,
    binaries::{Binary, Listener, Protocol},
    env::Workload,
    netpol::Pod,
};

/// A container port number, resolving a port name among the pod's container ports.
pub fn resolve_port(port: &IntOrString, pod: &Pod) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => pod.named_ports.get(name).map(|(n, _)| *n),
    }
}

pub fn check_ports_and_probes(w: &Workload<'_>, report: &mut Report) {
    let here = format!("Deployment {}", w.deployment);
    let problems = &mut report.problems;
    let binary = w.binary.name();
    let declared: BTreeSet<u16> = w
        .container
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p: &ContainerPort| u16::try_from(p.container_port).ok())
        .collect();
    let listening: BTreeSet<u16> = w.listeners.iter().map(|l| l.addr.port()).collect();
    for listener in &w.listeners {
        if !listener.addr.ip().is_unspecified() {
            problems.push(format!(
                "{here}: {binary} listens on {} ({}), which neither the kubelet nor a Service can reach",
                listener.addr, listener.purpose
            ));
        }
        if !declared.contains(&listener.addr.port()) {
            problems.push(format!(
                "{here}: {binary} listens on {} ({}) but the container declares no such containerPort",
                listener.addr.port(),
                listener.purpose
            ));
        }
    }
    if !w.listeners.is_empty() {
        for port in declared.difference(&listening) {
            problems.push(format!(
                "{here}: containerPort {port} is declared, but {binary} listens on {listening:?}"
            ));
        }
    }

    let Some(main) = w.listeners.first() else {
        return;
    };
    let probes = [
        ("readinessProbe", &w.container.readiness_probe, true),
        ("livenessProbe", &w.container.liveness_probe, true),
        ("startupProbe", &w.container.startup_probe, false),
    ];
    for (kind, probe, required) in probes {
        match probe {
            None if required => problems.push(format!("{here}: {binary} has no {kind}")),
            None => {}
            Some(probe) => match check_probe(probe, main, &w.pod, w.binary) {
                Ok(Some(target)) => {
                    report.probes.insert(target);
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("{here}: {kind}: {e}")),
            },
        }
    }
}

/// Whether `probe` fits the listener's protocol and port; the endpoint it calls, for the
/// in-process check.
fn check_probe(
    probe: &Probe,
    main: &Listener,
    pod: &Pod,
    binary: Binary,
) -> Result<Option<ProbeTarget>, String> {
    let port = main.addr.port();
    let at = |probed: Option<u16>| match probed {
        Some(p) if p == port => Ok(()),
        Some(p) => Err(format!("probes port {p}, but the binary listens on {port}")),
        None => Err(format!(
            "probes a port no container declares (the binary listens on {port})"
        )),
    };
    match main.protocol {
        Protocol::Http => {
            let get = probe
                .http_get
                .as_ref()
                .ok_or("the HTTP server needs an httpGet probe")?;
            at(resolve_port(&get.port, pod))?;
            if get.scheme.as_deref().is_some_and(|s| s != "HTTP") {
                return Err("the gateway serves plain HTTP".into());
            }
            let path = get.path.clone().unwrap_or_else(|| "/".into());
            Ok(Some(ProbeTarget::Http { binary, path }))
        }
        Protocol::Grpc => {
            let grpc = probe
                .grpc
                .as_ref()
                .ok_or("a gRPC server needs a native gRPC probe (grpc:)")?;
            at(u16::try_from(grpc.port).ok())?;
            let service = grpc.service.clone().unwrap_or_default();
            Ok(Some(ProbeTarget::Grpc { binary, service }))
        }
        Protocol::Resp => {
            if let Some(tcp) = &probe.tcp_socket {
                at(resolve_port(&tcp.port, pod))?;
            } else if probe.exec.is_none() {
                return Err("Redis needs a tcpSocket or exec (redis-cli ping) probe".into());
            }
            // exec's `redis-cli ping` runs in the image: scripts/container-test runs it too.
            Ok(None)
        }
    }
}

/// An endpoint a kubelet probe calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeTarget {
    Http { binary: Binary, path: String },
    Grpc { binary: Binary, service: String },
}

impl ProbeTarget {
    pub fn binary(&self) -> Binary {
        match self {
            Self::Http { binary, .. } | Self::Grpc { binary, .. } => *binary,
        }
    }
}

/// The three services started in-process (the library entry points the binaries call), on
/// loopback, so each probe's path or health service can be tried for real.
pub struct ProbeServers {
    addrs: BTreeMap<Binary, SocketAddr>,
    http: reqwest::Client,
}

impl ProbeServers {
    pub async fn start(stop: &tokio_util::sync::CancellationToken) -> Self {
        async fn bind() -> (tokio::net::TcpListener, SocketAddr) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind on loopback");
            let addr = listener.local_addr().expect("local address");
            (listener, addr)
        }
        // Nothing listens on port 9 (discard): the gateway and the bot connect lazily and the
        // probes must not need their downstream.
        let nowhere =
            doumi_runtime::grpc::Target::from(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        let mut addrs = BTreeMap::new();

        let (listener, addr) = bind().await;
        let token = doumi_gateway::WechatToken::parse("probecheck").expect("a valid token");
        let config = doumi_gateway::GatewayConfig::new(addr, nowhere.clone(), token);
        tokio::spawn(doumi_gateway::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        addrs.insert(Binary::Gateway, addr);

        let (listener, addr) = bind().await;
        let config = doumi_bot::BotConfig::new(addr, nowhere);
        tokio::spawn(doumi_bot::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        addrs.insert(Binary::Bot, addr);

        let (listener, addr) = bind().await;
        let config = doumi_catalog::CatalogConfig::offline(addr);
        tokio::spawn(doumi_catalog::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        addrs.insert(Binary::Catalog, addr);

        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        Self { addrs, http }
    }

    /// What the kubelet would conclude: HTTP 200–399, or a gRPC health status of SERVING.
    /// Retried briefly while the servers come up.
    pub async fn probe(&self, target: &ProbeTarget) -> Result<(), String> {
        let addr = self.addrs[&target.binary()];
        let mut last = String::new();
        for _ in 0..50 {
            let outcome = match target {
                ProbeTarget::Http { path, .. } => {
                    match self.http.get(format!("http://{addr}{path}")).send().await {
                        Ok(r) if (200..400).contains(&r.status().as_u16()) => return Ok(()),
                        Ok(r) => return Err(format!("HTTP {}", r.status())),
                        Err(e) => e.to_string(),
                    }
                }
                ProbeTarget::Grpc { service, .. } => match grpc_health(addr, service).await {
                    Ok(status) if status == tonic_health::ServingStatus::Serving as i32 => {
                        return Ok(());
                    }
                    Ok(status) => return Err(format!("health status {status}, not SERVING")),
                    Err(status) if status.code() != tonic::Code::Unavailable => {
                        return Err(status.to_string());
                    }
                    Err(status) => status.to_string(),
                },
            };
            last = outcome;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("no answer: {last}"))
    }
}

/// `grpc.health.v1.Health/Check` for `service`, as the kubelet's gRPC probe sends it.
async fn grpc_health(addr: SocketAddr, service: &str) -> Result<i32, tonic::Status> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    Ok(HealthClient::new(channel)
        .check(request)
        .await?
        .into_inner()
        .status)
}
