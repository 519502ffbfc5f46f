//! Helpers shared by the label tests.

use std::collections::BTreeMap;

use mcpod::labels::{self, Declared};

/// A label map from (key, value) pairs.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Read labels that must be valid.
pub fn read_ok(pairs: &[(&str, &str)]) -> Declared {
    match labels::read(&labels(pairs)) {
        Ok(d) => d,
        Err(e) => panic!("read failed: {e}"),
    }
}
