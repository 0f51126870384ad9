//! The Account object (reference, "Account Object").

use serde_json::{Value, json};

use super::format_time;

/// An account: who may use the API and owns DIDs, bindings and dialouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Secure ID.
    pub account_sid: String,
    /// Display name.
    pub name: String,
    /// HTTP Basic login.
    pub login: String,
    /// Permissions from config, e.g. `hide_origination_did`.
    pub permissions: Vec<String>,
    /// Creation time, milliseconds since the epoch.
    pub date_created: i64,
}

impl Account {
    /// Whether the account holds `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// The API's JSON form; the password is never part of it.
    pub fn to_json(&self) -> Value {
        json!({
            "account_sid": self.account_sid,
            "date_created": format_time(self.date_created),
            "login": self.login,
            "name": self.name,
        })
    }
}
