//! Where a service finds every replica of the next one, in gRPC's naming
//! syntax: the name that other gRPC clients (grpc-go, grpc-java) accept, so
//! one setting reads the same everywhere.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

/// Every replica of a service, by name or by a fixed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `dns:///host:port` (or `http://host:port`): every address the name
    /// resolves to, resolved again from time to time — a headless Service
    /// names one address per ready pod.
    Dns { host: String, port: u16 },
    /// `ipv4:addr:port,addr:port` or `ipv6:[addr]:port,…`, or an `http://`
    /// URL naming an address: exactly these.
    Fixed(Vec<SocketAddr>),
}

/// Why a setting is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{0:?} is not a gRPC target: dns:///host:port, ipv4:addr:port[,addr:port…], \
         ipv6:[addr]:port[,…] or http://host:port"
    )]
    Scheme(String),
    #[error("{0:?}: doumi's services speak plaintext HTTP/2 to each other, not TLS (use http://)")]
    Tls(String),
    #[error("{0:?} needs a host and a port, like doumi-bot:50051")]
    HostPort(String),
    #[error("{0:?} is not an address with a port, like 10.0.0.7:50051 or [fd00::7]:50051")]
    Address(String),
}

impl Target {
    /// The addresses of a fixed list, as given; `None` for a name.
    pub fn fixed(&self) -> Option<&[SocketAddr]> {
        match self {
            Self::Fixed(addrs) => Some(addrs),
            Self::Dns { .. } => None,
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Self::Fixed(vec![addr])
    }
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(list) = text
            .strip_prefix("ipv4:")
            .or_else(|| text.strip_prefix("ipv6:"))
        {
            return list
                .split(',')
                .map(|addr| {
                    addr.trim()
                        .parse::<SocketAddr>()
                        .map_err(|_| TargetError::Address(addr.trim().to_owned()))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Fixed);
        }
        let host_port = if let Some(rest) = text.strip_prefix("dns:") {
            // `dns:host:port` or `dns://authority/host:port`; the authority
            // (a DNS server) is left to the system's resolver.
            match rest.strip_prefix("//") {
                Some(rest) => rest.split_once('/').map_or("", |(_, host_port)| host_port),
                None => rest,
            }
        } else if let Some(rest) = text.strip_prefix("http://") {
            rest.trim_end_matches('/')
        } else if text.starts_with("https://") {
            return Err(TargetError::Tls(text.to_owned()));
        } else {
            return Err(TargetError::Scheme(text.to_owned()));
        };
        let bad = || TargetError::HostPort(text.to_owned());
        let (host, port) = host_port.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(bad());
        }
        // An address needs no resolving: it is the one replica there is.
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => Self::Fixed(vec![SocketAddr::new(ip, port)]),
            Err(_) => Self::Dns {
                host: host.to_owned(),
                port,
            },
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns { host, port } => write!(f, "dns:///{host}:{port}"),
            Self::Fixed(addrs) => {
                let scheme = if addrs.iter().all(SocketAddr::is_ipv4) {
                    "ipv4"
                } else {
                    "ipv6"
                };
                write!(f, "{scheme}:")?;
                for (i, addr) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{addr}")?;
                }
                Ok(())
            }
        }
    }
}

impl crate::settings::Problems {
    /// Parses where the replicas of another doumi service are (gRPC's
    /// naming: `dns:///host:port`, `ipv4:addr:port,…`, `http://host:port`).
    pub fn grpc_target(&mut self, name: &str, value: &str) -> Option<Target> {
        value.parse().map_err(|e| self.add(name, e)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Target, TargetError> {
        text.parse()
    }

    #[test]
    fn names_and_lists_in_every_spelling() {
        let dns = Target::Dns {
            host: "doumi-bot-headless.doumi.svc".into(),
            port: 50051,
        };
        assert_eq!(
            parse("dns:///doumi-bot-headless.doumi.svc:50051"),
            Ok(dns.clone())
        );
        assert_eq!(
            parse("dns:doumi-bot-headless.doumi.svc:50051"),
            Ok(dns.clone())
        );
        assert_eq!(
            parse("dns://10.0.0.10/doumi-bot-headless.doumi.svc:50051"),
            Ok(dns.clone())
        );
        assert_eq!(
            parse("http://doumi-bot-headless.doumi.svc:50051/"),
            Ok(dns.clone())
        );
        assert_eq!(dns.to_string(), "dns:///doumi-bot-headless.doumi.svc:50051");

        let two = parse("ipv4:127.0.0.1:50051, 127.0.0.2:50051").unwrap();
        assert_eq!(two.fixed().map(<[_]>::len), Some(2));
        assert_eq!(two.to_string(), "ipv4:127.0.0.1:50051,127.0.0.2:50051");
        assert_eq!(parse(&two.to_string()), Ok(two));
        let v6 = parse("ipv6:[::1]:50051").unwrap();
        assert_eq!(v6.to_string(), "ipv6:[::1]:50051");
        assert_eq!(
            parse("http://127.0.0.1:50052"),
            Ok(Target::from(SocketAddr::from(([127, 0, 0, 1], 50052))))
        );
        assert_eq!(
            parse("http://[::1]:50052"),
            Ok(Target::from(SocketAddr::from((
                std::net::Ipv6Addr::LOCALHOST,
                50052
            ))))
        );
    }

    #[test]
    fn what_cannot_be_dialled_is_refused_with_a_reason() {
        assert!(matches!(
            parse("doumi-bot:50051"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            parse("https://doumi-bot:50051"),
            Err(TargetError::Tls(_))
        ));
        for text in [
            "dns:///doumi-bot",
            "http://doumi-bot:0",
            "http://:50051",
            "dns:///a/b:1",
        ] {
            assert!(
                matches!(parse(text), Err(TargetError::HostPort(_))),
                "{text}"
            );
        }
        for text in [
            "ipv4:",
            "ipv4:127.0.0.1",
            "ipv4:127.0.0.1:1,,",
            "ipv6:::1:80",
        ] {
            assert!(
                matches!(parse(text), Err(TargetError::Address(_))),
                "{text}"
            );
        }
    }
}
