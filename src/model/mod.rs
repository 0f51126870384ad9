//! Plain types of the Mediator API and their rules: accounts, DIDs,
//! bindings, dialouts, phone numbers and attributes.
//!
//! Nothing here touches the network or the store; the API layer parses
//! request bodies into the change sets defined here, and the store persists
//! them.

pub mod account;
pub mod attributes;
pub mod binding;
pub mod call;
pub mod dialout;
pub mod did;
pub mod input;
pub mod phone;

use chrono::{DateTime, SecondsFormat, Utc};

/// One field of a request that cannot be accepted, with the reason.
///
/// The API shows it as an entry of `errors` in the error envelope
/// (DESIGN.md, "REST API decisions").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The field's name; dotted for nested ones (`attributes.ringback`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds,
/// e.g. `2018-10-09T20:40:57.675Z`.
pub fn format_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time into milliseconds since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// Seconds that remain until `deadline_ms`, rounded up, never below 0;
/// `-1` when there is no deadline ("never").
pub fn remaining_secs(deadline_ms: Option<i64>, now_ms: i64) -> i64 {
    match deadline_ms {
        None => -1,
        Some(d) => ((d - now_ms).max(0) + 999) / 1000,
    }
}

/// A new secure ID (UUID v4, lower-case hyphenated).
pub fn new_sid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_has_milliseconds_and_z() {
        assert_eq!(format_time(1_539_117_657_675), "2018-10-09T20:40:57.675Z");
        assert_eq!(
            parse_time("2018-10-09T20:40:57.675Z"),
            Some(1_539_117_657_675)
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn remaining_rounds_up_and_floors_at_zero() {
        assert_eq!(remaining_secs(None, 5), -1);
        assert_eq!(remaining_secs(Some(3_600_000), 1), 3600);
        assert_eq!(remaining_secs(Some(1000), 5000), 0);
    }
}
