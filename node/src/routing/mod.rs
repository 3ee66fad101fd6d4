//! The route table: compiled once per config revision from the routes of one listener, then
//! matched per request without walking the routes one by one.
//!
//! Precedence, most specific first:
//! 1. host: exact host, then the longest `*.suffix` wildcard, then routes with no host;
//!    a request that matches nothing under its host falls through to the next tier;
//! 2. path: exact `path`, then the longest `path_prefix`, then `path_regex` (in file order);
//!    a route with no path condition is a prefix of `/`;
//! 3. among routes with the same host and path: those with methods first, then more header
//!    conditions, then more query conditions;
//! 4. then file order.

mod table;

pub use table::{RequestView, RouteTable};

#[cfg(test)]
mod tests;
