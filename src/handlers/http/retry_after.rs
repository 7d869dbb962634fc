//! `Retry-After` (RFC 9110 §10.2.3): a number of seconds or an HTTP date.
//!
//! The wait is capped by the retry policy (`max_retry_interval`); zero or a
//! date in the past means "no particular wait", so the policy's own interval
//! applies rather than an immediate retry.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// The three date formats RFC 9110 §5.6.7 requires recipients to accept:
/// IMF-fixdate, the obsolete RFC 850 form and C's `asctime()`.
const DATE_FORMATS: [&str; 3] = [
    "%a, %d %b %Y %H:%M:%S GMT",
    "%A, %d-%b-%y %H:%M:%S GMT",
    "%a %b %e %H:%M:%S %Y",
];

/// The wait a `Retry-After` header asks for; `None` when it is absent or
/// unreadable. A number too large for a `u64` is the longest wait.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DATE_FORMATS.iter().find_map(|format| {
        let date = jiff::fmt::strtime::parse(format, value)
            .ok()?
            .to_datetime()
            .ok()?;
        date.to_zoned(jiff::tz::TimeZone::UTC).ok()
    })?;
    let wait = at.timestamp().duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn wait(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers)
    }

    #[test]
    fn reads_seconds_huge_numbers_and_nonsense() {
        assert_eq!(wait("7"), Some(Duration::from_secs(7)));
        assert_eq!(wait("0"), Some(Duration::ZERO));
        assert_eq!(
            wait("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(wait("soon"), None);
        assert_eq!(wait("-5"), None);
    }

    #[test]
    fn reads_the_three_http_date_formats() {
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let utc = later.to_zoned(jiff::tz::TimeZone::UTC);
        for format in DATE_FORMATS {
            let text = utc.strftime(format).to_string();
            let asked = wait(&text).unwrap_or_else(|| panic!("{text:?} not read"));
            assert!(
                asked > Duration::from_secs(100) && asked <= Duration::from_secs(120),
                "{text:?}: {asked:?}"
            );
        }
        for past in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(wait(past), Some(Duration::ZERO), "{past}");
        }
        let far = jiff::civil::date(9000, 1, 1)
            .at(0, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .strftime(DATE_FORMATS[0])
            .to_string();
        assert!(wait(&far).unwrap() > Duration::from_secs(1 << 37));
    }
}
