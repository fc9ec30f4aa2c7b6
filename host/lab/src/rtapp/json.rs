//! rt-app's JSON, read as json-c (the library rt-app links) reads it:
//! `/* */` and `//` comments, trailing commas, and the same key more than
//! once in an object (rt-app's event lists: `"run": 1, "sleep": 2, "run":
//! 3` are three events, in that order).
//!
//! Why `jsonc-parser` (dprint's, maintained, no dependencies here):
//! - serde_json refuses comments and trailing commas, and a map loses the
//!   order and the repeated keys an rt-app event list depends on;
//! - `json5` is serde-based too (the same map problem, and no positions),
//!   and it accepts far more than json-c (unquoted keys, hex numbers,
//!   Infinity), so a file schedlab ran could be one rt-app refuses;
//! - `jsonc-parser`'s `parse_to_ast` gives an ordered AST (an object is a
//!   `Vec` of properties, repeated keys kept) with the byte range of every
//!   name and value, so each problem gets its line:col, and each JSON5
//!   extension can be switched off to stay with what json-c accepts.

use crate::scenario::diag::Problem;
use jsonc_parser::ast::{Object, ObjectProp, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, CommentCollectionStrategy, ParseOptions};
use std::ops::Range;

/// The options matching json-c's non-strict tokener (what rt-app uses):
/// comments, trailing commas and single-quoted strings yes; JSON5's
/// unquoted keys, hex, `+1`, `.5`, `Infinity` and missing commas no.
fn options() -> ParseOptions {
    ParseOptions {
        allow_comments: true,
        allow_loose_object_property_names: false,
        allow_trailing_commas: true,
        allow_missing_commas: false,
        allow_single_quoted_strings: true,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Parse `text` into its root value; a syntax error is a problem at its
/// position (the parser's nesting cap, 512, bounds the recursion).
pub fn parse(text: &str) -> Result<Value<'_>, Problem> {
    let collect = CollectOptions {
        comments: CommentCollectionStrategy::Off,
        tokens: false,
    };
    let parsed = jsonc_parser::parse_to_ast(text, &collect, &options()).map_err(|e| {
        let r = e.range();
        Problem::at(
            r.start..r.end,
            format!("not JSON as rt-app reads it: {}", e.kind()),
        )
    })?;
    parsed
        .value
        .ok_or_else(|| Problem::whole("the file holds no JSON value (an rt-app file is an object)"))
}

/// The byte span of anything in the AST.
pub fn span(r: &impl Ranged) -> Range<usize> {
    let r = r.range();
    r.start..r.end
}

/// A property's name.
pub fn key<'a>(p: &'a ObjectProp<'_>) -> &'a str {
    p.name.as_str()
}

/// The value's JSON type, for messages.
pub fn type_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::StringLit(_) => "a string",
        Value::NumberLit(_) => "a number",
        Value::BooleanLit(_) => "a boolean",
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::NullKeyword(_) => "null",
    }
}

fn wrong(v: &Value<'_>, path: &str, want: &str) -> Problem {
    Problem::at(
        span(v),
        format!("{path}: must be {want}, got {}", type_name(v)),
    )
}

/// `v` as an object.
pub fn object<'a, 'b>(v: &'a Value<'b>, path: &str) -> Result<&'a Object<'b>, Problem> {
    match v {
        Value::Object(o) => Ok(o),
        _ => Err(wrong(v, path, "an object")),
    }
}

/// `v` as a string.
pub fn string<'a>(v: &'a Value<'_>, path: &str) -> Result<&'a str, Problem> {
    match v {
        Value::StringLit(s) => Ok(&s.value),
        _ => Err(wrong(v, path, "a string")),
    }
}

/// `v` as an integer in `[min, max]` (rt-app reads its numbers with
/// json-c's `get_int`; a fraction is a mistake here, not truncated).
pub fn int(v: &Value<'_>, path: &str, min: i64, max: i64, unit: &str) -> Result<i64, Problem> {
    let Value::NumberLit(n) = v else {
        return Err(wrong(v, path, &format!("an integer{unit}")));
    };
    let Ok(x) = n.value.parse::<i64>() else {
        return Err(Problem::at(
            span(v),
            format!("{path}: must be an integer{unit}, got {}", n.value),
        ));
    };
    if x < min || x > max {
        return Err(Problem::at(
            span(v),
            format!("{path}: must be between {min} and {max}{unit}, got {x}"),
        ));
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(o: &'a Object<'_>) -> Vec<&'a str> {
        o.properties.iter().map(key).collect()
    }

    #[test]
    fn comments_and_trailing_commas_are_json_c_s() {
        let text = "/* head */ {\n  // line\n  \"a\": [1, 2,], /* mid */\n  \"b\": 'x',\n}\n";
        let v = parse(text).unwrap();
        let o = object(&v, "").unwrap();
        assert_eq!(keys(o), ["a", "b"]);
        assert_eq!(string(&o.properties[1].value, "b").unwrap(), "x");
    }

    #[test]
    fn repeated_keys_keep_their_order() {
        let text = r#"{"run": 1, "sleep": 2, "run": 3, "run0": 4, "sleep": 5}"#;
        let v = parse(text).unwrap();
        let o = object(&v, "").unwrap();
        assert_eq!(keys(o), ["run", "sleep", "run", "run0", "sleep"]);
        let values: Vec<i64> = o
            .properties
            .iter()
            .map(|p| int(&p.value, "x", 0, 9, "").unwrap())
            .collect();
        assert_eq!(values, [1, 2, 3, 4, 5]);
        // The span is the value's, for line:col.
        assert_eq!(&text[span(&o.properties[2].value)], "3");
    }

    #[test]
    fn json5_extensions_json_c_lacks_are_refused_with_their_place() {
        for (text, what) in [
            ("{a: 1}", "Expected string"),
            ("{\"a\": 0x10}", "Hexadecimal"),
            ("{\"a\": +1}", "Unary plus"),
            ("{\"a\": .5}", "decimal point"),
            ("{\"a\": Infinity}", ""),
            ("{\"a\": 1 \"b\": 2}", "Expected comma"),
            ("{\"a\": 1", "Unterminated object"),
            ("{\"a\": /* open", "Unterminated comment"),
            ("{} {}", "more than one JSON value"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.message.starts_with("not JSON as rt-app reads it: "),
                "{e:?}"
            );
            assert!(e.message.contains(what), "{text}: {e:?}");
            assert!(e.span.is_some(), "{text}: {e:?}");
        }
        let e = parse("  // only a comment\n").unwrap_err();
        assert_eq!(e.span, None);
        assert!(e.message.contains("no JSON value"), "{e:?}");
    }

    #[test]
    fn values_of_the_wrong_type_or_range_name_their_path() {
        let v = parse(r#"{"a": 1.5, "b": "x", "c": -3, "d": 99999999999999999999}"#).unwrap();
        let o = object(&v, "").unwrap();
        let p = &o.properties;
        let e = int(&p[0].value, "t.a", 0, 9, " (µs)").unwrap_err();
        assert_eq!(e.message, "t.a: must be an integer (µs), got 1.5");
        let e = int(&p[1].value, "t.b", 0, 9, "").unwrap_err();
        assert_eq!(e.message, "t.b: must be an integer, got a string");
        let e = int(&p[2].value, "t.c", 0, 9, "").unwrap_err();
        assert_eq!(e.message, "t.c: must be between 0 and 9, got -3");
        let e = int(&p[3].value, "t.d", 0, 9, "").unwrap_err();
        assert!(e.message.contains("got 99999999999999999999"), "{e:?}");
        assert_eq!(
            string(&p[0].value, "t.a").unwrap_err().message,
            "t.a: must be a string, got a number"
        );
        assert!(object(&p[1].value, "t.b").is_err());
    }
}
