//! The image hosts a photo may be fetched from (`DOUMI_BOT_IMAGE_HOSTS`),
//! as the operator writes them and as a URL's host is compared with them.

use std::net::IpAddr;

/// Why `DOUMI_BOT_IMAGE_HOSTS` was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostListError {
    #[error("lists no host (give host names such as mmbiz.qpic.cn, comma-separated)")]
    Empty,
    #[error(
        "{0:?} is not a host name (give bare names such as mmbiz.qpic.cn, without scheme, port or path)"
    )]
    Invalid(String),
}

/// Parses a comma-separated list of image hosts (names or IP addresses) into
/// the lowercase form [`BarcodeReader`] compares against.
pub fn parse_hosts(value: &str) -> Result<Vec<String>, HostListError> {
    let mut hosts = Vec::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let host = normalize_host(entry).ok_or_else(|| HostListError::Invalid(entry.to_owned()))?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return Err(HostListError::Empty);
    }
    Ok(hosts)
}

/// A host name in canonical form (lowercase, no trailing dot), or an IP
/// address as `IpAddr` prints it; `None` for anything else.
pub(super) fn normalize_host(entry: &str) -> Option<String> {
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let name = entry
        .strip_suffix('.')
        .unwrap_or(entry)
        .to_ascii_lowercase();
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_host_list() {
        let parsed = |v: &str| parse_hosts(v).map_err(|e| e.to_string());
        assert_eq!(
            parsed("mmbiz.qpic.cn"),
            Ok(vec!["mmbiz.qpic.cn".to_owned()])
        );
        assert_eq!(
            parsed(" MMBIZ.qpic.cn. , 127.0.0.1,[::1],mmbiz.qpic.cn"),
            Ok(vec![
                "mmbiz.qpic.cn".to_owned(),
                "127.0.0.1".to_owned(),
                "::1".to_owned()
            ])
        );
        assert!(parsed("").is_err());
        assert!(parsed(" , ").is_err());
        for bad in [
            "https://mmbiz.qpic.cn",
            "mmbiz.qpic.cn:443",
            "mmbiz.qpic.cn/a",
            "*.qpic.cn",
            "-a.cn",
            "a..cn",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_default_hosts_parse() {
        assert!(parse_hosts(crate::config::DEFAULT_IMAGE_HOSTS).is_ok());
    }
}
