//! Turning raw settings (flags and `DOUMI_*` variables, already read by clap)
//! into typed values, collecting every problem so an operator fixes them all
//! in one go instead of one restart per typo.

use std::{fmt, net::SocketAddr, time::Duration};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_BAD_SETTINGS: i32 = 64;

/// Every setting that was missing or malformed, by its environment variable.
#[derive(Debug, Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem with the setting `name`.
    pub fn add(&mut self, name: &str, what: impl fmt::Display) {
        self.0.push(format!("{name}: {what}"));
    }

    /// Parses a listen or connect address like `0.0.0.0:8080`.
    pub fn socket_addr(&mut self, name: &str, value: &str) -> Option<SocketAddr> {
        value
            .trim()
            .parse()
            .map_err(|_| {
                self.add(
                    name,
                    format!("{value:?} is not an address like 0.0.0.0:8080"),
                )
            })
            .ok()
    }

    /// Parses an optional listen address: `off` (or empty) = no listener.
    pub fn listen_or_off(&mut self, name: &str, value: &str) -> Option<Option<SocketAddr>> {
        match value.trim() {
            "" | "off" => Some(None),
            addr => self.socket_addr(name, addr).map(Some),
        }
    }

    /// Parses a duration like `4.5s` or `300ms`.
    pub fn duration(&mut self, name: &str, value: &str) -> Option<Duration> {
        let parsed = parse_duration(value);
        if parsed.is_none() {
            self.add(
                name,
                format!("{value:?} is not a duration like 4.5s or 300ms"),
            );
        }
        parsed
    }

    /// Parses an `http://` or `https://` URL, the only schemes doumi dials.
    pub fn http_url(&mut self, name: &str, value: &str) -> Option<String> {
        let value = value.trim();
        let valid = (value.starts_with("http://") || value.starts_with("https://"))
            && value
                .split("://")
                .nth(1)
                .is_some_and(|rest| !rest.is_empty());
        if valid {
            Some(value.trim_end_matches('/').to_owned())
        } else {
            self.add(name, format!("{value:?} is not an http(s):// URL"));
            None
        }
    }

    /// One of a fixed set of words (case-insensitive), naming them when it is something else.
    pub fn choice<T: clap::ValueEnum>(&mut self, name: &str, value: &str) -> Option<T> {
        let parsed = T::from_str(value.trim(), true).ok();
        if parsed.is_none() {
            let words: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|p| p.get_name().to_owned())
                .collect();
            self.add(
                name,
                format!("{value:?} is not one of {}", words.join(", ")),
            );
        }
        parsed
    }

    /// A whole number in `range`.
    pub fn number<T>(
        &mut self,
        name: &str,
        value: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Option<T>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        match value.trim().parse::<T>() {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.add(
                    name,
                    format!(
                        "{value:?} is not a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    pub fn flag(&mut self, name: &str, value: &str) -> Option<bool> {
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" | "" => Some(false),
            _ => {
                self.add(name, format!("{value:?} is not true or false"));
                None
            }
        }
    }

    /// The validated value when nothing was wrong, every problem otherwise.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, SettingsError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if !self.0.is_empty() => Err(SettingsError(self.0)),
            _ => Err(SettingsError(vec![
                "settings: incomplete without a reported cause".to_owned(),
            ])),
        }
    }
}

/// The settings a service refused to start with.
#[derive(Debug, thiserror::Error)]
pub struct SettingsError(Vec<String>);

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid settings: {}", self.0.join("; "))
    }
}

impl SettingsError {
    /// Prints one line per bad setting and exits with [`EXIT_BAD_SETTINGS`].
    pub fn exit(&self) -> ! {
        for problem in &self.0 {
            eprintln!("error: invalid setting {problem}");
        }
        std::process::exit(EXIT_BAD_SETTINGS)
    }
}

/// Unset and empty mean the same thing for optional settings.
pub fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Writes a duration the way an operator would (`100ms`, `4.5s`, `300s`,
/// `10m`, `168h`): whole hours in hours, whole minutes from ten on in
/// minutes, the rest in seconds, below a second in milliseconds. This is how
/// a library's default becomes the CLI's default, in `--help` and the README.
pub fn duration_text(duration: Duration) -> String {
    const SECOND: u128 = 1_000;
    const MINUTE: u128 = 60 * SECOND;
    const HOUR: u128 = 60 * MINUTE;
    match duration.as_millis() {
        0 => "0s".to_owned(),
        ms if ms % HOUR == 0 => format!("{}h", ms / HOUR),
        ms if ms >= 10 * MINUTE && ms % MINUTE == 0 => format!("{}m", ms / MINUTE),
        ms if ms >= SECOND => format!("{}s", duration.as_secs_f64()),
        ms => format!("{ms}ms"),
    }
}

/// The name a choice is written as on the command line (`hold`, `text`).
pub fn choice_text<T: clap::ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Parses `4.5s`, `300ms`, `2m` and friends; a bare number means seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return humantime::parse_duration(value).ok(),
    };
    Duration::try_from_secs_f64(number * scale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_the_forms_operators_write() {
        assert_eq!(parse_duration("4.5s"), Some(Duration::from_millis(4500)));
        assert_eq!(parse_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_none());
        assert!(parse_duration("-1s").is_none());
    }

    #[test]
    fn durations_written_as_operators_write_them_read_back() {
        for (millis, text) in [
            (4500, "4.5s"),
            (100, "100ms"),
            (30_000, "30s"),
            (300_000, "300s"),
            (600_000, "10m"),
            (7 * 24 * 3_600_000, "168h"),
            (0, "0s"),
        ] {
            let duration = Duration::from_millis(millis);
            assert_eq!(duration_text(duration), text);
            assert_eq!(parse_duration(text), Some(duration));
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut problems = Problems::new();
        assert!(problems.socket_addr("DOUMI_A", "nope").is_none());
        assert!(problems.http_url("DOUMI_B", "ftp://x").is_none());
        assert_eq!(
            problems.http_url("DOUMI_C", "http://bot:50051/"),
            Some("http://bot:50051".to_owned())
        );
        let message = problems.finish(Some(())).unwrap_err().to_string();
        assert!(message.contains("DOUMI_A") && message.contains("DOUMI_B"));
        assert!(!message.contains("DOUMI_C"));
    }
}
