use std::fmt;

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingKind {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

impl SettingKind {
    pub const ALL: [SettingKind; 6] = [
        Self::String,
        Self::Integer,
        Self::Number,
        Self::Boolean,
        Self::Array,
        Self::Object,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Array => "array",
            Self::Object => "object",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether a JSON value has this type.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match self {
            Self::String => value.is_string(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Number => matches!(value, V::Number(_)),
            Self::Boolean => value.is_boolean(),
            Self::Array => value.is_array(),
            Self::Object => value.is_object(),
        }
    }
}

impl fmt::Display for SettingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A setting the plugin reads, as its manifest declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingSpec {
    pub kind: SettingKind,
    pub description: String,
    /// Used when the site owner sets nothing.
    pub default: Option<serde_json::Value>,
    /// When true, the plugin can't start without a value (set or defaulted).
    pub required: bool,
}
