//! A fast path for reading a config document into a JSON value: granit-parser's events (the
//! parser serde-saphyr itself runs) folded straight into a `serde_json::Value`, for documents
//! made only of what this module resolves exactly as serde-saphyr would. Anything else (tags,
//! anchors, merge keys, duplicate keys, several documents, a syntax error, a plain scalar that
//! might be a number in some YAML reading) returns `None`, and the caller asks serde-saphyr,
//! which stays the authority and the source of every error message. On a 1.5 KB document this
//! takes less than half of serde-saphyr's time, and a config write waits for it on the leader.

use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};

/// Larger documents go to serde-saphyr, whose resource budget (events, nodes, bytes) then
/// applies as before; below this size only its depth limit can be reached.
pub(crate) const MAX_BYTES: usize = 64 * 1024;
/// serde-saphyr's default budget refuses collections nested deeper than 64; such documents are
/// left to it, so that it refuses them.
const MAX_DEPTH: usize = 64;

/// The document as serde-saphyr would deserialize it into a `Value`, or `None` when this fast
/// path cannot be sure of that.
pub(crate) fn parse(text: &str) -> Option<Value> {
    if text.len() > MAX_BYTES {
        return None;
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Value> = None;
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, _span) = event.ok()?;
        let value = match event {
            Event::StreamStart | Event::DocumentEnd => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
                continue;
            }
            Event::MappingStart(..) | Event::SequenceStart(..) if stack.len() >= MAX_DEPTH => return None,
            Event::MappingStart(_, 0, None) => {
                stack.push(Frame::Mapping { map: Map::new(), key: None });
                continue;
            }
            Event::SequenceStart(_, 0, None) => {
                stack.push(Frame::Sequence(Vec::new()));
                continue;
            }
            Event::MappingEnd => match stack.pop()? {
                Frame::Mapping { map, key: None } => Value::Object(map),
                _ => return None,
            },
            Event::SequenceEnd => match stack.pop()? {
                Frame::Sequence(items) => Value::Array(items),
                _ => return None,
            },
            Event::Scalar(text, style, 0, None) => {
                if let Some(Frame::Mapping { map, key: key @ None }) = stack.last_mut() {
                    // A key: a string as serde-saphyr resolves it, seen once in its mapping,
                    // and not a merge key.
                    let Resolved::Value(Value::String(name)) = resolve(&text, style) else { return None };
                    if name == "<<" || map.contains_key(&name) {
                        return None;
                    }
                    *key = Some(name);
                    continue;
                }
                match resolve(&text, style) {
                    Resolved::Value(value) => value,
                    Resolved::Unsure => return None,
                }
            }
            // Anchors, aliases, tags, comments and anything newer.
            _ => return None,
        };
        match stack.last_mut() {
            None => {
                if root.replace(value).is_some() {
                    return None;
                }
            }
            Some(Frame::Sequence(items)) => items.push(value),
            Some(Frame::Mapping { map, key }) => {
                map.insert(key.take()?, value);
            }
        }
    }
    if !stack.is_empty() {
        return None;
    }
    // An empty stream is left to serde-saphyr too.
    root
}

enum Frame {
    Mapping { map: Map<String, Value>, key: Option<String> },
    Sequence(Vec<Value>),
}

enum Resolved {
    Value(Value),
    Unsure,
}

/// A scalar's value under serde-saphyr's default rules (`deserialize_any`): quoted and block
/// scalars are strings; a plain scalar is null (`""`, `~`, `null`, `Null`, `NULL`), a YAML 1.1
/// boolean (`true`/`yes`/`y`/`on`, `false`/`no`/`n`/`off`, any case), a number, or a string.
/// Numbers are resolved here only as plain decimal integers; any other plain scalar that could
/// read as a number (a sign, a dot or a digit first, `inf`, `nan`) is `Unsure`, except two
/// shapes no number has: a run of digits with a duration unit (`10s`, `250ms`) and text with
/// two dots or more (`127.0.0.1:8080`).
fn resolve(text: &str, style: ScalarStyle) -> Resolved {
    if style != ScalarStyle::Plain {
        return Resolved::Value(Value::String(text.to_owned()));
    }
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Resolved::Value(Value::Null);
    }
    for (words, value) in [(["true", "yes", "y", "on"], true), (["false", "no", "n", "off"], false)] {
        if words.iter().any(|word| text.eq_ignore_ascii_case(word)) {
            return Resolved::Value(Value::Bool(value));
        }
    }
    let Some(&first) = text.as_bytes().first() else { return Resolved::Unsure };
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        let word = text.to_ascii_lowercase();
        if matches!(word.as_str(), "inf" | "infinity" | "nan") {
            return Resolved::Unsure;
        }
        return Resolved::Value(Value::String(text.to_owned()));
    }
    if let Some(number) = decimal_integer(text) {
        return Resolved::Value(number);
    }
    if is_duration(text) || text.bytes().filter(|&b| b == b'.').count() >= 2 {
        return Resolved::Value(Value::String(text.to_owned()));
    }
    Resolved::Unsure
}

/// `0`, `42`, `-7`: no sign on positives, no leading zeros, within 64 bits.
fn decimal_integer(text: &str) -> Option<Value> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, text),
    };
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && !(negative && digits == "0");
    if !canonical {
        return None;
    }
    if negative {
        text.parse::<i64>().ok().map(Value::from)
    } else {
        digits.parse::<u64>().ok().map(Value::from)
    }
}

/// Digits followed by one duration unit, as the config's durations are written.
fn is_duration(text: &str) -> bool {
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    unit_at > 0 && matches!(&text[unit_at..], "ns" | "us" | "µs" | "ms" | "s" | "m" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authority(text: &str) -> Option<Value> {
        serde_saphyr::from_str::<Value>(text).ok()
    }

    /// The fast path either declines or agrees with serde-saphyr.
    fn agrees(text: &str) -> Option<Value> {
        let fast = parse(text);
        if let Some(value) = &fast {
            assert_eq!(Some(value), authority(text).as_ref(), "fast path disagrees on:\n{text}");
        }
        fast
    }

    #[test]
    fn plain_documents_take_the_fast_path_and_agree() {
        let text = "listeners:\n  - { name: public, protocol: http, address: 127.0.0.1:8080 }\n\
                    services:\n  - name: web\n    endpoints: [ { address: \"10.0.0.1:80\", weight: 3 } ]\n\
                    \x20   timeouts: { connect: 250ms, idle: 60s }\n    health: { path: /healthz, enabled: true }\n\
                    routes:\n  - name: all\n    to: [ { service: web } ]\n    retry: ~\n";
        let value = agrees(text).expect("fast path");
        assert_eq!(value["services"][0]["endpoints"][0]["weight"], 3);
        assert_eq!(value["services"][0]["timeouts"]["connect"], "250ms");
        assert_eq!(value["listeners"][0]["address"], "127.0.0.1:8080");
        assert_eq!(value["routes"][0]["retry"], Value::Null);
    }

    #[test]
    fn every_scalar_either_agrees_or_is_left_to_serde_saphyr() {
        let scalars = [
            "true",
            "True",
            "TRUE",
            "yes",
            "No",
            "y",
            "N",
            "on",
            "OFF",
            "null",
            "Null",
            "NULL",
            "~",
            "",
            "0",
            "7",
            "-7",
            "-0",
            "+7",
            "007",
            "0x1F",
            "0X1F",
            "0o17",
            "0b101",
            "1_000",
            "1.5",
            ".5",
            "5.",
            "1e3",
            "1E-3",
            "-1.5",
            ".inf",
            "-.inf",
            ".NaN",
            "nan",
            "NaN",
            "inf",
            "Infinity",
            "-inf",
            "10s",
            "250ms",
            "1h",
            "5m",
            "1.5s",
            "1d",
            "3µs",
            "1:20",
            "190:20:30",
            "1.2.3",
            "127.0.0.1",
            "127.0.0.1:8080",
            "10.0.0.1/8",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "2026-11-28",
            "2026-11-28T10:00:00Z",
            "web",
            "/path",
            "*.example.com",
            "a b",
            "é",
            "yes please",
            "'quoted'",
            "\"007\"",
            "'true'",
            "\"\"",
        ];
        let mut fast = 0;
        for scalar in scalars {
            let text = format!("key: {scalar}\n");
            if agrees(&text).is_some() {
                fast += 1;
            }
            let text = format!("- {scalar}\n- [ {scalar} ]\n");
            agrees(&text);
        }
        // Most of them are resolved here; the point is that none is resolved differently.
        assert!(fast > scalars.len() / 2, "only {fast} of {} on the fast path", scalars.len());
    }

    #[test]
    fn what_serde_saphyr_must_judge_is_left_to_it() {
        for text in [
            "a: 1\na: 2\n",                                 // duplicate key: serde-saphyr's error
            "base: &b { x: 1 }\nother: *b\n",               // anchors and aliases
            "base: &b { x: 1 }\nother: { <<: *b, y: 2 }\n", // merge key
            "a: !!str 1\n",                                 // tags
            "a: 1\n---\nb: 2\n",                            // two documents
            "a: [1, 2\n",                                   // syntax error: serde-saphyr words it
            "? [a, b]\n: c\n",                              // a key that is not a scalar
            "",                                             // nothing at all
            "1.5: x\n",                                     // a key that may be a number
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn nesting_past_serde_saphyrs_depth_limit_is_left_to_it() {
        // serde-saphyr refuses collections nested deeper than 64; the fast path must not accept
        // what it refuses. 64 levels are fine for both.
        for depth in [64, 65] {
            let flow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let block: String = (0..depth).map(|level| format!("{}k:\n", "  ".repeat(level))).collect();
            for text in [flow, block] {
                assert_eq!(parse(&text).is_some(), authority(&text).is_some(), "depth {depth}: {text:?}");
                assert_eq!(parse(&text).is_some(), depth <= MAX_DEPTH, "depth {depth}");
            }
        }
    }

    #[test]
    fn the_benchmark_document_takes_the_fast_path() {
        let mut text = String::from(
            "listeners:\n  - { name: public, protocol: http }\nservices:\n  - name: web\n    endpoints: [ { address: \"127.0.0.1:1\" } ]\nroutes:\n",
        );
        for i in 0..17 {
            text.push_str(&format!(
                "  - {{ name: pad-{i:03}, match: {{ path_prefix: /pad/{i:03}/ }}, to: [ {{ service: web }} ] }}\n"
            ));
        }
        assert!(agrees(&text).is_some());
    }

    #[test]
    fn the_shipped_examples_agree() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut checked = 0;
        for dir in ["examples", "deploy/local"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
                    let text = std::fs::read_to_string(&path).expect("example");
                    agrees(&text);
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "no example found under {}", root.display());
    }

    #[test]
    fn large_documents_go_to_serde_saphyr() {
        let text = format!("routes:\n{}", "  - { name: r, to: [ { service: web } ] }\n".repeat(MAX_BYTES / 40 + 1));
        assert!(text.len() > MAX_BYTES);
        assert_eq!(parse(&text), None);
    }
}
