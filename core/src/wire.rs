//! Enums whose values travel on the wire as fixed names (`mcp_server`, `opt_in`, ...).
//!
//! [`wire_enum!`](crate::wire_enum) declares such an enum from one list of `Variant = "name"`
//! pairs: the serde name of each variant, `ALL`, `as_str` and `from_wire` ([`WireEnum`]) all
//! come from that list, so a value that an answer can carry is also a value a filter accepts
//! and the OpenAPI document lists.

/// An enum declared with [`wire_enum!`](crate::wire_enum): its values and their wire names.
pub trait WireEnum: Copy + Eq + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];

    /// The wire name of `self`.
    fn as_str(self) -> &'static str;

    /// The value whose wire name is `text`.
    fn from_wire(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|value| value.as_str() == text)
    }
}

/// Declares an enum from `Variant = "wire name"` pairs, with
///
/// - `#[serde(rename = "wire name")]` on each variant (so the enum must derive serde's traits),
/// - `ALL`: every variant, in declaration order, and `as_str(self)`: the wire name (so the enum
///   must be `Copy` and `Eq`),
/// - an implementation of [`WireEnum`] with both, and `from_wire`.
///
/// ```
/// use portico_core::wire::WireEnum;
/// use serde::{Deserialize, Serialize};
///
/// portico_core::wire_enum! {
///     /// A colour.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
///     pub enum Colour {
///         LightBlue = "light_blue",
///         Red = "red",
///     }
/// }
///
/// assert_eq!(Colour::ALL, [Colour::LightBlue, Colour::Red]);
/// assert_eq!(Colour::LightBlue.as_str(), "light_blue");
/// assert_eq!(Colour::from_wire("red"), Some(Colour::Red));
/// assert_eq!(serde_json::to_string(&Colour::LightBlue).unwrap(), r#""light_blue""#);
/// ```
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $wire:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* #[serde(rename = $wire)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl $crate::wire::WireEnum for $name {
            const ALL: &'static [$name] = $name::ALL;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::WireEnum;

    crate::wire_enum! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        enum Shape {
            Circle = "circle",
            RoundedSquare = "rounded_square",
        }
    }

    #[test]
    fn serde_as_str_and_from_wire_agree_on_every_value() {
        assert_eq!(Shape::ALL, [Shape::Circle, Shape::RoundedSquare]);
        for &shape in Shape::ALL {
            let json = serde_json::to_value(shape).unwrap();
            assert_eq!(json, shape.as_str());
            assert_eq!(serde_json::from_value::<Shape>(json).unwrap(), shape);
            assert_eq!(Shape::from_wire(shape.as_str()), Some(shape));
        }
        assert_eq!(Shape::from_wire("RoundedSquare"), None);
        assert_eq!(Shape::from_wire(""), None);
    }
}
