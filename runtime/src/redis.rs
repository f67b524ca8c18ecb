//! How every service reaches Redis, said once: the URL (`redis://`,
//! `rediss://` for TLS as managed Redis offerings sell it, `redis+unix://`),
//! the CA bundle a TLS server is verified against when it is not one of the
//! platform's roots, and a password kept apart from a URL that has none (so
//! the URL can sit in a ConfigMap and the password in a Secret).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::settings::{Problems, non_empty};

/// The schemes this build dials.
const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];

/// A validated way to Redis; cheap to clone. Its `Display` never shows a
/// password.
#[derive(Clone)]
pub struct RedisTarget {
    url: SecretString,
    /// PEM roots for `rediss://`; `None` = the platform's.
    ca: Option<Vec<u8>>,
    password: Option<SecretString>,
}

impl RedisTarget {
    /// A target from a URL alone (tests, `doumi up`): no CA file, no
    /// separate password.
    pub fn from_url(url: &str) -> Self {
        Self {
            url: SecretString::from(url.to_owned()),
            ca: None,
            password: None,
        }
    }

    /// A client for it: lazy, nothing is dialled until first used.
    pub fn client(&self) -> ::redis::RedisResult<::redis::Client> {
        use ::redis::IntoConnectionInfo;
        let mut info = self.url.expose_secret().into_connection_info()?;
        if let Some(password) = &self.password
            && info.redis_settings().password().is_none()
        {
            let settings = info
                .redis_settings()
                .clone()
                .set_password(password.expose_secret());
            info = info.set_redis_settings(settings);
        }
        match &self.ca {
            Some(ca) => ::redis::Client::build_with_tls(
                info,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            None => ::redis::Client::open(info),
        }
    }

    /// Whether the connection is encrypted.
    pub fn tls(&self) -> bool {
        self.url.expose_secret().starts_with("rediss://")
    }
}

impl fmt::Display for RedisTarget {
    /// The URL with any password replaced, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.expose_secret();
        match url::Url::parse(url) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("***"));
                f.write_str(parsed.as_str())
            }
            _ => f.write_str(url),
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({self})")
    }
}

impl Problems {
    /// Redis, when a URL is given: `Some(None)` without one, `None` when
    /// any part is wrong (each named). `ca_file` is read now, so that a
    /// missing bundle stops start-up rather than the first lookup.
    pub fn redis(
        &mut self,
        url: &Option<String>,
        ca_file: &Option<String>,
        password: &Option<String>,
    ) -> Option<Option<RedisTarget>> {
        const URL: &str = "DOUMI_REDIS_URL";
        const CA_FILE: &str = "DOUMI_REDIS_CA_FILE";
        let Some(url) = non_empty(url) else {
            return Some(None);
        };
        if !SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
            let scheme = url.split("://").next().unwrap_or_default();
            self.add(
                URL,
                format!(
                    "the scheme {scheme:?} cannot be dialled: redis://, rediss:// (TLS) or \
                     redis+unix:// (Sentinel and Cluster are not supported)"
                ),
            );
            return None;
        }
        let target = RedisTarget::from_url(url);
        if let Err(error) = target.client() {
            self.add(URL, format!("is not a Redis URL: {error}"));
            return None;
        }
        let ca = match non_empty(ca_file) {
            None => None,
            Some(path) => match std::fs::read(path) {
                Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
                Ok(_) => {
                    self.add(CA_FILE, format!("{path} holds no PEM certificate"));
                    return None;
                }
                Err(error) => {
                    self.add(CA_FILE, format!("cannot read {path}: {error}"));
                    return None;
                }
            },
        };
        if ca.is_some() && !target.tls() {
            self.add(CA_FILE, "is for TLS: DOUMI_REDIS_URL must be rediss://");
            return None;
        }
        Some(Some(RedisTarget {
            ca,
            password: non_empty(password).map(|p| SecretString::from(p.to_owned())),
            ..target
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, ca: Option<&str>, password: Option<&str>) -> Result<RedisTarget, String> {
        let mut problems = Problems::new();
        let target = problems.redis(
            &Some(url.to_owned()),
            &ca.map(str::to_owned),
            &password.map(str::to_owned),
        );
        problems.finish(target.flatten()).map_err(|e| e.to_string())
    }

    #[test]
    fn urls_the_build_dials_and_those_it_does_not() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://default:pw@redis.example:6380/0",
            "redis+unix:///tmp/redis.sock",
        ] {
            assert!(check(url, None, None).is_ok(), "{url}");
        }
        let error = check("redis+sentinel://host:26379/mymaster", None, None).unwrap_err();
        assert!(
            error.contains("DOUMI_REDIS_URL") && error.contains("Sentinel"),
            "{error}"
        );
        let error = check("http://nope", None, None).unwrap_err();
        assert!(error.contains("\"http\" cannot be dialled"), "{error}");
    }

    #[test]
    fn passwords_stay_out_of_logs_and_a_ca_needs_tls() {
        let target = check("rediss://user:s3cret@redis.example:6380", None, None).unwrap();
        assert!(!target.to_string().contains("s3cret"), "{target}");
        assert!(!format!("{target:?}").contains("s3cret"));
        let error = check("redis://127.0.0.1", Some("/nonexistent/ca.pem"), None).unwrap_err();
        assert!(error.contains("DOUMI_REDIS_CA_FILE"), "{error}");
        let separate = check("redis://127.0.0.1", None, Some("pw")).unwrap();
        let info = ::redis::IntoConnectionInfo::into_connection_info(
            separate.client().unwrap().get_connection_info().clone(),
        )
        .unwrap();
        assert_eq!(info.redis_settings().password(), Some("pw"));
    }
}
