//! The config document: parse YAML or JSON text into a typed [`Document`] and validate it whole,
//! returning every problem with its path (`routes[2].to[0].service: unknown service "reviws"`).

mod duration;
mod fast_yaml;
mod schema;
mod validate;

use std::fmt;

pub use duration::{parse_duration, HumanDuration};
pub use schema::*;
pub use validate::{parse_status_ranges, StatusRange};

/// One thing wrong with a document, and where.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Dotted path into the document, e.g. `routes[2].to[0].service`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A document that was refused, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid config ({} problem{})",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Section names a document may hold, in the order they are read.
const SECTIONS: [&str; 4] = ["listeners", "certificates", "services", "routes"];

/// Parses YAML (JSON is valid YAML) and validates the result. Structural problems are reported
/// per list element, so one bad route does not hide the problems of the next.
pub fn parse_document(text: &str) -> Result<Document, ConfigError> {
    let parsed = match fast_yaml::parse(text) {
        Some(value) => Ok(value),
        None => serde_saphyr::from_str(text),
    };
    let raw: serde_json::Value = match parsed {
        Ok(value) => value,
        Err(err) => {
            return Err(ConfigError { problems: vec![Problem::new("", format!("not valid YAML or JSON: {err}"))] })
        }
    };
    let mut problems = Vec::new();
    let mut document = Document::default();
    let mut context = ParseContext::default();
    match raw {
        serde_json::Value::Null => {}
        serde_json::Value::Object(map) => {
            for key in map.keys() {
                if !SECTIONS.contains(&key.as_str()) {
                    problems.push(Problem::new(
                        key.clone(),
                        format!("unknown section; expected one of {}", SECTIONS.join(", ")),
                    ));
                }
            }
            document.listeners = parse_section(&map, "listeners", &mut problems, &mut context.listeners);
            document.certificates = parse_section(&map, "certificates", &mut problems, &mut context.certificates);
            document.services = parse_section(&map, "services", &mut problems, &mut context.services);
            document.routes = parse_section(&map, "routes", &mut problems, &mut context.routes);
        }
        _ => problems
            .push(Problem::new("", "the document must be a mapping with listeners, certificates, services and routes")),
    }
    validate::validate(&document, &context, &mut problems);
    if problems.is_empty() {
        Ok(document)
    } else {
        Err(ConfigError { problems })
    }
}

/// What the structural pass learnt that the semantic pass needs: for each section, the index in
/// the file of each parsed element, and the names of elements that failed to parse (so a
/// reference to them is not reported a second time).
#[derive(Default)]
pub(crate) struct ParseContext {
    pub listeners: SectionContext,
    pub certificates: SectionContext,
    pub services: SectionContext,
    pub routes: SectionContext,
}

#[derive(Default)]
pub(crate) struct SectionContext {
    pub file_index: Vec<usize>,
    pub unparsed_names: Vec<String>,
}

impl SectionContext {
    /// Index in the file of the `parsed`-th element that parsed.
    pub fn index(&self, parsed: usize) -> usize {
        self.file_index.get(parsed).copied().unwrap_or(parsed)
    }
}

fn parse_section<T: serde::de::DeserializeOwned>(
    map: &serde_json::Map<String, serde_json::Value>,
    section: &str,
    problems: &mut Vec<Problem>,
    context: &mut SectionContext,
) -> Vec<T> {
    let Some(value) = map.get(section) else {
        return Vec::new();
    };
    let items = match value {
        serde_json::Value::Null => return Vec::new(),
        serde_json::Value::Array(items) => items,
        _ => {
            problems.push(Problem::new(section, "must be a list"));
            return Vec::new();
        }
    };
    let mut parsed = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match serde_path_to_error::deserialize::<_, T>(item) {
            Ok(value) => {
                parsed.push(value);
                context.file_index.push(index);
            }
            Err(err) => {
                let inner = err.path().to_string();
                let path = if inner == "." || inner.is_empty() {
                    format!("{section}[{index}]")
                } else {
                    format!("{section}[{index}].{inner}")
                };
                problems.push(Problem::new(path, err.into_inner().to_string()));
                if let Some(name) = item.get("name").and_then(|n| n.as_str()) {
                    context.unparsed_names.push(name.to_string());
                }
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests;
