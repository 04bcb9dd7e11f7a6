//! What the OpenAPI document says about every route at once, applied after the routes'
//! annotations are collected (`app::openapi`): the answers the shared extractors give on any
//! route (400 for a malformed ID, query or JSON body, 422 for JSON of the wrong shape, 413 and
//! 415 for a body), the formats of
//! path parameters whose handlers parse a `String` (device IDs, key IDs, serials, ...), and a
//! description on every response. A route's own annotation wins where it documents a status
//! itself.
//!
//! Depends on `ferro_wire::schema` for the formats; knows nothing of the handlers beyond the
//! document.

use ferro_wire::ErrorBody;
use ferro_wire::schema::{AnyCaseKeyId, CaSerial, DeviceId, KeyId, Name, Sha256};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{
    ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder, Schema, schema::SchemaType,
};
use utoipa::{Modify, PartialSchema, ToSchema};

/// Path parameters whose handlers take a `String` and parse it, by name: the schema component
/// that states the format they check. (UUID parameters are typed in their annotations.)
const PATH_PARAMETER_FORMATS: &[(&str, &str)] = &[
    ("deviceId", "DeviceId"),
    ("keyId", "KeyId"),
    ("serial", "CaSerial"),
    ("packageSha256", "Sha256"),
    ("capabilityType", "CapabilityType"),
    ("feed", "OsFeed"),
];

/// Shared responses (`components.responses`): (name, status, description).
const SHARED_RESPONSES: &[(&str, &str, &str)] = &[
    (
        "BadRequest",
        "400",
        "`malformed_json`: the body is not well-formed JSON; `unknown_field`: the body has a \
         field the API does not know; `invalid_id`: a path parameter is not a well-formed ID; \
         `invalid_query`: a query parameter is malformed or unknown",
    ),
    (
        "UnprocessableEntity",
        "422",
        "`invalid_body`: well-formed JSON of the wrong shape (a missing field, a wrong type, an \
         unknown enum value, a value out of range); the message names the field",
    ),
    (
        "PayloadTooLarge",
        "413",
        "`payload_too_large`: the body is larger than the service's limit",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "`unsupported_media_type`: the body is not of the media type the route takes",
    ),
];

/// The document-wide additions (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Contract;

impl Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, schema) in [
            (DeviceId::name(), DeviceId::schema()),
            (KeyId::name(), KeyId::schema()),
            (AnyCaseKeyId::name(), AnyCaseKeyId::schema()),
            (CaSerial::name(), CaSerial::schema()),
            (Sha256::name(), Sha256::schema()),
            (Name::name(), Name::schema()),
        ] {
            components.schemas.insert(name.into_owned(), schema);
        }
        for (name, _, description) in SHARED_RESPONSES {
            let error = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build();
            components.responses.insert(
                (*name).to_string(),
                ResponseBuilder::new()
                    .description(*description)
                    .content("application/json", error)
                    .into(),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation(op);
            }
        }
    }
}

fn shared(name: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
}

fn operation(op: &mut Operation) {
    let mut takes_input = op.request_body.is_some();
    for param in op.parameters.iter_mut().flatten() {
        let RefOr::T(param) = param else { continue };
        takes_input |= matches!(param.parameter_in, ParameterIn::Path | ParameterIn::Query);
        if param.parameter_in != ParameterIn::Path {
            continue;
        }
        let bare = matches!(&param.schema, Some(RefOr::T(Schema::Object(o)))
            if o.format.is_none() && o.pattern.is_none() && o.enum_values.is_none()
                && o.schema_type == SchemaType::from(utoipa::openapi::Type::String));
        if let Some((_, component)) = PATH_PARAMETER_FORMATS
            .iter()
            .find(|(name, _)| *name == param.name)
            && bare
        {
            param.schema = Some(RefOr::Ref(Ref::from_schema_name(*component)));
        }
    }
    let responses = &mut op.responses.responses;
    if takes_input {
        responses
            .entry("400".into())
            .or_insert_with(|| shared("BadRequest"));
    }
    if op.request_body.as_ref().is_some_and(
        |body| matches!(body, RefOr::T(b) if b.content.contains_key("application/json")),
    ) {
        responses
            .entry("422".into())
            .or_insert_with(|| shared("UnprocessableEntity"));
    }
    if op.request_body.is_some() {
        responses
            .entry("413".into())
            .or_insert_with(|| shared("PayloadTooLarge"));
        responses
            .entry("415".into())
            .or_insert_with(|| shared("UnsupportedMediaType"));
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            response.description = default_description(status).to_string();
        }
    }
}

/// The description of a response whose annotation gives none (OpenAPI requires one).
fn default_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "No content",
        "206" => "Partial content",
        "304" => "Not modified",
        "400" => "Malformed request (see the error code)",
        "401" => "Not authenticated (see the error code)",
        "403" => "The caller may not do this (see the error code)",
        "404" => "Not found (see the error code)",
        "409" => "Conflict with the object's state (see the error code)",
        "413" => "`payload_too_large`",
        "415" => "`unsupported_media_type`",
        "416" => "`range_not_satisfiable`",
        "422" => "Well-formed but invalid request (see the error code)",
        "429" => "`rate_limited`: retry after the `Retry-After` header's seconds",
        "503" => "`unavailable`: retry later",
        _ => "See the error code",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(&crate::openapi_json()).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    out.push((format!("{} {path}", method.to_uppercase()), op));
                }
            }
        }
        assert!(out.len() > 50, "too few operations: {}", out.len());
        out
    }

    /// Every `$ref` of the document names something in its `components`.
    #[test]
    fn no_reference_dangles() {
        fn walk(v: &Value, doc: &Value, dangling: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let target = r
                            .strip_prefix("#/")
                            .map(|p| p.split('/').fold(doc, |node, key| &node[key]));
                        if target.is_none_or(Value::is_null) {
                            dangling.push(r.clone());
                        }
                    }
                    map.values().for_each(|v| walk(v, doc, dangling));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, dangling)),
                _ => {}
            }
        }
        let doc = document();
        let mut dangling = Vec::new();
        walk(&doc, &doc, &mut dangling);
        dangling.sort();
        dangling.dedup();
        assert!(dangling.is_empty(), "dangling references: {dangling:?}");
    }

    /// The answers of the shared extractors are documented wherever they can be given: 400 where
    /// an operation takes parameters or a body, 413 and 415 where it takes a body, 422 where the
    /// body is JSON; and every response says what it is.
    #[test]
    fn shared_answers_are_documented() {
        let doc = document();
        let mut missing = Vec::new();
        for (name, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            let has_params = op["parameters"].as_array().is_some_and(|p| !p.is_empty());
            let body = op.get("requestBody");
            let mut wanted = Vec::new();
            if has_params || body.is_some() {
                wanted.push("400");
            }
            if let Some(body) = body {
                wanted.extend(["413", "415"]);
                if body["content"].get("application/json").is_some() {
                    wanted.push("422");
                }
            }
            for status in wanted {
                if !responses.contains_key(status) {
                    missing.push(format!("{name}: {status}"));
                }
            }
            for (status, response) in responses {
                let described = response.get("$ref").is_some()
                    || response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty());
                if !described {
                    missing.push(format!("{name}: description of {status}"));
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:#?}");
    }

    /// Path parameters state their format (a UUID, a pattern, an enumeration or a named schema),
    /// and `limit` states the range the service takes.
    #[test]
    fn parameters_state_their_format() {
        let doc = document();
        let mut vague = Vec::new();
        for (name, op) in operations(&doc) {
            for param in op["parameters"].as_array().into_iter().flatten() {
                let schema = &param["schema"];
                let pname = param["name"].as_str().unwrap_or_default();
                if param["in"] == "path"
                    && ["format", "pattern", "enum", "$ref"]
                        .iter()
                        .all(|k| schema.get(k).is_none())
                {
                    vague.push(format!("{name}: {pname}"));
                }
                if pname == "limit"
                    && (schema["minimum"] != 1
                        || schema["maximum"] != u64::from(ferro_wire::MAX_PAGE_LIMIT))
                {
                    vague.push(format!("{name}: limit {schema}"));
                }
            }
        }
        assert!(
            vague.is_empty(),
            "parameters without their format: {vague:#?}"
        );
    }
}
