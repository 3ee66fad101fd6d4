//! Nothing left behind: after the scenario every process it started is gone (checked by pid)
//! and its nftables table no longer exists.

use super::{Observations, Verdict};

pub const NAME: &str = "no leftover process or nftables rule";

pub fn check(observations: &Observations) -> Option<Verdict> {
    let teardown = &observations.teardown;
    let holds = teardown.leftover_pids.is_empty() && teardown.table_left.is_none() && teardown.errors.is_empty();
    let mut detail = if holds {
        "every node process gone, table deleted".to_string()
    } else {
        format!(
            "leftover pids {:?}, table left {:?}, errors {:?}",
            teardown.leftover_pids, teardown.table_left, teardown.errors
        )
    };
    if !teardown.foreign_tables.is_empty() {
        detail.push_str(&format!(
            " (other chaos tables exist, left by other or killed runs, not touched: {:?})",
            teardown.foreign_tables
        ));
    }
    Some(Verdict::new(NAME, holds, detail))
}
