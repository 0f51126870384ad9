//! The DID object (reference, "DID Object").

use serde_json::{Value, json};

use super::phone::NumberInfo;

/// A rented number that can serve as a `redirect_did`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Did {
    /// Secure ID.
    pub did_sid: String,
    /// Owner.
    pub account_sid: String,
    /// Number and its formats.
    pub info: NumberInfo,
}

impl Did {
    /// The API's JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "account_sid": self.account_sid,
            "country_code": self.info.country_code,
            "did_sid": self.did_sid,
            "in_country_format": self.info.in_country_format,
            "international_format": self.info.international_format,
            "phonenumber": self.info.phonenumber,
        })
    }
}
