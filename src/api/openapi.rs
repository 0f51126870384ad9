//! The OpenAPI 3.1 document of the API: built here, committed as
//! `docs/openapi.json` (a test keeps the two equal; `mediator openapi`
//! prints it), and served at `/mediator/v1/openapi.json`.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

use super::resources::{ACCOUNT_FIELDS, BINDING_FIELDS, DIALOUT_FIELDS, DID_FIELDS};

/// The document as committed in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// GET /mediator/v1/openapi.json (no authentication).
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

fn param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "description": description, "schema": schema})
}

fn list_params() -> Vec<Value> {
    vec![
        param(
            "limit",
            "query",
            "Most items returned, 0 to 1000 (default 10).",
            json!({"type": "integer", "minimum": 0, "maximum": 1000}),
        ),
        param(
            "offset",
            "query",
            "Items skipped (default 0).",
            json!({"type": "integer", "minimum": 0}),
        ),
        param(
            "order",
            "query",
            "`FIELD asc` or `FIELD desc` (default `date_created asc`).",
            json!({"type": "string"}),
        ),
        param(
            "after",
            "query",
            "Only items that follow this SID in the order.",
            json!({"type": "string"}),
        ),
        param(
            "before",
            "query",
            "Only items that precede this SID in the order.",
            json!({"type": "string"}),
        ),
        param(
            "filter",
            "query",
            "`FIELD OP VALUE [and ...]`; OP is eq, ne, gt, ge, lt, le, like, ilike, in, notin; `in (a, b)`; dotted names reach attributes.",
            json!({"type": "string"}),
        ),
    ]
}

fn field_params() -> Vec<Value> {
    vec![
        param(
            "include_fields",
            "query",
            "Comma-separated fields to keep.",
            json!({"type": "string"}),
        ),
        param(
            "exclude_fields",
            "query",
            "Comma-separated fields to drop.",
            json!({"type": "string"}),
        ),
    ]
}

fn sid_param() -> Value {
    param(
        "sid",
        "path",
        "The object's secure ID.",
        json!({"type": "string"}),
    )
}

fn envelope(schema: Value) -> Value {
    json!({
        "type": "object",
        "required": ["body", "status"],
        "properties": {"body": schema, "status": {"type": "integer"}}
    })
}

fn ok_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": envelope(schema)}}})
}

fn error_responses(codes: &[&str]) -> Map<String, Value> {
    let mut m = Map::new();
    for c in codes {
        let description = match *c {
            "400" => {
                "Bad request: malformed JSON, a wrong type, an unknown field or a bad query argument; `errors[0].field` names it."
            }
            "401" => "No or wrong credentials.",
            "403" => "The account lacks a permission (hide_origination_did).",
            "404" => "No such object for this account.",
            "409" => {
                "No free redirect DID, an ambiguous redirect DID, a number already in a scheduled dialout, or a dialout that has begun (it can no longer be changed or deleted)."
            }
            "413" => "Body over 1 MiB.",
            "415" => "Body not application/json.",
            "503" => "The database cannot be reached; retry.",
            _ => "Error.",
        };
        m.insert(c.to_string(), json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
    }
    m
}

fn operation(
    summary: &str,
    params: Vec<Value>,
    body: Option<&str>,
    ok: (&str, Value),
    errors: &[&str],
) -> Value {
    let mut responses = error_responses(errors);
    if ok.0 == "204" {
        responses.insert("204".into(), json!({"description": "Deleted; no body."}));
    } else {
        responses.insert("200".into(), ok_response(summary, ok.1));
    }
    let mut op = json!({"summary": summary, "security": [{"basic": []}], "parameters": params, "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    op
}

fn list_of(schema: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "has_more": {"type": "boolean"},
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{schema}")}},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "pagination": {"type": "object", "properties": {"next": {"type": "string"}, "previous": {"type": "string"}}},
            "total": {"type": ["integer", "null"]}
        }
    })
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn object_schema(fields: &[&str], types: &[(&str, Value)]) -> Value {
    let mut props = Map::new();
    for f in fields {
        let t = types
            .iter()
            .find(|(n, _)| n == f)
            .map(|(_, t)| t.clone())
            .unwrap_or(json!({"type": "string"}));
        props.insert(f.to_string(), t);
    }
    json!({"type": "object", "properties": props})
}

fn collection(summary_list: &str, schema: &str, create: Option<(&str, Vec<Value>)>) -> Value {
    let mut list_parameters = list_params();
    list_parameters.extend(field_params());
    let mut item = json!({"get": operation(summary_list, list_parameters, None, ("200", list_of(schema)), &["400", "401", "503"])});
    if let Some((summary, extra)) = create {
        let mut params = extra;
        params.extend(field_params());
        item["post"] = operation(
            summary,
            params,
            Some(&format!("{schema}Input")),
            ("200", reference(schema)),
            &["400", "401", "403", "409", "413", "415", "503"],
        );
    }
    item
}

fn member(name: &str, schema: &str, writable: bool) -> Value {
    let mut get_params = vec![sid_param()];
    get_params.extend(field_params());
    let mut item = json!({"get": operation(&format!("Get a {name} by SID"), get_params, None, ("200", reference(schema)), &["400", "401", "404", "503"])});
    if writable {
        let mut patch_params = vec![
            sid_param(),
            param(
                "nested_objects",
                "query",
                "`replace` replaces nested objects whole instead of merging them by key.",
                json!({"type": "string", "enum": ["replace", "merge"]}),
            ),
        ];
        patch_params.extend(field_params());
        let errors = ["400", "401", "403", "404", "409", "413", "415", "503"];
        item["patch"] = operation(
            &format!("Change some fields of a {name}"),
            patch_params,
            Some(&format!("{schema}Input")),
            ("200", reference(schema)),
            &errors,
        );
        let mut put_params = vec![sid_param()];
        put_params.extend(field_params());
        item["put"] = operation(
            &format!("Replace a {name}"),
            put_params,
            Some(&format!("{schema}Input")),
            ("200", reference(schema)),
            &errors,
        );
        item["delete"] = operation(
            &format!("Delete a {name}"),
            vec![sid_param()],
            None,
            ("204", Value::Null),
            if name == "dialout" {
                &["401", "404", "409", "503"]
            } else {
                &["401", "404", "503"]
            },
        );
    }
    item
}

/// Builds the whole document.
pub fn document() -> Value {
    let int = json!({"type": "integer"});
    let nullable = json!({"type": ["string", "null"]});
    let attrs = json!({"type": "object", "additionalProperties": true,
        "description": "Built-in attributes (announce, cnam, fix_anonymous_cid, hide_origination_did, ringback, sip_header_X-*, and use_call_confirmation on dialouts) and custom ones."});
    let did_info = json!({"type": "object", "properties": {
        "country_code": {"type": "string"}, "e164_format": {"type": "string"}, "in_country_format": {"type": "string"},
        "international_format": {"type": "string"}, "phonenumber": {"type": "string"}}});
    let int_or_string =
        json!({"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"}]});
    let binding = object_schema(
        BINDING_FIELDS,
        &[
            ("attributes", attrs.clone()),
            ("dtmf", nullable.clone()),
            ("maximum_ttl", int.clone()),
            ("origination_did", nullable.clone()),
            ("redirect_did_info", did_info),
            ("wait_origination_did_ttl", int.clone()),
        ],
    );
    let dialout = object_schema(
        DIALOUT_FIELDS,
        &[("attributes", attrs.clone()), ("delay", int.clone())],
    );
    let call = object_schema(
        crate::model::call::FIELDS,
        &[
            ("account_sid", nullable.clone()),
            (
                "attributes",
                json!({"type": "object", "additionalProperties": true}),
            ),
            ("date_talk", nullable.clone()),
            ("dialout_sid", nullable.clone()),
            ("dtmf", nullable.clone()),
            ("duration", int.clone()),
            ("hangup_side", nullable.clone()),
            ("outcome", nullable.clone()),
            ("reference_sid", nullable.clone()),
            ("sip_status", int.clone()),
        ],
    );
    let binding_input = json!({"type": "object", "additionalProperties": false, "properties": {
        "attributes": attrs, "destination_did": {"type": "string"}, "dtmf": {"type": ["string", "null"], "pattern": "^[0-9*#A-Da-d,]*$"},
        "maximum_ttl": int_or_string, "name": {"type": ["string", "null"]}, "origination_did": {"type": ["string", "null"]},
        "redirect_did": {"type": "string"}, "wait_origination_did_ttl": int_or_string,
        "account_sid": {"type": "string", "readOnly": true}, "binding_sid": {"type": "string", "readOnly": true},
        "date_created": {"type": "string", "readOnly": true}, "redirect_did_info": {"type": "object", "readOnly": true}}});
    let dialout_input = json!({"type": "object", "additionalProperties": false, "properties": {
        "attributes": {"type": "object"}, "delay": int_or_string, "redirect_did": {"type": "string"},
        "stage_one_destination_did": {"type": "string"}, "stage_two_destination_did": {"type": "string"},
        "account_sid": {"type": "string", "readOnly": true}, "dialout_sid": {"type": "string", "readOnly": true},
        "date_created": {"type": "string", "readOnly": true}}});
    let error = json!({"type": "object", "properties": {
        "body": {"type": "object", "properties": {
            "message": {"type": "string"},
            "errors": {"type": ["array", "null"], "items": {"type": "object", "properties": {
                "field": {"type": ["string", "null"]}, "message": {"type": "string"}, "reference_sid": {"type": ["string", "null"]}}}}}},
        "status": {"type": "integer"}}});
    let create_binding_params = vec![
        param(
            "fallback_country",
            "query",
            "ISO 3166-1 alpha-3 country to pick the redirect DID from when the caller's country has none free.",
            json!({"type": "string"}),
        ),
        param(
            "reuse",
            "query",
            "Return a live binding with the same destination, origination and redirect DID instead of a new one.",
            json!({"type": "boolean"}),
        ),
    ];
    let create_dialout_params = vec![param(
        "fallback_country",
        "query",
        "As for bindings (an extension).",
        json!({"type": "string"}),
    )];
    let mut paths = Map::new();
    paths.insert(
        "/accounts".into(),
        collection("List accounts (an account sees itself)", "Account", None),
    );
    paths.insert(
        "/accounts/{sid}".into(),
        member("account", "Account", false),
    );
    paths.insert("/dids".into(), collection("List DIDs", "Did", None));
    paths.insert("/dids/{sid}".into(), member("DID", "Did", false));
    paths.insert(
        "/bindings".into(),
        collection(
            "List live bindings",
            "Binding",
            Some(("Create a binding", create_binding_params)),
        ),
    );
    paths.insert("/bindings/{sid}".into(), member("binding", "Binding", true));
    paths.insert(
        "/dialouts".into(),
        collection(
            "List scheduled dialouts",
            "Dialout",
            Some(("Create a dialout", create_dialout_params)),
        ),
    );
    paths.insert("/dialouts/{sid}".into(), member("dialout", "Dialout", true));
    paths.insert(
        "/calls".into(),
        collection(
            "List call detail records, by date_stop (an extension)",
            "Call",
            None,
        ),
    );
    paths.insert(
        "/calls/{sid}".into(),
        member("call detail record", "Call", false),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "The OpenAPI document"}}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Mediator API",
            "version": "1",
            "description": "The Mediator REST API (bindings, dialouts, DIDs, accounts), compatible with CarrierX Mediator clients. Decisions and deviations: docs/api.md."
        },
        "servers": [{"url": "http://127.0.0.1:8080/mediator/v1"}],
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": {
                "Account": object_schema(ACCOUNT_FIELDS, &[]),
                "Did": object_schema(DID_FIELDS, &[]),
                "Binding": binding,
                "BindingInput": binding_input,
                "Dialout": dialout,
                "DialoutInput": dialout_input,
                "Call": call,
                "Error": error,
            }
        },
        "paths": paths,
    })
}

/// The document as pretty JSON with a final newline, as committed.
pub fn document_text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}
