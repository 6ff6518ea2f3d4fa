//! Read queries for the API: the upstream `/api/records` filters, checked as pure data first
//! ([`RecordFilter::from_pairs`]), then turned into one parameterised SELECT (the conditions
//! by [`Filter::sql`], as for the web UI).

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use super::filter::{where_sql, Binds, Classification, Filter};
use super::StoreError;
use crate::record::{format_ts, RecordView};

/// The most a `created_in_*` filter may reach back (upstream: 30 days).
pub const MAX_CREATED_IN_SECS: i64 = 30 * 24 * 3600;
pub const MAX_LIMIT: i64 = 1000;

/// Checked filters of `GET /api/records`: which records, and the page.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFilter {
    pub filter: Filter,
    /// Only records with a smaller id (paging).
    pub from_id: Option<i32>,
    pub limit: i64,
}

impl Default for RecordFilter {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            from_id: None,
            limit: MAX_LIMIT,
        }
    }
}

fn int_in(name: &str, value: &str, min: i64, max: i64) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid {name}: must be an integer from {min} to {max}"
        )),
    }
}

fn text(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\0') {
        return Err(format!("invalid {name}: contains a NUL character"));
    }
    Ok(value.to_string())
}

impl RecordFilter {
    /// Checks query-string pairs; unknown parameters are ignored, as upstream did. The error
    /// message names the parameter.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut r = Self::default();
        let f = &mut r.filter;
        let mut days = None;
        let mut secs = None;
        for (key, value) in pairs {
            match key.as_str() {
                "severity" => f.severity = Some(int_in(key, value, 1, 4)? as i32),
                "classification" => {
                    f.classification = Some(Classification::Exact(text(key, value)?))
                }
                "build" => f.build = Some(text(key, value)?),
                "machine_id" => f.machine_id = Some(text(key, value)?),
                "created_in_days" => days = Some(int_in(key, value, 0, 30)?),
                "created_in_sec" => secs = Some(int_in(key, value, 0, MAX_CREATED_IN_SECS)?),
                "from_id" => r.from_id = Some(int_in(key, value, 1, i64::from(i32::MAX))? as i32),
                "limit" => r.limit = int_in(key, value, 1, MAX_LIMIT)?,
                _ => {}
            }
        }
        f.within_secs = secs.or(days.map(|d| d * 24 * 3600));
        Ok(r)
    }

    /// The SELECT and its parameters.
    fn statement(&self) -> (String, Binds) {
        let mut binds = Binds::default();
        let mut conditions = self.filter.sql(&mut binds);
        if let Some(id) = self.from_id {
            conditions.push(format!("id < {}", binds.bind(id)));
        }
        let limit = binds.bind(self.limit);
        let sql = format!(
            "SELECT {COLUMNS} FROM records{} ORDER BY id DESC LIMIT {limit}",
            where_sql(&conditions)
        );
        (sql, binds)
    }
}

/// The columns [`view`] reads, in its order.
pub(super) const COLUMNS: &str = "id, machine_id, host_type, architecture, build, kernel_version,
    timestamp_client::float8, timestamp_server::float8, severity, classification, record_version,
    payload, board_name, bios_version, cpu_model, event_id, external";

/// A row selected with [`COLUMNS`] as the upstream JSON shape.
pub(super) fn view(row: &Row) -> RecordView {
    RecordView {
        id: row.get(0),
        machine_id: row.get(1),
        machine_type: row.get(2),
        arch: row.get(3),
        build: row.get(4),
        kernel_version: row.get(5),
        ts_capture: row.get::<_, Option<f64>>(6).map(format_ts),
        ts_reception: format_ts(row.get(7)),
        severity: row.get(8),
        classification: row.get(9),
        record_version: row.get(10),
        payload: row.get(11),
        board_name: row.get(12),
        bios_version: row.get(13),
        cpu_model: row.get(14),
        event_id: row.get(15),
        external: row.get(16),
    }
}

/// Records matching `filter`, newest first.
pub async fn query_records(
    pool: &Pool,
    filter: &RecordFilter,
) -> Result<Vec<RecordView>, StoreError> {
    let client = pool.get().await?;
    let (sql, binds) = filter.statement();
    let rows = client.query(&sql, &binds.refs()).await?;
    Ok(rows.iter().map(view).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_accept_and_reject() {
        let accept: &[(&str, &str)] = &[
            ("severity", "1"),
            ("severity", "4"),
            ("classification", "a/b/c"),
            ("build", "31870"),
            ("machine_id", "abc"),
            ("created_in_days", "0"),
            ("created_in_days", "30"),
            ("created_in_sec", "2592000"),
            ("from_id", "1"),
            ("limit", "1"),
            ("limit", "1000"),
            ("limit", "999"),
            ("unknown", "whatever"),
        ];
        for (k, v) in accept {
            assert!(
                RecordFilter::from_pairs(&pairs(&[(k, v)])).is_ok(),
                "{k}={v}"
            );
        }
        let reject: &[(&str, &str)] = &[
            ("severity", "0"),
            ("severity", "5"),
            ("severity", "x"),
            ("created_in_days", "31"),
            ("created_in_days", "-1"),
            ("created_in_sec", "2592001"),
            ("from_id", "0"),
            ("from_id", "abc"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "10000"),
            ("machine_id", "a\0b"),
        ];
        for (k, v) in reject {
            let err = RecordFilter::from_pairs(&pairs(&[(k, v)])).unwrap_err();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }

    #[test]
    fn limit_compares_as_number_and_days_become_seconds() {
        let f = RecordFilter::from_pairs(&pairs(&[("limit", "200"), ("created_in_days", "2")]))
            .unwrap();
        assert_eq!(f.limit, 200);
        assert_eq!(f.filter.within_secs, Some(2 * 86400));
        assert_eq!(RecordFilter::from_pairs(&[]).unwrap().limit, 1000);
    }

    #[test]
    fn the_statement_numbers_parameters() {
        let f = RecordFilter::from_pairs(&pairs(&[
            ("from_id", "9"),
            ("severity", "2"),
            ("classification", "a/b/*"),
        ]))
        .unwrap();
        let (sql, binds) = f.statement();
        assert!(
            sql.ends_with(
                " FROM records WHERE classification = $1 AND severity = $2 AND id < $3 \
                 ORDER BY id DESC LIMIT $4"
            ),
            "{sql}"
        );
        assert_eq!(binds.refs().len(), 4);
    }
}
