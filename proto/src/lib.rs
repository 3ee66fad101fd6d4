//! Types that cross a process boundary: the declarative config document (parser and
//! validator), the cluster's replicated state and its commands, and the one codec for frames.
//! This crate does no I/O: callers hand it text or bytes and get typed values or every problem.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod codec;
pub mod config;

pub use config::{parse_document, ConfigError, Document, Problem};
