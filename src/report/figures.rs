//! Computes the monthly report and the key-case list from the store.

use super::{KeyCase, MonthlyReport};
use crate::config::Config;
use crate::store::Store;
use jiff::Timestamp;

/// The report for `month` (`YYYY-MM`, in `sla.time_zone`), as the store holds it at `now`.
pub fn monthly(
    store: &dyn Store,
    cfg: &Config,
    month: &str,
    now: Timestamp,
) -> anyhow::Result<MonthlyReport> {
    let _ = (store, cfg, month, now);
    anyhow::bail!("the monthly report's figures are not built yet")
}

/// The key-case list at `now`, oldest item first.
pub fn key_cases(store: &dyn Store, cfg: &Config, now: Timestamp) -> anyhow::Result<Vec<KeyCase>> {
    let _ = (store, cfg, now);
    anyhow::bail!("the key-case list is not built yet")
}
