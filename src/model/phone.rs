//! Phone numbers: E.164 parsing and the formats the API shows.
//!
//! Numbers are accepted with or without a leading `+` and are stored and
//! returned as E.164 digits without `+` (DESIGN.md, "REST API decisions").
//! Validity and formats come from libphonenumber's metadata through the
//! `phonenumber` crate; the country from its region, as ISO 3166-1 alpha-3.

use phonenumber::Mode;
use serde::Serialize;

/// Why a string is not a usable phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Characters other than digits, a leading `+`, spaces, dots, dashes or
    /// parentheses.
    #[error("`{0}` is not a phone number: only digits and an optional leading + are allowed")]
    Syntax(String),
    /// The digits do not form a valid number for any country.
    #[error("`{0}` is not a valid E.164 phone number")]
    Invalid(String),
}

/// A valid phone number, kept as E.164 digits without `+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    digits: String,
}

/// The formats of a number, as the DID object and `redirect_did_info` show
/// them (reference: "DID Object", "Redirect DID Info Response Object").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberInfo {
    /// ISO 3166-1 alpha-3 code of the number's country, e.g. `USA`; empty
    /// for numbers of no single country (international services).
    pub country_code: String,
    /// National format, e.g. `(516) 206-5337`.
    pub in_country_format: String,
    /// International format, e.g. `+1 516-206-5337`.
    pub international_format: String,
    /// E.164 digits without `+`, e.g. `15162065337`.
    pub phonenumber: String,
}

impl PhoneNumber {
    /// Parses `s` (E.164 with or without `+`; spaces, dots, dashes and
    /// parentheses are ignored) and checks it against the numbering metadata.
    pub fn parse(s: &str) -> Result<PhoneNumber, PhoneError> {
        let trimmed = s.trim();
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(body.len());
        for c in body.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::Syntax(s.to_string())),
            }
        }
        if digits.is_empty() || digits.len() > 15 {
            return Err(PhoneError::Invalid(s.to_string()));
        }
        let parsed = phonenumber::parse(None, format!("+{digits}"))
            .map_err(|_| PhoneError::Invalid(s.to_string()))?;
        if !parsed.is_valid() {
            return Err(PhoneError::Invalid(s.to_string()));
        }
        Ok(PhoneNumber { digits })
    }

    /// The E.164 digits without `+`.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// Consumes the number into its digits.
    pub fn into_digits(self) -> String {
        self.digits
    }

    /// The ISO 3166-1 alpha-3 code of the number's country, if it has one.
    pub fn country_alpha3(&self) -> Option<&'static str> {
        let parsed = phonenumber::parse(None, format!("+{}", self.digits)).ok()?;
        let id = parsed.country().id()?;
        let alpha2: &str = id.as_ref();
        isocountry::CountryCode::for_alpha2(alpha2)
            .ok()
            .map(|c| c.alpha3())
    }

    /// The formats the API shows for this number.
    pub fn info(&self) -> NumberInfo {
        match phonenumber::parse(None, format!("+{}", self.digits)) {
            Ok(parsed) => NumberInfo {
                country_code: self.country_alpha3().unwrap_or("").to_string(),
                in_country_format: parsed.format().mode(Mode::National).to_string(),
                international_format: parsed.format().mode(Mode::International).to_string(),
                phonenumber: self.digits.clone(),
            },
            Err(_) => NumberInfo {
                country_code: String::new(),
                in_country_format: self.digits.clone(),
                international_format: format!("+{}", self.digits),
                phonenumber: self.digits.clone(),
            },
        }
    }
}

/// Loads the numbering metadata (the first parse costs about 0.4 s), so
/// that the first request does not pay for it.
pub fn warm_up() {
    let _ = phonenumber::parse(None, "+15162065337");
}

/// Checks an ISO 3166-1 alpha-3 country code (any case) and returns it in
/// upper case.
pub fn parse_alpha3(s: &str) -> Option<&'static str> {
    isocountry::CountryCode::for_alpha3_caseless(s)
        .ok()
        .map(|c| c.alpha3())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_number_with_and_without_plus() {
        let a = PhoneNumber::parse("+15162065337").unwrap();
        let b = PhoneNumber::parse("15162065337").unwrap();
        assert_eq!(a, b);
        let info = a.info();
        assert_eq!(info.country_code, "USA");
        assert_eq!(info.in_country_format, "(516) 206-5337");
        assert_eq!(info.international_format, "+1 516-206-5337");
        assert_eq!(info.phonenumber, "15162065337");
    }

    #[test]
    fn canadian_uk_and_german_numbers() {
        let ca = PhoneNumber::parse("+1 416 979 1234").unwrap().info();
        assert_eq!(ca.country_code, "CAN");
        assert_eq!(ca.in_country_format, "(416) 979-1234");
        let uk = PhoneNumber::parse("+442079460958").unwrap().info();
        assert_eq!(uk.country_code, "GBR");
        assert_eq!(uk.in_country_format, "020 7946 0958");
        assert_eq!(uk.international_format, "+44 20 7946 0958");
        let de = PhoneNumber::parse("+4930123456").unwrap().info();
        assert_eq!(de.country_code, "DEU");
        assert_eq!(de.in_country_format, "030 123456");
        assert_eq!(de.international_format, "+49 30 123456");
    }

    #[test]
    fn rejects_garbage_and_invalid_numbers() {
        assert!(matches!(
            PhoneNumber::parse("abc"),
            Err(PhoneError::Syntax(_))
        ));
        assert!(matches!(
            PhoneNumber::parse("1516206533x"),
            Err(PhoneError::Syntax(_))
        ));
        assert!(PhoneNumber::parse("").is_err());
        assert!(PhoneNumber::parse("12").is_err());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
        assert!(PhoneNumber::parse("+1 000 000 0000").is_err());
    }

    #[test]
    fn alpha3_is_case_insensitive() {
        assert_eq!(parse_alpha3("usa"), Some("USA"));
        assert_eq!(parse_alpha3("GBR"), Some("GBR"));
        assert_eq!(parse_alpha3("XXX"), None);
    }
}
