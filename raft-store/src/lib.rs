//! openraft storage for gantry: being written.
#![forbid(unsafe_code)]
