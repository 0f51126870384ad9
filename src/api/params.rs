//! Query arguments: pagination (`limit`, `offset`, `order`, `after`,
//! `before`), result filtering (`filter`), field filtering
//! (`include_fields`, `exclude_fields`) and the per-request switches
//! (`nested_objects`, `reuse`, `fallback_country`).
//!
//! Source: the reference's "Pagination", "Result Filtering" and "Field
//! Filtering" sections; DESIGN.md for the limits.

use serde_json::{Map, Value};

use super::error::ApiError;
use crate::model::phone::parse_alpha3;
use crate::store::list::{Cursor, Filter, ListQuery, Op};

/// Most items one page may hold.
pub const MAX_LIMIT: i64 = 1000;
/// Items a page holds when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 10;

/// The query arguments of one request, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses the raw query string.
    pub fn parse(raw: Option<&str>) -> Result<Params, ApiError> {
        let pairs = match raw {
            None | Some("") => Vec::new(),
            Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q).map_err(|e| {
                ApiError::field("query", format!("cannot read the query string: {e}"))
            })?,
        };
        Ok(Params { pairs })
    }

    /// The last value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, for rebuilding pagination links.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::field(name, format!("`{v}` is not an integer")))?;
                if n < min || n > max {
                    return Err(ApiError::field(name, format!("must be {min} to {max}")));
                }
                Ok(n)
            }
        }
    }

    /// A boolean switch (`true`/`false`, `1`/`0`).
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if v == "true" || v == "1" => Ok(true),
            Some(v) if v == "false" || v == "0" || v.is_empty() => Ok(false),
            Some(v) => Err(ApiError::field(name, format!("`{v}` is not true or false"))),
        }
    }

    /// `nested_objects=replace`.
    pub fn replace_nested(&self) -> Result<bool, ApiError> {
        match self.get("nested_objects") {
            None => Ok(false),
            Some("replace") => Ok(true),
            Some("merge") => Ok(false),
            Some(v) => Err(ApiError::field(
                "nested_objects",
                format!("`{v}` is not replace or merge"),
            )),
        }
    }

    /// `fallback_country` as an upper-case ISO 3166-1 alpha-3 code.
    pub fn fallback_country(&self) -> Result<Option<String>, ApiError> {
        match self.get("fallback_country") {
            None | Some("") => Ok(None),
            Some(v) => parse_alpha3(v.trim())
                .map(|c| Some(c.to_string()))
                .ok_or_else(|| {
                    ApiError::field(
                        "fallback_country",
                        format!("`{v}` is not an ISO 3166-1 alpha-3 country code"),
                    )
                }),
        }
    }

    /// The list query: pagination, order and filter.
    pub fn list_query(&self) -> Result<ListQuery, ApiError> {
        let limit = self.int("limit", DEFAULT_LIMIT, 0, MAX_LIMIT)?;
        let offset = self.int("offset", 0, 0, i64::from(i32::MAX))?;
        let order = match self.get("order").map(str::trim) {
            None | Some("") => None,
            Some(o) => {
                let mut words = o.split_whitespace();
                let field = words.next().unwrap_or("").to_string();
                let desc = match words.next().map(|w| w.to_ascii_lowercase()) {
                    None => false,
                    Some(w) if w == "asc" => false,
                    Some(w) if w == "desc" => true,
                    Some(w) => {
                        return Err(ApiError::field(
                            "order",
                            format!("`{w}` is not asc or desc"),
                        ));
                    }
                };
                if words.next().is_some() {
                    return Err(ApiError::field("order", "use `FIELD asc` or `FIELD desc`"));
                }
                Some((field, desc))
            }
        };
        let cursor = match (self.get("after"), self.get("before")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::field("after", "give after or before, not both"));
            }
            (Some(a), None) if !a.is_empty() => Some(Cursor::After(a.to_string())),
            (None, Some(b)) if !b.is_empty() => Some(Cursor::Before(b.to_string())),
            _ => None,
        };
        let filters = match self.get("filter") {
            None => Vec::new(),
            Some(f) => parse_filter(f).map_err(|e| ApiError::field("filter", e))?,
        };
        Ok(ListQuery {
            filters,
            order,
            limit,
            offset,
            cursor,
        })
    }

    /// The field filter, checked against the object's `known` fields.
    pub fn field_filter(&self, known: &[&str]) -> Result<FieldFilter, ApiError> {
        let read = |name: &str| -> Result<Option<Vec<String>>, ApiError> {
            let Some(v) = self.get(name) else {
                return Ok(None);
            };
            let mut out = Vec::new();
            for f in v.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                if !known.contains(&f) {
                    return Err(ApiError::field(
                        name,
                        format!("unknown field `{f}`; known: {}", known.join(", ")),
                    ));
                }
                out.push(f.to_string());
            }
            Ok(Some(out))
        };
        Ok(FieldFilter {
            include: read("include_fields")?,
            exclude: read("exclude_fields")?.unwrap_or_default(),
        })
    }
}

/// `include_fields` / `exclude_fields`.
#[derive(Debug, Clone, Default)]
pub struct FieldFilter {
    include: Option<Vec<String>>,
    exclude: Vec<String>,
}

impl FieldFilter {
    /// Keeps only the wanted top-level fields of an object.
    pub fn apply(&self, value: Value) -> Value {
        let Value::Object(map) = value else {
            return value;
        };
        let kept: Map<String, Value> = map
            .into_iter()
            .filter(|(k, _)| {
                self.include.as_ref().is_none_or(|inc| inc.contains(k)) && !self.exclude.contains(k)
            })
            .collect();
        Value::Object(kept)
    }
}

/// Parses `field op value [and field op value ...]`.
///
/// Values holding spaces are quoted with `'` or `"`; `in` and `notin` take
/// a list in parentheses, `(a, b)`. Errors say which part is wrong.
pub fn parse_filter(text: &str) -> Result<Vec<Filter>, String> {
    let mut lx = Lexer { s: text, pos: 0 };
    let mut out = Vec::new();
    loop {
        let field = lx
            .word()
            .ok_or_else(|| format!("expected a field name at position {}", lx.pos + 1))?;
        let op_word = lx
            .word()
            .ok_or_else(|| format!("expected an operator after `{field}`"))?;
        let op = Op::parse(&op_word).ok_or_else(|| {
            format!(
                "`{op_word}` is not an operator (eq, ne, gt, ge, lt, le, like, ilike, in, notin)"
            )
        })?;
        let values = if matches!(op, Op::In | Op::NotIn) {
            lx.list()
                .map_err(|e| format!("{e} after `{field} {op_word}`"))?
        } else {
            vec![
                lx.value()
                    .ok_or_else(|| format!("expected a value after `{field} {op_word}`"))?,
            ]
        };
        out.push(Filter { field, op, values });
        match lx.word() {
            None => break,
            Some(w) if w.eq_ignore_ascii_case("and") => continue,
            Some(w) => return Err(format!("expected `and` or the end, found `{w}`")),
        }
    }
    if out.len() > 20 {
        return Err("at most 20 terms".into());
    }
    Ok(out)
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while let Some(c) = self.s[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn word(&mut self) -> Option<String> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        self.pos += end;
        Some(rest[..end].to_string())
    }

    fn quoted(&mut self) -> Option<String> {
        let rest = &self.s[self.pos..];
        let q = rest.chars().next()?;
        if q != '\'' && q != '"' {
            return None;
        }
        let close = rest[1..].find(q)?;
        self.pos += close + 2;
        Some(rest[1..close + 1].to_string())
    }

    fn value(&mut self) -> Option<String> {
        self.skip_ws();
        if self.s[self.pos..].starts_with(['\'', '"']) {
            return self.quoted();
        }
        self.word()
    }

    fn list(&mut self) -> Result<Vec<String>, String> {
        self.skip_ws();
        let rest = &self.s[self.pos..];
        if !rest.starts_with('(') {
            return Err("expected a list like (a, b)".into());
        }
        let close = rest.find(')').ok_or("the list has no closing `)`")?;
        let inner = &rest[1..close];
        self.pos += close + 1;
        let items: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if items.is_empty() {
            return Err("the list is empty".into());
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_grammar() {
        let f = parse_filter("name eq my_mediator and maximum_ttl gt 40000").unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].op, Op::Gt);
        let f = parse_filter("status in (active, 'sus pended')").unwrap();
        assert_eq!(f[0].values, vec!["active", "sus pended"]);
        let f = parse_filter("name eq 'two words' AND attributes.ringback eq moh").unwrap();
        assert_eq!(f[0].values, vec!["two words"]);
        assert_eq!(f[1].field, "attributes.ringback");
    }

    #[test]
    fn filter_errors_say_what_is_wrong() {
        assert!(parse_filter("name").unwrap_err().contains("operator"));
        assert!(
            parse_filter("name between 1")
                .unwrap_err()
                .contains("between")
        );
        assert!(parse_filter("name eq").unwrap_err().contains("value"));
        assert!(
            parse_filter("name eq a or b eq c")
                .unwrap_err()
                .contains("`or`")
        );
        assert!(parse_filter("name in a").unwrap_err().contains("list"));
    }

    #[test]
    fn limit_is_bounded() {
        let p = Params::parse(Some("limit=1001")).unwrap();
        assert!(p.list_query().is_err());
        let p = Params::parse(Some("limit=5&offset=2&order=name+desc")).unwrap();
        let q = p.list_query().unwrap();
        assert_eq!(
            (q.limit, q.offset, q.order),
            (5, 2, Some(("name".to_string(), true)))
        );
    }
}
