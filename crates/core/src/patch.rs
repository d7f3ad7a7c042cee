use serde::{Deserialize, Deserializer};

/// A field of a PATCH body: absent (leave as is), `null` (clear) or a new value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Missing,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    /// The value after applying the patch to `current`.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Patch::Missing => current,
            Patch::Null => None,
            Patch::Value(v) => Some(v),
        }
    }

    pub fn is_missing(&self) -> bool {
        matches!(self, Patch::Missing)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only called when the field is present; `#[serde(default)]` covers absence.
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        name: Patch<String>,
    }

    #[test]
    fn absent_null_and_value_are_distinct() {
        let b: Body = serde_json::from_str("{}").unwrap();
        assert_eq!(b.name, Patch::Missing);
        let b: Body = serde_json::from_str(r#"{"name":null}"#).unwrap();
        assert_eq!(b.name, Patch::Null);
        let b: Body = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(b.name, Patch::Value("x".into()));
        assert_eq!(Patch::Value(1).apply(Some(2)), Some(1));
        assert_eq!(Patch::<i32>::Null.apply(Some(2)), None);
        assert_eq!(Patch::<i32>::Missing.apply(Some(2)), Some(2));
    }
}
