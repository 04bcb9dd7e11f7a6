//! The one reading of a JSON request body, shared by the service (`ferro-service`'s `JsonBody`
//! extractor) and the device's local API, so both refuse a bad body with the same stable code
//! and wording: malformed JSON is `malformed_json`, anything but one JSON object or a value of the
//! wrong type is `invalid_body`, an unknown field `unknown_field`. Messages name the field and the
//! expected type but never echo a value (a misplaced password must not come back in an error).
//! It is serde only: each HTTP stack wraps [`BodyError`] in its own error response.

use serde::de::DeserializeOwned;

use crate::ErrorCode;

/// Why a JSON body was refused: the stable code (its HTTP status is
/// [`ErrorCode::http_status`]) and the message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// The stable code.
    pub code: ErrorCode,
    /// What is wrong, naming the field; never a value from the body.
    pub message: String,
}

impl BodyError {
    fn new(code: ErrorCode, message: impl Into<String>) -> BodyError {
        BodyError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for BodyError {}

/// Whether a `Content-Type` header value names JSON (`application/json`, any parameters, any
/// case).
#[must_use]
pub fn is_json_content_type(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Parse a request body holding exactly one JSON object into `T`, classifying failures.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    // Syntax first, so malformed JSON is reported as such whatever its shape.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        return Err(BodyError::new(
            ErrorCode::MalformedJson,
            format!("the body is not well-formed JSON ({msg}); send one JSON object"),
        ));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(BodyError::new(
            ErrorCode::InvalidBody,
            "the body must be a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut *de);
    let value = result.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let msg = inner.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        use serde_json::error::Category;
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => BodyError::new(
                ErrorCode::MalformedJson,
                format!("the body is not well-formed JSON ({msg}); send a JSON object"),
            ),
            Category::Data => {
                if let Some(rest) = msg.strip_prefix("unknown field ") {
                    let field = rest.split(',').next().unwrap_or(rest);
                    let expected = rest.split_once(", expected ").map(|x| x.1).unwrap_or("");
                    BodyError::new(
                        ErrorCode::UnknownField,
                        format!("unknown field {field}; remove it (expected {expected})"),
                    )
                } else if msg.starts_with("missing field") {
                    BodyError::new(ErrorCode::InvalidBody, msg)
                } else {
                    let expected = msg
                        .rsplit_once("expected ")
                        .map(|x| x.1)
                        .unwrap_or("another value");
                    let at = if path == "." {
                        "the body".to_string()
                    } else {
                        format!("`{path}`")
                    };
                    BodyError::new(
                        ErrorCode::InvalidBody,
                        format!("invalid value at {at}: expected {expected}"),
                    )
                }
            }
        }
    })?;
    // Nothing but whitespace may follow the value.
    de.end().map_err(|_| {
        BodyError::new(
            ErrorCode::MalformedJson,
            "the body has characters after the JSON value; send exactly one JSON object",
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Press {
        pressed: bool,
    }

    /// Each bad body with the one code it gets; the message never echoes the value.
    #[test]
    fn each_bad_body_gets_its_code() {
        let cases: [(&[u8], ErrorCode); 7] = [
            (b"{", ErrorCode::MalformedJson),
            (b"", ErrorCode::MalformedJson),
            (br#"{"pressed":true} x"#, ErrorCode::MalformedJson),
            (b"[true]", ErrorCode::InvalidBody),
            (br#"{"pressed":"secret-value"}"#, ErrorCode::InvalidBody),
            (br#"{}"#, ErrorCode::InvalidBody),
            (br#"{"pressed":true,"x":1}"#, ErrorCode::UnknownField),
        ];
        for (body, code) in cases {
            let err = parse_json_body::<Press>(body).unwrap_err();
            assert_eq!(err.code, code, "{}", String::from_utf8_lossy(body));
            assert!(!err.message.contains("secret-value"), "{}", err.message);
        }
        assert!(
            parse_json_body::<Press>(br#" {"pressed": true} "#)
                .unwrap()
                .pressed
        );
    }

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
        ] {
            assert!(is_json_content_type(yes), "{yes}");
        }
        for no in ["text/json", "application/jsonx", "", "application/cbor"] {
            assert!(!is_json_content_type(no), "{no}");
        }
    }
}
