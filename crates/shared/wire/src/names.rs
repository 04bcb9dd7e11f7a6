//! The one way an enum gets its names on the wire and in the database: [`named_enum!`] declares
//! the enum with each variant's name beside it, and gives it `as_str()` (const), `Display`,
//! `FromStr` (exactly those names; anything else is [`crate::UnknownVariant`]) and `ALL`, so
//! a name is written once and the mapping cannot drift between directions. Serde keeps deriving
//! the JSON form from the enum as before (each enum's `#[serde]` attributes say how); a test in
//! `lib.rs` checks that serde's name and `as_str()` agree for every variant of every enum
//! declared here, so the OpenAPI document and stored values stay as they were.

/// Declares an enum whose variants carry fixed names: see the module docs.
///
/// ```ignore
/// named_enum! {
///     /// Doc comment and attributes of the enum, as usual.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
///     pub enum OsFeed {
///         /// Doc comment of the variant.
///         Retail => "Retail",
///         RetailEval => "RetailEval",
///     }
/// }
/// ```
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used on the wire and in the database.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::UnknownVariant),
                }
            }
        }
    };
}
