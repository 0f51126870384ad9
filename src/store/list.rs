//! Lists with pagination, result filtering and ordering, translated to SQL
//! that SQLite and PostgreSQL both run.
//!
//! Source: the reference's "Pagination" and "Result Filtering" sections.
//! Every query binds `$1` = the account's SID and `$2` = now (ms since the
//! epoch), so that field expressions (remaining TTLs) can use `$2`.

use super::StoreError;
use crate::model::parse_time;

/// A comparison of "Result Filtering".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
    /// `like`: case-sensitive, `%` matches any run of characters.
    Like,
    /// `ilike`: as `like`, ignoring case.
    Ilike,
    /// `in (a, b)`
    In,
    /// `notin (a, b)`
    NotIn,
}

impl Op {
    /// Reads an operator name.
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "like" => Op::Like,
            "ilike" => Op::Ilike,
            "in" => Op::In,
            "notin" => Op::NotIn,
            _ => return None,
        })
    }

    fn sql(self) -> &'static str {
        match self {
            Op::Eq | Op::In => "=",
            Op::Ne | Op::NotIn => "<>",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Like | Op::Ilike => "LIKE",
        }
    }
}

/// One `field op value` term; `values` has one entry except for `in` and
/// `notin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Field name, dotted for nested ones (`attributes.ringback`).
    pub field: String,
    /// The comparison.
    pub op: Op,
    /// The value or values, as written.
    pub values: Vec<String>,
}

/// A SID cursor (`after` / `before`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// Items that follow this SID in the list's order.
    After(String),
    /// Items that precede this SID in the list's order.
    Before(String),
}

/// What a list request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Terms joined with `and`.
    pub filters: Vec<Filter>,
    /// Order field and whether descending; `None`: `date_created asc`.
    pub order: Option<(String, bool)>,
    /// Most items, 1 to 1000.
    pub limit: i64,
    /// Items skipped.
    pub offset: i64,
    /// SID cursor.
    pub cursor: Option<Cursor>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items in order.
    pub items: Vec<T>,
    /// Items matching the filters, whatever the page.
    pub total: i64,
    /// More items lie beyond this page in the direction of travel.
    pub has_more: bool,
}

/// How a field's values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, compared as text.
    Text,
    /// A phone number: a leading `+` in the value is ignored.
    Phone,
    /// An integer.
    Int,
    /// A time stored as ms; values are RFC 3339.
    Time,
}

/// A field a list can be filtered and ordered by.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// The API's name.
    pub name: &'static str,
    /// SQL expression; may use `$2` (now).
    pub expr: &'static str,
    /// How it compares.
    pub kind: Kind,
    /// Whether it can be NULL.
    pub nullable: bool,
}

/// The SQL shape of one resource's list.
#[derive(Debug, Clone, Copy)]
pub struct ListSpec {
    /// `FROM ...` clause, with joins.
    pub from: &'static str,
    /// Columns selected for the row mapper.
    pub columns: &'static str,
    /// Always-true conditions (account, liveness); may use `$1` and `$2`.
    pub base_where: &'static str,
    /// The SID column.
    pub sid: &'static str,
    /// Filterable and orderable fields.
    pub fields: &'static [FieldSpec],
    /// Column holding the attributes JSON, if the resource has one.
    pub attributes: Option<&'static str>,
    /// Prefix of fields read from a joined DID (`redirect_did_info.`).
    pub nested: &'static [(&'static str, &'static str)],
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
}

/// The query text and its parameters after `$1`, `$2`.
#[derive(Debug, Default)]
pub struct Built {
    /// SQL text.
    pub sql: String,
    /// Parameters from `$3` on.
    pub params: Vec<Param>,
}

/// Which SQL dialect to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

struct Resolved {
    expr: String,
    kind: Kind,
    nullable: bool,
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::BadQuery {
        field: "filter".into(),
        message: message.into(),
    }
}

impl ListSpec {
    fn resolve(
        &self,
        name: &str,
        dialect: Dialect,
        params: &mut Vec<Param>,
    ) -> Result<Resolved, StoreError> {
        if let Some(f) = self.fields.iter().find(|f| f.name == name) {
            return Ok(Resolved {
                expr: f.expr.to_string(),
                kind: f.kind,
                nullable: f.nullable,
            });
        }
        if let Some(key) = name.strip_prefix("attributes.")
            && let Some(col) = self.attributes
            && !key.is_empty()
        {
            let n = push(params, Param::Text(json_path(key, dialect)));
            let expr = match dialect {
                Dialect::Sqlite => format!("CAST(json_extract({col}, ${n}) AS TEXT)"),
                Dialect::Postgres => format!("(({col})::jsonb ->> ${n})"),
            };
            return Ok(Resolved {
                expr,
                kind: Kind::Text,
                nullable: true,
            });
        }
        for (prefix_field, expr) in self.nested {
            if name == *prefix_field {
                return Ok(Resolved {
                    expr: expr.to_string(),
                    kind: Kind::Text,
                    nullable: true,
                });
            }
        }
        Err(bad(format!("unknown field `{name}`")))
    }
}

fn json_path(key: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\"")),
        Dialect::Postgres => key.to_string(),
    }
}

fn push(params: &mut Vec<Param>, p: Param) -> usize {
    params.push(p);
    params.len() + 2
}

fn value_param(field: &str, kind: Kind, v: &str) -> Result<Param, StoreError> {
    Ok(match kind {
        Kind::Text => Param::Text(v.to_string()),
        Kind::Phone => Param::Text(v.trim().trim_start_matches('+').to_string()),
        Kind::Int => Param::Int(
            v.trim()
                .parse()
                .map_err(|_| bad(format!("`{v}` is not an integer, as {field} needs")))?,
        ),
        Kind::Time => Param::Int(
            parse_time(v.trim())
                .ok_or_else(|| bad(format!("`{v}` is not an RFC 3339 time, as {field} needs")))?,
        ),
    })
}

/// Turns a `like` pattern (only `%` is a wildcard) into the dialect's
/// pattern; SQLite's case-sensitive match is GLOB.
fn like_pattern(v: &str, op: Op, dialect: Dialect) -> String {
    let mut out = String::with_capacity(v.len() + 4);
    let glob = dialect == Dialect::Sqlite && op == Op::Like;
    for c in v.chars() {
        match (glob, c) {
            (true, '%') => out.push('*'),
            (true, '*') => out.push_str("[*]"),
            (true, '?') => out.push_str("[?]"),
            (true, '[') => out.push_str("[[]"),
            (false, '\\') => out.push_str("\\\\"),
            (false, '_') => out.push_str("\\_"),
            _ => out.push(c),
        }
    }
    out
}

/// Builds the `AND ...` conditions of `filters`.
fn where_filters(
    spec: &ListSpec,
    filters: &[Filter],
    dialect: Dialect,
    params: &mut Vec<Param>,
) -> Result<String, StoreError> {
    let mut sql = String::new();
    for f in filters {
        let r = spec.resolve(&f.field, dialect, params)?;
        let text_like = matches!(r.kind, Kind::Text | Kind::Phone);
        let expr = if r.nullable && text_like {
            format!("COALESCE({}, '')", r.expr)
        } else {
            r.expr.clone()
        };
        match f.op {
            Op::Eq | Op::Ne if r.nullable && f.values.len() == 1 && f.values[0] == "null" => {
                let not = if f.op == Op::Eq { "" } else { "NOT " };
                sql.push_str(&format!(" AND {} IS {not}NULL", r.expr));
            }
            Op::Like | Op::Ilike => {
                if !text_like {
                    return Err(bad(format!(
                        "{} works on text fields, and {} is not one",
                        if f.op == Op::Like { "like" } else { "ilike" },
                        f.field
                    )));
                }
                let n = push(
                    params,
                    Param::Text(like_pattern(&f.values[0], f.op, dialect)),
                );
                let clause = match (dialect, f.op) {
                    (Dialect::Sqlite, Op::Like) => format!("{expr} GLOB ${n}"),
                    (Dialect::Sqlite, _) => format!("{expr} LIKE ${n} ESCAPE '\\'"),
                    (Dialect::Postgres, Op::Like) => format!("{expr} LIKE ${n} ESCAPE '\\'"),
                    (Dialect::Postgres, _) => format!("{expr} ILIKE ${n} ESCAPE '\\'"),
                };
                sql.push_str(" AND ");
                sql.push_str(&clause);
            }
            Op::In | Op::NotIn => {
                let mut list = Vec::new();
                for v in &f.values {
                    let n = push(params, value_param(&f.field, r.kind, v)?);
                    list.push(format!("${n}"));
                }
                let not = if f.op == Op::In { "" } else { "NOT " };
                sql.push_str(&format!(" AND {expr} {not}IN ({})", list.join(", ")));
            }
            op => {
                let n = push(params, value_param(&f.field, r.kind, &f.values[0])?);
                sql.push_str(&format!(" AND {expr} {} ${n}", op.sql()));
            }
        }
    }
    Ok(sql)
}

/// The order expression, its kind and direction.
pub struct Order {
    /// SQL expression, NULLs folded to `''` for text.
    pub expr: String,
    /// Its kind, to decode a cursor value.
    pub kind: Kind,
    /// Descending.
    pub desc: bool,
}

/// Resolves the order of `q` (default `date_created asc`).
pub fn order(
    spec: &ListSpec,
    q: &ListQuery,
    dialect: Dialect,
    params: &mut Vec<Param>,
) -> Result<Order, StoreError> {
    let (name, desc) = q
        .order
        .clone()
        .unwrap_or_else(|| ("date_created".to_string(), false));
    let r = spec
        .resolve(&name, dialect, params)
        .map_err(|_| StoreError::BadQuery {
            field: "order".into(),
            message: format!("cannot order by unknown field `{name}`"),
        })?;
    let expr = if r.nullable && matches!(r.kind, Kind::Text | Kind::Phone) {
        format!("COALESCE({}, '')", r.expr)
    } else {
        r.expr
    };
    Ok(Order {
        expr,
        kind: r.kind,
        desc,
    })
}

/// The count query for `q`'s filters.
pub fn count_sql(spec: &ListSpec, q: &ListQuery, dialect: Dialect) -> Result<Built, StoreError> {
    let mut params = Vec::new();
    let filters = where_filters(spec, &q.filters, dialect, &mut params)?;
    Ok(Built {
        sql: format!(
            "SELECT COUNT(*) FROM {} WHERE {}{filters}",
            spec.from, spec.base_where
        ),
        params,
    })
}

/// The query that reads the cursor row's order value.
pub fn cursor_sql(
    spec: &ListSpec,
    q: &ListQuery,
    dialect: Dialect,
    sid: &str,
) -> Result<(Built, Kind), StoreError> {
    let mut params = Vec::new();
    let o = order(spec, q, dialect, &mut params)?;
    let n = push(&mut params, Param::Text(sid.to_string()));
    Ok((
        Built {
            sql: format!(
                "SELECT {} FROM {} WHERE {} AND {} = ${n}",
                o.expr, spec.from, spec.base_where, spec.sid
            ),
            params,
        },
        o.kind,
    ))
}

/// The page query: `limit + 1` rows so that `has_more` can be told.
/// `cursor_value` is the cursor row's order value read with [`cursor_sql`].
pub fn page_sql(
    spec: &ListSpec,
    q: &ListQuery,
    dialect: Dialect,
    cursor_value: Option<Param>,
) -> Result<Built, StoreError> {
    let mut params = Vec::new();
    let filters = where_filters(spec, &q.filters, dialect, &mut params)?;
    let o = order(spec, q, dialect, &mut params)?;
    // Walking backwards (before=) reads in reverse order; the caller flips the rows.
    let backwards = matches!(q.cursor, Some(Cursor::Before(_)));
    let desc = o.desc != backwards;
    let mut cursor_clause = String::new();
    if let (Some(cursor), Some(value)) = (&q.cursor, cursor_value) {
        let sid = match cursor {
            Cursor::After(s) | Cursor::Before(s) => s.clone(),
        };
        let v = push(&mut params, value);
        let s = push(&mut params, Param::Text(sid));
        let cmp = if desc { "<" } else { ">" };
        cursor_clause = format!(
            " AND ({e} {cmp} ${v} OR ({e} = ${v} AND {sid} {cmp} ${s}))",
            e = o.expr,
            sid = spec.sid
        );
    }
    let dir = if desc { "DESC" } else { "ASC" };
    let limit = push(&mut params, Param::Int(q.limit + 1));
    let offset = push(&mut params, Param::Int(q.offset));
    Ok(Built {
        sql: format!(
            "SELECT {} FROM {} WHERE {}{filters}{cursor_clause} ORDER BY {} {dir}, {} {dir} LIMIT ${limit} OFFSET ${offset}",
            spec.columns, spec.from, spec.base_where, o.expr, spec.sid
        ),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_everything_but_percent() {
        assert_eq!(
            like_pattern("Ac_c%", Op::Like, Dialect::Postgres),
            "Ac\\_c%"
        );
        assert_eq!(
            like_pattern("a*?[%", Op::Like, Dialect::Sqlite),
            "a[*][?][[]*"
        );
        assert_eq!(like_pattern("a_%", Op::Ilike, Dialect::Sqlite), "a\\_%");
    }

    #[test]
    fn operators_parse_in_any_case() {
        assert_eq!(Op::parse("NotIn"), Some(Op::NotIn));
        assert_eq!(Op::parse("between"), None);
    }
}
