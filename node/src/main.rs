//! The `gantry` binary: parses the command line and runs it.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(gantry::cli::main());
}
