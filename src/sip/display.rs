//! Display names for From and P-Asserted-Identity.
//!
//! rsipstack re-serialises a display name that ends in an escaped quote
//! incorrectly, so every display name we send is built here as a
//! quoted-string (RFC 3261 §25.1): `"` and `\` are escaped with `\`, and
//! control characters (CR, LF, NUL, ...) are dropped so a CNAM can never
//! break the header line.

/// Quotes `name` as an RFC 3261 quoted-string, escaping `"` and `\`.
/// Returns `None` when nothing printable remains.
pub fn quote_display_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    let mut any = false;
    for c in name.chars() {
        if c.is_control() {
            continue;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
        any = any || !c.is_whitespace();
    }
    out.push('"');
    any.then_some(out)
}

/// A name-addr (`"Name" <uri>` or `<uri>`) for From, To and P-Asserted-Identity.
pub fn name_addr(display: Option<&str>, uri: &str) -> String {
    match display.and_then(quote_display_name) {
        Some(q) => format!("{q} <{uri}>"),
        None => format!("<{uri}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_and_backslashes() {
        assert_eq!(
            quote_display_name(r#"Bob "B" \ Co"#).as_deref(),
            Some(r#""Bob \"B\" \\ Co""#)
        );
        assert_eq!(
            quote_display_name(r#"ends with quote""#).as_deref(),
            Some(r#""ends with quote\"""#)
        );
    }

    #[test]
    fn drops_control_characters() {
        assert_eq!(
            quote_display_name("Evil\r\nX-Injected: 1").as_deref(),
            Some("\"EvilX-Injected: 1\"")
        );
        assert_eq!(quote_display_name(" \r\n"), None);
    }

    #[test]
    fn name_addr_forms() {
        assert_eq!(name_addr(None, "sip:1@h"), "<sip:1@h>");
        assert_eq!(name_addr(Some("A"), "sip:1@h"), "\"A\" <sip:1@h>");
    }
}
