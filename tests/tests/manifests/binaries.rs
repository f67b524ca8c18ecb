//! What each binary reads and where it listens, taken from the code itself: the clap definitions
//! the binaries parse their settings with, and the validation they run at start-up. Nothing here
//! lists a setting by hand (except `RUST_LOG`, read by tracing rather than clap), so a renamed or
//! removed setting shows up as a manifest that sets something nobody reads.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
};

use clap::{CommandFactory, FromArgMatches, builder::Resettable};
use doumi_runtime::settings::Problems;

/// The programs doumi's images run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Binary {
    Gateway,
    Bot,
    Catalog,
    /// Debian's redis-server in doumi-redis: not doumi's code, so its facts are stated here.
    Redis,
}

/// How a port is spoken to; decides which probe fits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
    Resp,
}

/// A socket a binary listens on, as its validated settings say.
#[derive(Debug, Clone)]
pub struct Listener {
    pub purpose: &'static str,
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// The port redis-server listens on when not told otherwise.
const REDIS_DEFAULT_PORT: u16 = 6379;

/// The filter variable of `EnvFilter::try_from_default_env()` in runtime/src/telemetry.rs.
const RUST_LOG: &str = "RUST_LOG";

impl Binary {
    pub const ALL: [Self; 4] = [Self::Gateway, Self::Bot, Self::Catalog, Self::Redis];

    /// The binary in an image, from the repository's last path segment (so a registry prefix
    /// from an overlay's `images:` does not matter).
    pub fn from_image(image: &str) -> Option<Self> {
        let image = image.split('@').next().unwrap_or(image);
        let last = image.rsplit('/').next().unwrap_or(image);
        match last.split(':').next().unwrap_or(last) {
            "doumi-gateway" => Some(Self::Gateway),
            "doumi-bot" => Some(Self::Bot),
            "doumi-catalog" => Some(Self::Catalog),
            "doumi-redis" => Some(Self::Redis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "doumi-gateway",
            Self::Bot => "doumi-bot",
            Self::Catalog => "doumi-catalog",
            Self::Redis => "redis-server",
        }
    }

    /// The command line the binary parses, or `None` for redis-server (it reads no environment).
    fn command(self) -> Option<clap::Command> {
        match self {
            Self::Gateway => Some(GatewayCli::command()),
            Self::Bot => Some(BotCli::command()),
            Self::Catalog => Some(CatalogCli::command()),
            Self::Redis => None,
        }
    }

    /// Every environment variable the binary reads.
    pub fn env_names(self) -> BTreeSet<String> {
        let Some(command) = self.command() else {
            return BTreeSet::new();
        };
        let mut names: BTreeSet<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        names.insert(RUST_LOG.to_owned());
        names
    }

    /// Settings whose default points at the binary's own loopback (`http://127.0.0.1:50051`):
    /// right for `doumi up` on one machine, wrong in a pod, so a manifest must set them.
    pub fn loopback_defaults(self) -> BTreeMap<String, String> {
        let Some(command) = self.command() else {
            return BTreeMap::new();
        };
        command
            .get_arguments()
            .filter_map(|arg| {
                let env = arg.get_env()?.to_string_lossy().into_owned();
                let default = arg
                    .get_default_values()
                    .first()?
                    .to_string_lossy()
                    .into_owned();
                let host = url::Url::parse(&default).ok()?.host_str()?.to_owned();
                let loopback = host == "localhost"
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                loopback.then_some((env, default))
            })
            .collect()
    }

    /// The variables the binary treats as secrets: those whose values `--help` hides.
    pub fn secret_env_names(self) -> BTreeSet<String> {
        let Some(command) = self.command() else {
            return BTreeSet::new();
        };
        command
            .get_arguments()
            .filter(|arg| arg.is_hide_env_values_set())
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect()
    }

    /// Runs the binary's own settings parsing and validation on `env` (exactly these variables,
    /// never the test process' environment) and `args`, and returns where it would listen, or
    /// the error it would stop with.
    pub fn listeners(
        self,
        env: &BTreeMap<String, String>,
        args: &[String],
    ) -> Result<Vec<Listener>, String> {
        match self {
            Self::Gateway => {
                let cli: GatewayCli = parse(self, env, args)?;
                let mut problems = Problems::new();
                let config = cli.config(&mut problems);
                let config = problems.finish(config).map_err(|e| e.to_string())?;
                Ok(vec![Listener {
                    purpose: "HTTP: /wechat, /healthz, /readyz, /metrics",
                    addr: config.listen,
                    protocol: Protocol::Http,
                }])
            }
            Self::Bot => {
                let cli: BotCli = parse(self, env, args)?;
                let mut problems = Problems::new();
                let config = cli.config(&mut problems);
                let config = problems.finish(config).map_err(|e| e.to_string())?;
                let mut listeners = vec![Listener {
                    purpose: "gRPC",
                    addr: config.listen,
                    protocol: Protocol::Grpc,
                }];
                listeners.extend(config.metrics_listen.map(|addr| Listener {
                    purpose: "HTTP: /metrics",
                    addr,
                    protocol: Protocol::Http,
                }));
                Ok(listeners)
            }
            Self::Catalog => {
                let cli: CatalogCli = parse(self, env, args)?;
                let mut problems = Problems::new();
                let config = cli.config(&mut problems);
                let config = problems.finish(config).map_err(|e| e.to_string())?;
                let mut listeners = vec![Listener {
                    purpose: "gRPC",
                    addr: config.listen,
                    protocol: Protocol::Grpc,
                }];
                listeners.extend(config.metrics_listen.map(|addr| Listener {
                    purpose: "HTTP: /metrics",
                    addr,
                    protocol: Protocol::Http,
                }));
                Ok(listeners)
            }
            Self::Redis => {
                if let Some(name) = env.keys().next() {
                    return Err(format!(
                        "redis-server reads no environment variables, yet {name} is set"
                    ));
                }
                let port = match args.iter().position(|a| a == "--port") {
                    None => REDIS_DEFAULT_PORT,
                    Some(i) => args
                        .get(i + 1)
                        .and_then(|p| p.parse().ok())
                        .ok_or("redis-server: --port needs a number")?,
                };
                Ok(vec![Listener {
                    purpose: "Redis (RESP)",
                    addr: SocketAddr::from(([0, 0, 0, 0], port)),
                    protocol: Protocol::Resp,
                }])
            }
        }
    }
}

// The binaries' command lines are the libraries' own `Cli` types, the ones each `main.rs` parses.
use doumi_bot::Cli as BotCli;
use doumi_catalog::Cli as CatalogCli;
use doumi_gateway::Cli as GatewayCli;

/// Parses `env` as if the binary had found it in its environment: each variable becomes the flag
/// clap reads it for, and clap's own environment lookup is switched off, so the result cannot
/// depend on what the test process happens to have set.
fn parse<C: CommandFactory + FromArgMatches>(
    binary: Binary,
    env: &BTreeMap<String, String>,
    args: &[String],
) -> Result<C, String> {
    let command = C::command();
    let mut argv = vec![binary.name().to_owned()];
    argv.extend(args.iter().cloned());
    for (name, value) in env {
        if name == RUST_LOG {
            continue;
        }
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|e| e == name.as_str()))
            .ok_or_else(|| format!("{} does not read {name}", binary.name()))?;
        let long = arg
            .get_long()
            .ok_or_else(|| format!("{name} has no flag"))?;
        argv.push(format!("--{long}={value}"));
    }
    let matches = command
        .mut_args(|arg| arg.env(Resettable::Reset))
        .try_get_matches_from(argv)
        .map_err(|e| e.to_string())?;
    C::from_arg_matches(&matches).map_err(|e| e.to_string())
}
