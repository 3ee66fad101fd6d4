//! `chaos SCENARIO [--seed N]`: runs one chaos scenario (or `all`) against real gantry
//! processes and prints its report; exits 1 when an invariant fails. Needs root and nftables.

use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "chaos", about = "Run a gantry chaos scenario and print its report (needs root and nftables)")]
struct Args {
    /// Scenario to run: one of the names `--list` prints, or `all`.
    scenario: Option<String>,
    /// Seed of the workload and of the nemesis schedule (default: CHAOS_SEED, else random).
    #[arg(long)]
    seed: Option<u64>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.list || args.scenario.is_none() {
        println!("{}", chaos_tests::SCENARIOS.join("\n"));
        return Ok(());
    }
    chaos_tests::env::preflight()?;
    let scenario = args.scenario.unwrap_or_default();
    let names: Vec<&str> = if scenario == "all" { chaos_tests::SCENARIOS.to_vec() } else { vec![scenario.as_str()] };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut failed = Vec::new();
    for name in names {
        let seed = args.seed.unwrap_or_else(chaos_tests::seed_from_env);
        let report = runtime.block_on(chaos_tests::run(name, seed)).with_context(|| format!("scenario {name}"))?;
        if !report.passed {
            failed.push(format!("{name} (seed {seed}):\n  {}", report.failures().join("\n  ")));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("invariants failed in {}", failed.join("\n"))
    }
}
