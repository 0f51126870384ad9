//! Reading request bodies field by field, so that every error names its
//! field: unknown fields, wrong types, numeric strings for integers
//! (DESIGN.md, "REST API decisions"), phone numbers and read-only fields.

use serde_json::{Map, Value};

use super::FieldError;
use super::phone::PhoneNumber;

/// A field of a request body: absent, explicitly `null`, or given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Given<T> {
    /// Not in the body.
    #[default]
    Absent,
    /// `null` in the body.
    Null,
    /// A value.
    Value(T),
}

impl<T> Given<T> {
    /// Whether the body named the field at all.
    pub fn is_given(&self) -> bool {
        !matches!(self, Given::Absent)
    }

    /// Maps the value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Given<U> {
        match self {
            Given::Absent => Given::Absent,
            Given::Null => Given::Null,
            Given::Value(v) => Given::Value(f(v)),
        }
    }
}

/// A request body object being read; fields are taken out one by one, and
/// what is left at the end is unknown.
pub struct Body<'a> {
    map: Map<String, Value>,
    current: Option<&'a Map<String, Value>>,
}

impl<'a> Body<'a> {
    /// Starts reading `value`, which must be a JSON object. `current` is the
    /// object as the API shows it now (PATCH, PUT), against which read-only
    /// fields are compared; `None` on create.
    pub fn new(value: Value, current: Option<&'a Map<String, Value>>) -> Result<Self, FieldError> {
        match value {
            Value::Object(map) => Ok(Self { map, current }),
            _ => Err(FieldError::new("body", "must be a JSON object")),
        }
    }

    fn take(&mut self, field: &str) -> Given<Value> {
        match self.map.remove(field) {
            None => Given::Absent,
            Some(Value::Null) => Given::Null,
            Some(v) => Given::Value(v),
        }
    }

    /// A string field.
    pub fn string(&mut self, field: &str, max_chars: usize) -> Result<Given<String>, FieldError> {
        match self.take(field) {
            Given::Value(Value::String(s)) => {
                if s.chars().count() > max_chars {
                    return Err(FieldError::new(
                        field,
                        format!("at most {max_chars} characters"),
                    ));
                }
                Ok(Given::Value(s))
            }
            Given::Value(_) => Err(FieldError::new(field, "must be a string")),
            Given::Null => Ok(Given::Null),
            Given::Absent => Ok(Given::Absent),
        }
    }

    /// An integer field; a string of digits (with an optional `-`) counts
    /// as an integer.
    pub fn integer(&mut self, field: &str) -> Result<Given<i64>, FieldError> {
        match self.take(field) {
            Given::Value(Value::Number(n)) => n
                .as_i64()
                .map(Given::Value)
                .ok_or_else(|| FieldError::new(field, "must be an integer")),
            Given::Value(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Given::Value)
                .map_err(|_| FieldError::new(field, format!("`{s}` is not an integer"))),
            Given::Value(_) => Err(FieldError::new(field, "must be an integer")),
            Given::Null => Ok(Given::Null),
            Given::Absent => Ok(Given::Absent),
        }
    }

    /// A phone number field, returned as E.164 digits without `+`.
    pub fn phone(&mut self, field: &str) -> Result<Given<String>, FieldError> {
        match self.string(field, 32)? {
            Given::Value(s) => PhoneNumber::parse(&s)
                .map(|p| Given::Value(p.into_digits()))
                .map_err(|e| FieldError::new(field, e.to_string())),
            Given::Null => Ok(Given::Null),
            Given::Absent => Ok(Given::Absent),
        }
    }

    /// A nested object field, returned as it is.
    pub fn object(&mut self, field: &str) -> Given<Value> {
        self.take(field)
    }

    /// A read-only field: allowed only with the value the object already
    /// has (so that a client may send back what it read).
    pub fn read_only(&mut self, field: &str) -> Result<(), FieldError> {
        let Some(given) = self.map.remove(field) else {
            return Ok(());
        };
        match self.current.and_then(|c| c.get(field)) {
            Some(cur) if *cur == given => Ok(()),
            _ => Err(FieldError::new(field, "is read-only")),
        }
    }

    /// Ends reading: any field left over is unknown.
    pub fn finish(self) -> Result<(), FieldError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(FieldError::new(k.clone(), "unknown field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_numeric_strings() {
        let mut b = Body::new(json!({"a": "1800", "b": -1, "c": "x", "d": 1.5}), None).unwrap();
        assert_eq!(b.integer("a").unwrap(), Given::Value(1800));
        assert_eq!(b.integer("b").unwrap(), Given::Value(-1));
        assert_eq!(b.integer("c").unwrap_err().field, "c");
        assert_eq!(b.integer("d").unwrap_err().field, "d");
        assert_eq!(b.integer("zz").unwrap(), Given::Absent);
    }

    #[test]
    fn unknown_and_read_only_fields_are_named() {
        let cur = json!({"binding_sid": "s1"}).as_object().unwrap().clone();
        let mut b = Body::new(json!({"binding_sid": "s1", "bogus": 1}), Some(&cur)).unwrap();
        b.read_only("binding_sid").unwrap();
        assert_eq!(b.finish().unwrap_err().field, "bogus");
        let mut b = Body::new(json!({"binding_sid": "other"}), Some(&cur)).unwrap();
        assert_eq!(b.read_only("binding_sid").unwrap_err().field, "binding_sid");
    }

    #[test]
    fn phones_are_normalised() {
        let mut b = Body::new(json!({"p": "+1 516 206 5337", "q": "nope"}), None).unwrap();
        assert_eq!(b.phone("p").unwrap(), Given::Value("15162065337".into()));
        assert_eq!(b.phone("q").unwrap_err().field, "q");
    }
}
