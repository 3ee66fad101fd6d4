//! Types that cross a process boundary: the declarative config document, its parser and its
//! validator. This crate does no I/O: callers hand it text and get typed values or every problem.
#![forbid(unsafe_code)]

pub mod config;

pub use config::{parse_document, ConfigError, Document, Problem};
