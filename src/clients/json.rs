//! A JSON tree that keeps the order of an object's keys (and repeated keys),
//! so merging an entry into a user's file leaves the rest as it was written.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A JSON value; an object is its members in document order.
#[derive(Clone, Debug, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// The last member named `key` (the one a client reads), if any.
pub fn last_mut<'a>(obj: &'a mut [(String, J)], key: &str) -> Option<&'a mut J> {
    obj.iter_mut().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Set `key` to `value`: in place where it is (its last spelling), else at the end.
pub fn set(obj: &mut Vec<(String, J)>, key: &str, value: J) {
    match last_mut(obj, key) {
        Some(v) => *v = value,
        None => obj.push((key.to_string(), value)),
    }
}

pub fn parse(text: &str) -> serde_json::Result<J> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = J::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// The indent of the first indented line (the file's own style), else two spaces.
pub fn indent_of(text: &str) -> String {
    text.lines()
        .skip(1)
        .map(|l| {
            l.chars()
                .take_while(|c| *c == ' ' || *c == '\t')
                .collect::<String>()
        })
        .find(|i| !i.is_empty() && i.len() <= 8)
        .unwrap_or_else(|| "  ".to_string())
}

/// Pretty-printed with `indent`, and a final newline.
pub fn to_string(value: &J, indent: &str) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    if value.serialize(&mut ser).is_err() {
        return String::new();
    }
    let mut text = String::from_utf8(out).unwrap_or_default();
    text.push('\n');
    text
}

impl Serialize for J {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::Num(n) => n.serialize(s),
            J::Str(v) => s.serialize_str(v),
            J::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            J::Obj(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for J {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<J, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<J, E> {
        Ok(J::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<J, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J, E> {
        Ok(J::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J, E> {
        Ok(J::Num(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<J, E> {
        serde_json::Number::from_f64(v)
            .map(J::Num)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }
    fn visit_str<E>(self, v: &str) -> Result<J, E> {
        Ok(J::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<J, E> {
        Ok(J::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(J::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, J>()? {
            members.push((k, v));
        }
        Ok(J::Obj(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_order() {
        let text =
            "{\"b\": [1, -2, 0.5, \"x\", null, true], \"a\": {\"d\": {}, \"c\": []}, \"b\": 2}";
        let v = parse(text).expect("parses");
        assert_eq!(
            to_string(&v, ""),
            "{\n\"b\": [\n1,\n-2,\n0.5,\n\"x\",\nnull,\ntrue\n],\n\"a\": {\n\"d\": {},\n\"c\": []\n},\n\"b\": 2\n}\n"
        );
        assert!(parse("{} x").is_err());
        assert_eq!(indent_of("{\n\t\"a\": 1\n}"), "\t");
    }
}
