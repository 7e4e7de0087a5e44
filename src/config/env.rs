//! Typed reads of one environment variable each, with the one-line error that names the
//! variable and what it accepts.

use std::time::Duration;

use super::secret::Secret;

/// A setting with a bad value: the variable, what was given, what is accepted.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}={shown:?}: expected {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The value given (masked for secrets).
    pub shown: String,
    /// What the variable accepts.
    pub expected: &'static str,
}

/// `url` parsed, if it is an absolute `http://` or `https://` URL with a host.
pub fn http_uri(url: &str) -> Option<axum::http::Uri> {
    url.parse::<axum::http::Uri>().ok().filter(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
    })
}

/// A variable lookup (the environment, or a map in tests); empty values count as unset.
pub(super) struct Env<'a, F>(pub(super) &'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    pub(super) fn text(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `var`, else the contents of the file named by `file_var` (Docker/Kubernetes secrets).
    pub(super) fn secret_or_file(
        &self,
        var: &'static str,
        file_var: &'static str,
    ) -> Result<Option<Secret>, ConfigError> {
        if let Some(value) = self.text(var) {
            return Ok(Some(Secret::new(value)));
        }
        let Some(path) = self.text(file_var) else {
            return Ok(None);
        };
        match std::fs::read_to_string(&path) {
            Ok(contents) if !contents.trim().is_empty() => {
                Ok(Some(Secret::new(contents.trim().to_owned())))
            }
            _ => Err(self.bad(file_var, &path, "a readable file holding the key")),
        }
    }

    /// The first of `vars` that is set, else the last (the general one, for messages).
    pub(super) fn first_set<const N: usize>(&self, vars: [&'static str; N]) -> &'static str {
        vars.into_iter()
            .find(|var| self.text(var).is_some())
            .unwrap_or(vars[N - 1])
    }

    pub(super) fn bad(
        &self,
        var: &'static str,
        value: &str,
        expected: &'static str,
    ) -> ConfigError {
        ConfigError {
            var,
            shown: value.to_owned(),
            expected,
        }
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.text(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| self.bad(var, &v, expected)),
        }
    }

    /// A whole number within `range`; anything outside is refused, never silently capped.
    pub(super) fn bounded<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        expected: &'static str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + ToString,
    {
        let value = self.parse(var, default, expected)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(self.bad(var, &value.to_string(), expected))
        }
    }

    pub(super) fn seconds(
        &self,
        var: &'static str,
        default: f64,
        zero_ok: bool,
    ) -> Result<Duration, ConfigError> {
        let expected = if zero_ok {
            "a number of seconds >= 0"
        } else {
            "a number of seconds > 0"
        };
        let secs: f64 = self.parse(var, default, expected)?;
        let valid = secs.is_finite() && (secs > 0.0 || (zero_ok && secs == 0.0)) && secs < 1e9;
        if !valid {
            return Err(self.bad(var, &secs.to_string(), expected));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    pub(super) fn rate(&self, var: &'static str) -> Result<f64, ConfigError> {
        let expected = "a number of requests per second >= 0 (0: off)";
        let rate: f64 = self.parse(var, 0.0, expected)?;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(self.bad(var, &rate.to_string(), expected));
        }
        Ok(rate)
    }

    pub(super) fn boolean(&self, var: &'static str) -> Result<bool, ConfigError> {
        match self.text(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(self.bad(var, other, "true or false")),
        }
    }

    pub(super) fn url(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let url = self.text(var).unwrap_or_else(|| default.to_owned());
        if http_uri(&url).is_some() {
            Ok(url.trim_end_matches('/').to_owned())
        } else {
            Err(self.bad(var, &url, "an http(s) URL"))
        }
    }

    /// An egress proxy URL from the first of `vars` that is set: `http://` or `https://`, with
    /// optional `user:password@`. The error never echoes the credentials.
    pub(super) fn proxy(&self, vars: [&'static str; 2]) -> Result<Option<Secret>, ConfigError> {
        let var = self.first_set(vars);
        let Some(url) = self.text(var) else {
            return Ok(None);
        };
        if http_uri(&url).is_some() {
            Ok(Some(Secret::new(url)))
        } else {
            Err(self.bad(
                var,
                &without_credentials(&url),
                "an http:// or https:// proxy URL, e.g. http://user:password@proxy:3128",
            ))
        }
    }
}

/// `url` with any `user:password@` replaced by `*****@`, for messages and logs.
pub fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("*****@{}", &rest[at + 1..]),
        Some(at) => format!("{scheme}://*****@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `name=value,name2=value2` (W3C baggage style, as the OTLP exporter spec says), values
/// percent-decoded; `None` if malformed.
pub(super) fn parse_headers(list: &str) -> Option<Vec<(String, Secret)>> {
    list.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            valid_name
                .then(|| Some((name.to_owned(), Secret::new(percent_decode(value.trim())?))))?
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}
