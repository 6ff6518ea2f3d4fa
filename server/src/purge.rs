//! Retention purge runs: on demand (`telem-collector purge [--dry-run]`) and once a day at
//! `retention_purge_time` (local time) inside `serve`.

use std::time::Duration;

use chrono::{Local, NaiveTime};
use deadpool_postgres::Pool;

use crate::config::Config;
use crate::store::{purge, retention_plan, PurgeSummary, StoreError};

/// Runs the configured purge once.
pub async fn run_once(
    pool: &Pool,
    config: &Config,
    dry_run: bool,
) -> Result<Vec<PurgeSummary>, StoreError> {
    let plan = retention_plan(config.retention_max_days, &config.retention_classifications);
    purge(pool, &plan, dry_run).await
}

/// Time from `now` until the next `at` (tomorrow if it already passed today).
pub fn until_next(now: NaiveTime, at: NaiveTime) -> Duration {
    let delta = at.signed_duration_since(now);
    let delta = if delta <= chrono::TimeDelta::zero() {
        delta + chrono::TimeDelta::days(1)
    } else {
        delta
    };
    delta.to_std().unwrap_or(Duration::from_secs(86_400))
}

/// The daily loop inside `serve`; a failed purge is logged and retried the next day.
pub async fn daily(pool: Pool, config: Config) {
    loop {
        let wait = until_next(Local::now().time(), config.retention_purge_time);
        tokio::time::sleep(wait).await;
        match run_once(&pool, &config, false).await {
            Ok(summary) => {
                for s in summary {
                    tracing::info!(rule = %s.label, days = s.days, deleted = s.records, "retention purge");
                }
            }
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
        // Never run twice within the same minute.
        tokio::time::sleep(Duration::from_secs(61)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_is_today_or_tomorrow() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert_eq!(until_next(t(2, 0), t(3, 0)), Duration::from_secs(3600));
        assert_eq!(until_next(t(4, 0), t(3, 0)), Duration::from_secs(23 * 3600));
        assert_eq!(until_next(t(3, 0), t(3, 0)), Duration::from_secs(24 * 3600));
    }
}
