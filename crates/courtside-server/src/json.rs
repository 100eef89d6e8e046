//! JSON shape checks every transport shares: struct-typed values are read from JSON objects
//! only (serde also reads a struct from an array, which no document allows), and the nesting
//! depth of a publication's payload, found by one scan of its bytes (no second parse).

use serde::Deserialize;

/// Decodes `json` as a `T` read from a JSON object only: serde would also read a struct from an
/// array (its fields in order), which the protocol does not document (`{"connect":[]}`).
pub fn decode_object<'a, T: Deserialize<'a>>(json: &'a str) -> Result<T, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value = object(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Reads a `T` from a map (a JSON object) and nothing else; for struct-typed fields
/// (`#[serde(deserialize_with = …)]`) and [`decode_object`].
pub fn object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// [`object`] for an optional field: `null` or absent is `None`.
pub fn optional_object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    struct Object<T>(T);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            object(deserializer).map(Object)
        }
    }
    Ok(Option::<Object<T>>::deserialize(deserializer)?.map(|Object(value)| value))
}

/// Does `json` (one valid JSON value) nest arrays and objects deeper than `max` levels? `1` and
/// `"x"` have depth 0, `{"a":1}` depth 1, `[[1]]` depth 2. Brackets inside strings do not count.
pub fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!nests_deeper_than(b"1", 0));
        assert!(!nests_deeper_than(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(nests_deeper_than(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!nests_deeper_than(br#"{"a":"[[[[{{{{\"[[["}"#, 1), "brackets in strings, escaped quotes");
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(nests_deeper_than(deep.as_bytes(), 64));
        assert!(!nests_deeper_than(deep.as_bytes(), 65));
    }

    #[test]
    fn structs_are_read_from_objects_only() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Point {
            #[serde(default)]
            x: u8,
        }
        assert_eq!(decode_object::<Point>(r#"{"x":1}"#).ok(), Some(Point { x: 1 }));
        assert!(decode_object::<Point>("[1]").is_err());
        assert!(decode_object::<Point>("[]").is_err());
        assert!(decode_object::<Point>(r#"{"x":1} {}"#).is_err(), "one value only");
    }
}
