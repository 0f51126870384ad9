//! The `attributes` object of bindings and dialouts: built-in keys, their
//! rules, and the PATCH merge of nested objects.
//!
//! Source: the reference's "Attribute Object" tables for bindings and
//! dialouts, and "PATCH/PUT" for the merge rules.

use serde_json::{Map, Value};

use super::FieldError;

/// Built-in attribute keys of a binding (reference, "Binding Object").
pub const BINDING_BUILTINS: &[&str] = &[
    "announce",
    "cnam",
    "fix_anonymous_cid",
    "hide_origination_did",
    "ringback",
];

/// Built-in attribute keys of a dialout (reference, "Dialout Object").
pub const DIALOUT_BUILTINS: &[&str] = &[
    "announce",
    "cnam",
    "fix_anonymous_cid",
    "hide_origination_did",
    "ringback",
    "use_call_confirmation",
];

/// Values `ringback` may take; unset means ordinary ringing.
pub const RINGBACK_VALUES: &[&str] = &["true", "false", "moh", "passthrough"];

/// Most characters in one attribute value.
const MAX_VALUE_CHARS: usize = 2048;

/// Which object the attributes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A binding.
    Binding,
    /// A dialout.
    Dialout,
}

/// Checks an incoming `attributes` object and brings its built-in values to
/// their stored form (booleans as the strings `"true"` and `"false"`).
///
/// `null` values are kept: in a PATCH they remove the key (see [`merge`]); in
/// a create or PUT they are dropped by [`merge`] onto an empty object.
/// Errors name the field as `attributes.KEY`.
pub fn validate(owner: Owner, input: &Value) -> Result<Map<String, Value>, FieldError> {
    let Value::Object(map) = input else {
        return Err(FieldError::new("attributes", "must be an object"));
    };
    let mut out = Map::new();
    for (key, value) in map {
        let field = format!("attributes.{key}");
        if key.is_empty() || key.len() > 128 {
            return Err(FieldError::new(
                field,
                "attribute names are 1 to 128 characters",
            ));
        }
        if value.is_null() {
            out.insert(key.clone(), Value::Null);
            continue;
        }
        let normalized = match key.as_str() {
            "fix_anonymous_cid" | "hide_origination_did" => {
                Value::String(boolean(&field, value)?.to_string())
            }
            "ringback" => {
                let s = string(&field, value)?;
                let lower = s.to_ascii_lowercase();
                if !RINGBACK_VALUES.contains(&lower.as_str()) {
                    return Err(FieldError::new(
                        field,
                        format!("must be one of {} (or absent)", RINGBACK_VALUES.join(", ")),
                    ));
                }
                Value::String(lower)
            }
            "announce" | "use_call_confirmation" => {
                let s = string(&field, value)?;
                if owner == Owner::Binding && key == "use_call_confirmation" {
                    // A custom attribute on bindings: kept as given.
                    value.clone()
                } else {
                    if s.trim().is_empty() {
                        return Err(FieldError::new(
                            field,
                            "must be a URL or a file name, not empty",
                        ));
                    }
                    Value::String(s.to_string())
                }
            }
            "cnam" => {
                let s = string(&field, value)?;
                if s.chars().count() > 64 || s.chars().any(|c| c.is_control()) {
                    return Err(FieldError::new(
                        field,
                        "must be at most 64 printable characters",
                    ));
                }
                Value::String(s.to_string())
            }
            k if k.starts_with("sip_header_") => {
                let name = &k["sip_header_".len()..];
                if !(name.starts_with("X-") || name.starts_with("x-")) || name.len() < 3 {
                    return Err(FieldError::new(
                        field,
                        "the SIP header name must start with X-",
                    ));
                }
                if !name.bytes().all(is_token_byte) {
                    return Err(FieldError::new(
                        field,
                        "the SIP header name may hold only letters, digits and -.!%*_+`'~",
                    ));
                }
                let s = string(&field, value)?;
                if s.chars().any(|c| c.is_control()) || s.len() > 512 {
                    return Err(FieldError::new(
                        field,
                        "the header value must be at most 512 printable characters",
                    ));
                }
                Value::String(s.to_string())
            }
            _ => {
                // Custom attributes are kept as given (DESIGN.md).
                if let Value::String(s) = value
                    && s.chars().count() > MAX_VALUE_CHARS
                {
                    return Err(FieldError::new(
                        field,
                        format!("at most {MAX_VALUE_CHARS} characters"),
                    ));
                }
                value.clone()
            }
        };
        out.insert(key.clone(), normalized);
    }
    Ok(out)
}

/// RFC 3261 section 25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn string<'a>(field: &str, value: &'a Value) -> Result<&'a str, FieldError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(FieldError::new(field, "must be a string")),
    }
}

fn boolean(field: &str, value: &Value) -> Result<bool, FieldError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(FieldError::new(field, "must be true or false")),
    }
}

/// Applies PATCH rules 1 to 3 of the reference: keys in `patch` replace or
/// add, a `null` removes. With `replace` (`nested_objects=replace`, rule 4)
/// the result is `patch` alone, without its nulls.
pub fn merge(
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
    replace: bool,
) -> Map<String, Value> {
    let mut out = if replace { Map::new() } else { current.clone() };
    for (k, v) in patch {
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Reads a boolean attribute as stored (`"true"`/`"false"`), with a default.
pub fn flag(attrs: &Map<String, Value>, key: &str, default: bool) -> bool {
    match attrs.get(key) {
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(Value::Bool(b)) => *b,
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn booleans_become_strings() {
        let m = validate(
            Owner::Binding,
            &json!({"hide_origination_did": true, "fix_anonymous_cid": "FALSE"}),
        )
        .unwrap();
        assert_eq!(m["hide_origination_did"], json!("true"));
        assert_eq!(m["fix_anonymous_cid"], json!("false"));
    }

    #[test]
    fn bad_values_name_the_attribute() {
        let e = validate(Owner::Binding, &json!({"ringback": "loud"})).unwrap_err();
        assert_eq!(e.field, "attributes.ringback");
        let e = validate(Owner::Binding, &json!({"sip_header_Foo": "1"})).unwrap_err();
        assert_eq!(e.field, "attributes.sip_header_Foo");
        let e = validate(Owner::Binding, &json!({"sip_header_X-Foo": "a\r\nVia: x"})).unwrap_err();
        assert_eq!(e.field, "attributes.sip_header_X-Foo");
        let e = validate(Owner::Dialout, &json!({"hide_origination_did": "maybe"})).unwrap_err();
        assert_eq!(e.field, "attributes.hide_origination_did");
        assert!(validate(Owner::Binding, &json!([1])).is_err());
    }

    #[test]
    fn custom_attributes_are_kept() {
        let m = validate(
            Owner::Binding,
            &json!({"order_id": 42, "sip_header_X-Job": "7"}),
        )
        .unwrap();
        assert_eq!(m["order_id"], json!(42));
        assert_eq!(m["sip_header_X-Job"], json!("7"));
    }

    #[test]
    fn merge_follows_the_patch_rules() {
        let cur = json!({"name": "a", "keep": "k"})
            .as_object()
            .unwrap()
            .clone();
        let patch = json!({"name": "b", "keep": null, "new": "n"})
            .as_object()
            .unwrap()
            .clone();
        let merged = merge(&cur, &patch, false);
        assert_eq!(Value::Object(merged), json!({"name": "b", "new": "n"}));
        let replaced = merge(&cur, &json!({"x": "1"}).as_object().unwrap().clone(), true);
        assert_eq!(Value::Object(replaced), json!({"x": "1"}));
    }
}
