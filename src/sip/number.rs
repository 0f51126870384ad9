//! Telephone numbers in SIP header values and URIs.
//!
//! Trunks write the same number in many shapes: `sip:+15550100001@host;user=phone`,
//! `sip:15550100001@host`, `tel:+15550100001`, `tel:5550100001;phone-context=+1`,
//! and with several values on one line (`P-Asserted-Identity`, RFC 3325 §9.1).
//! These helpers reduce every shape to E.164 digits without `+`, the form the
//! store uses.

/// Splits a header value holding a comma-separated list (RFC 3261 §7.3.1)
/// into its values, ignoring commas inside quoted strings and `<...>`.
pub fn split_values(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quote, mut in_angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' if !in_angle => in_quote = !in_quote,
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            ',' if !in_quote && !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|v| !v.is_empty());
    out
}

/// The URI of one name-addr or addr-spec value (RFC 3261 §20.10, §25.1):
/// the text inside `<...>` when present, else the addr-spec up to its header
/// parameters. A quoted display name may contain `<` and escaped quotes.
pub fn value_uri(value: &str) -> Option<&str> {
    let v = value.trim();
    let mut rest = v;
    if let Some(stripped) = v.strip_prefix('"') {
        let mut escaped = false;
        let mut end = None;
        for (i, c) in stripped.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            }
        }
        rest = &stripped[end? + 1..];
    }
    if let Some(open) = rest.find('<') {
        let inner = &rest[open + 1..];
        let close = inner.find('>')?;
        return Some(inner[..close].trim());
    }
    // addr-spec: parameters after the URI are header parameters (§20.10).
    let spec = rest.split(';').next().unwrap_or("").trim();
    (!spec.is_empty()).then_some(spec)
}

/// Reduces a dialled string to E.164 digits: drops one leading `+` and the
/// visual separators of RFC 3966 §5.1.1 (`-`, `.`, `(`, `)`), and accepts
/// only 3 to 15 digits (ITU-T E.164 §6).
pub fn normalize_digits(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let raw = raw.strip_prefix('+').unwrap_or(raw);
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')' | ' '))
        .collect();
    let ok = (3..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(digits)
}

/// Decodes `%XX` escapes in a URI user part (RFC 3261 §19.1.2).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The user part of a `sip:`/`sips:` URI or the number of a `tel:` URI, as
/// written (no normalisation), with URI and user parameters removed.
/// Returns `None` for other schemes or a URI without a user part.
pub fn uri_user(uri: &str) -> Option<String> {
    let uri = uri.trim();
    let (scheme, rest) = uri.split_once(':')?;
    if scheme.eq_ignore_ascii_case("tel") {
        let number = rest.split(';').next()?.trim();
        return Some(percent_decode(number));
    }
    if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
        return None;
    }
    let at = rest.rfind('@')?;
    let userinfo = &rest[..at];
    let user = userinfo.split(':').next()?; // drop a password
    let user = user.split(';').next()?; // drop user parameters (RFC 4694 npdi, ...)
    Some(percent_decode(user))
}

/// E.164 digits (no `+`) of a `sip:`, `sips:` or `tel:` URI, with or without
/// `+` and `;user=phone`. A `tel:` local number with a global
/// `phone-context=+CC` (RFC 3966 §5.1.5) gets that prefix. `None` when the URI
/// carries no usable number (for example `sip:anonymous@anonymous.invalid`).
pub fn uri_number(uri: &str) -> Option<String> {
    let user = uri_user(uri)?;
    let is_tel = uri
        .trim()
        .get(..4)
        .is_some_and(|s| s.eq_ignore_ascii_case("tel:"));
    if is_tel && !user.starts_with('+') {
        let context = uri
            .split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("phone-context="))
            .and_then(|c| c.strip_prefix('+'));
        if let Some(cc) = context {
            return normalize_digits(&format!("{cc}{user}"));
        }
    }
    normalize_digits(&user)
}

/// E.164 digits of the first value of a header (From, To, P-Asserted-Identity)
/// that carries a usable number; the values of a multi-value line are tried
/// in order (RFC 3325 §9.1 allows a sip and a tel value).
pub fn header_number(value: &str) -> Option<String> {
    split_values(value)
        .into_iter()
        .filter_map(value_uri)
        .find_map(uri_number)
}

/// Whether a From value names the anonymous user of RFC 3323 §4.1.1.3
/// (`anonymous` user, or the `anonymous.invalid` host).
pub fn is_anonymous_value(value: &str) -> bool {
    let Some(uri) = value_uri(value) else {
        return false;
    };
    let lower = uri.to_ascii_lowercase();
    uri_user(uri).is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
        || lower.contains("anonymous.invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_shape() {
        for v in [
            "<tel:+15550100001>",
            "<tel:5550100001;phone-context=+1>",
            "<sip:+15550100001@trunk.example.com;user=phone>",
            "<sip:15550100001@trunk.example.com>",
            "sip:15550100001@192.0.2.1;tag=abc",
            "\"Alice <x>, \\\"Q\\\"\" <sip:+1-555-010-0001@h>;tag=1",
            "Alice <sip:%2B15550100001@h>",
            "<sip:15550100001;npdi@h>",
        ] {
            assert_eq!(header_number(v).as_deref(), Some("15550100001"), "{v}");
        }
    }

    #[test]
    fn two_pai_values_on_one_line() {
        let v = "<sip:anonymous@anonymous.invalid>, <tel:+15550100001>";
        assert_eq!(header_number(v).as_deref(), Some("15550100001"));
        assert_eq!(split_values(v).len(), 2);
    }

    #[test]
    fn anonymous_and_unusable() {
        assert!(is_anonymous_value(
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1"
        ));
        assert!(is_anonymous_value("<sip:Anonymous@example.com>"));
        assert!(!is_anonymous_value("<sip:15550100001@example.com>"));
        assert_eq!(header_number("<sip:anonymous@anonymous.invalid>"), None);
        assert_eq!(header_number("<sip:alice@example.com>"), None);
        assert_eq!(header_number("<mailto:a@b>"), None);
        assert_eq!(uri_number("sip:12@h"), None);
    }

    #[test]
    fn request_uri_forms() {
        assert_eq!(
            uri_number("sip:15162065337@127.0.0.1:5060").as_deref(),
            Some("15162065337")
        );
        assert_eq!(
            uri_number("tel:+15162065337").as_deref(),
            Some("15162065337")
        );
    }
}
