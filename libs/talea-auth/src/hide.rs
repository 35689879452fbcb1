//! Field scopes: the optional fields a token may not see (`hide = [...]`).
//!
//! A tokens-file entry may say `hide = ["metadata", "memo"]`; those fields
//! are removed from every REST body and stream event sent for that token.
//! Only the optional fields of transactions (`memo`, `metadata`) and
//! accounts (`metadata`) can be hidden: they sit at the top level of the
//! resource object, so removing them is [`Hide::strip`] on that object.

use serde_json::{Map, Value};

/// The fields a token may have hidden, as the tokens file spells them.
pub const HIDEABLE_FIELDS: [&str; 2] = ["metadata", "memo"];

/// How many distinct non-empty hide sets exist (for per-set caches).
pub const HIDE_SETS: usize = (1 << HIDEABLE_FIELDS.len()) - 1;

/// A set of hidden fields. Empty (the default) hides nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hide(u8);

impl Hide {
    /// Hides nothing.
    pub const NONE: Hide = Hide(0);

    /// Parses a list as the tokens file and the introspection answer write
    /// it. Unknown names are an error naming them; repeats are harmless.
    pub fn from_list<S: AsRef<str>>(list: &[S]) -> Result<Self, String> {
        let mut bits = 0u8;
        for name in list {
            let name = name.as_ref();
            let index = HIDEABLE_FIELDS
                .iter()
                .position(|f| *f == name)
                .ok_or_else(|| {
                    format!(
                        "cannot hide {name:?}: only {} can be hidden",
                        HIDEABLE_FIELDS.join(" and ")
                    )
                })?;
            bits |= 1 << index;
        }
        Ok(Self(bits))
    }

    /// The hidden field names, in [`HIDEABLE_FIELDS`] order.
    pub fn to_list(self) -> Vec<String> {
        self.fields().map(str::to_owned).collect()
    }

    /// Whether nothing is hidden.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `field` is hidden.
    pub fn hides(self, field: &str) -> bool {
        self.fields().any(|f| f == field)
    }

    /// `None` for the empty set, else a distinct index below [`HIDE_SETS`]:
    /// the slot of this set in a per-set cache.
    pub fn index(self) -> Option<usize> {
        usize::from(self.0).checked_sub(1)
    }

    fn fields(self) -> impl Iterator<Item = &'static str> {
        HIDEABLE_FIELDS
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, f)| *f)
    }

    /// Removes the hidden fields from a resource object (a transaction or
    /// an account, as on the wire).
    pub fn strip(self, resource: &mut Map<String, Value>) {
        for field in self.fields() {
            resource.remove(field);
        }
    }

    /// [`Hide::strip`] on a value that is a resource object; anything else
    /// is left alone.
    pub fn strip_value(self, resource: &mut Value) {
        if let Value::Object(map) = resource {
            self.strip(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_parse_and_round_trip() {
        assert_eq!(Hide::from_list::<&str>(&[]), Ok(Hide::NONE));
        let both = Hide::from_list(&["memo", "metadata", "memo"]).expect("valid");
        assert_eq!(both.to_list(), ["metadata", "memo"]);
        assert!(both.hides("memo") && both.hides("metadata"));
        let memo = Hide::from_list(&["memo"]).expect("valid");
        assert!(!memo.hides("metadata"));
        let err = Hide::from_list(&["postings"]).expect_err("not hideable");
        assert!(err.contains("\"postings\""), "{err}");
        assert!(Hide::from_list(&["Metadata"]).is_err());
    }

    #[test]
    fn every_set_has_its_own_slot() {
        assert_eq!(Hide::NONE.index(), None);
        let mut slots: Vec<usize> = [vec!["metadata"], vec!["memo"], vec!["metadata", "memo"]]
            .iter()
            .map(|l| Hide::from_list(l).expect("valid").index().expect("slot"))
            .collect();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), HIDE_SETS);
        assert!(slots.iter().all(|s| *s < HIDE_SETS));
    }

    #[test]
    fn strip_removes_only_the_hidden_top_level_fields() {
        let mut tx = json!({"tx_id": "t", "memo": "m", "metadata": {"memo": "kept"}});
        Hide::from_list(&["memo"])
            .expect("valid")
            .strip_value(&mut tx);
        assert_eq!(tx, json!({"tx_id": "t", "metadata": {"memo": "kept"}}));
        Hide::from_list(&["metadata"])
            .expect("valid")
            .strip_value(&mut tx);
        assert_eq!(tx, json!({"tx_id": "t"}));
        let mut not_an_object = json!([1]);
        Hide::from_list(&["memo"])
            .expect("valid")
            .strip_value(&mut not_an_object);
        assert_eq!(not_an_object, json!([1]));
    }
}
