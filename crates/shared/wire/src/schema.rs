//! OpenAPI schemas of the string formats the API checks (feature `openapi`): device IDs, key
//! IDs, certificate serials and names. A field or a path parameter that holds one (a
//! [`crate::DeviceId`], or a `String` checked by the service) says so with `value_type =
//! schema::DeviceId` (or the service's path parameter table), so its pattern is written once,
//! here, beside the Rust check it mirrors (`crate::DeviceId`'s parse, [`crate::is_valid_key_id`],
//! [`crate::is_valid_name`]).
//! The patterns are Python/ECMA-compatible regular expressions; `tests` below checks each
//! against its Rust check on the same inputs.

use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// Device IDs as accepted: 128 hex characters, either case (answers are lower case).
pub const DEVICE_ID_PATTERN: &str = "^[0-9A-Fa-f]{128}$";
/// Key IDs: 64 lowercase hex characters.
pub const KEY_ID_PATTERN: &str = "^[0-9a-f]{64}$";
/// Key IDs where a request accepts either case (a capability's `developerKeyIds`).
pub const ANY_CASE_KEY_ID_PATTERN: &str = "^[0-9A-Fa-f]{64}$";
/// SHA-256 digests: 64 lowercase hex characters.
pub const SHA256_PATTERN: &str = "^[0-9a-f]{64}$";
/// Tenant CA certificate serials: 1 to 40 hex characters, either case (listed in lower case).
pub const CA_SERIAL_PATTERN: &str = "^[0-9A-Fa-f]{1,40}$";
/// Tenant, product, device group, token and key names: 1 to 50 of ASCII letters, digits, space,
/// `-` and `_`, not starting or ending with a space.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]([A-Za-z0-9 _-]{0,48}[A-Za-z0-9_-])?$";

macro_rules! string_format {
    ($(#[$doc:meta])* $name:ident, $pattern:expr, $min:expr, $max:expr, $description:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .min_length(Some($min))
                    .max_length(Some($max))
                    .description(Some($description))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

string_format!(
    /// A device ID (component `DeviceId`).
    DeviceId,
    DEVICE_ID_PATTERN,
    crate::DEVICE_ID_HEX_LEN,
    crate::DEVICE_ID_HEX_LEN,
    "Device ID: 128 hex characters, the SHA-512 of the device's public key (accepted in either \
     case, answered in lower case)"
);
string_format!(
    /// A key ID (component `KeyId`).
    KeyId,
    KEY_ID_PATTERN,
    64,
    64,
    "Key ID: 64 lowercase hex characters, the SHA-256 of the key's DER SubjectPublicKeyInfo"
);
string_format!(
    /// A key ID in a request that accepts either case (component `AnyCaseKeyId`).
    AnyCaseKeyId,
    ANY_CASE_KEY_ID_PATTERN,
    64,
    64,
    "Key ID: 64 hex characters, the SHA-256 of the key's DER SubjectPublicKeyInfo (accepted in \
     either case, answered in lower case)"
);
string_format!(
    /// A SHA-256 digest in hex (component `Sha256`).
    Sha256,
    SHA256_PATTERN,
    64,
    64,
    "SHA-256 digest: 64 lowercase hex characters"
);
string_format!(
    /// A tenant CA certificate's serial (component `CaSerial`).
    CaSerial,
    CA_SERIAL_PATTERN,
    1,
    40,
    "Certificate serial number in hex (accepted in either case, listed in lower case)"
);
string_format!(
    /// A name (component `Name`).
    Name,
    NAME_PATTERN,
    1,
    crate::MAX_NAME_LEN,
    "Name: 1 to 50 ASCII letters, digits, spaces, `-` and `_`, not starting or ending with a space"
);

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).expect("pattern").is_match(s)
    }

    /// Each pattern accepts exactly what its Rust check accepts, on the edge cases of both.
    #[test]
    fn patterns_are_the_rust_checks() {
        let hex128 = ["a".repeat(128), "A".repeat(128), "0f".repeat(64)];
        let not_hex128 = [
            "a".repeat(127),
            "a".repeat(129),
            format!("{}g", "a".repeat(127)),
            format!("{}\n", "a".repeat(128)),
            String::new(),
        ];
        for s in hex128.iter().chain(&not_hex128) {
            assert_eq!(
                matches(DEVICE_ID_PATTERN, s),
                s.parse::<crate::DeviceId>().is_ok(),
                "{s:?}"
            );
        }
        for s in [
            "a".repeat(64),
            "0123456789abcdef".repeat(4),
            "A".repeat(64),
            "a".repeat(63),
            "a".repeat(65),
            String::new(),
        ] {
            assert_eq!(
                matches(KEY_ID_PATTERN, &s),
                crate::is_valid_key_id(&s),
                "{s:?}"
            );
            // What the service checks of a capability's `developerKeyIds`.
            assert_eq!(
                matches(ANY_CASE_KEY_ID_PATTERN, &s),
                crate::is_valid_key_id(&s.to_ascii_lowercase()),
                "{s:?}"
            );
        }
        for s in [
            "Contoso",
            "Field Test OS Evaluation",
            "a-b_c 1",
            "x",
            "-",
            "",
            " lead",
            "trail ",
            "two  spaces",
            "semi;colon",
            "tab\there",
            "é",
            &"x".repeat(50),
            &"x".repeat(51),
        ] {
            assert_eq!(matches(NAME_PATTERN, s), crate::is_valid_name(s), "{s:?}");
        }
        for (s, ok) in [
            ("0a1B", true),
            ("0", true),
            ("", false),
            (&*"a".repeat(40), true),
            (&*"a".repeat(41), false),
            ("xyz", false),
        ] {
            assert_eq!(matches(CA_SERIAL_PATTERN, s), ok, "{s:?}");
        }
    }
}
