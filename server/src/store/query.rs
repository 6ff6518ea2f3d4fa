//! Read queries for the API: the upstream `/api/records` filters, checked as pure data first
//! ([`RecordFilter::from_pairs`]), then turned into one parameterised SELECT.

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::StoreError;
use crate::record::{format_ts, RecordView};

/// The most a `created_in_*` filter may reach back (upstream: 30 days).
pub const MAX_CREATED_IN_SECS: i64 = 30 * 24 * 3600;
pub const MAX_LIMIT: i64 = 1000;

/// Checked filters of `GET /api/records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    pub severity: Option<i32>,
    pub classification: Option<String>,
    pub build: Option<String>,
    pub machine_id: Option<String>,
    /// Only records received within this many seconds.
    pub created_in_secs: Option<i64>,
    /// Only records with a smaller id (paging).
    pub from_id: Option<i32>,
    pub limit: i64,
}

impl Default for RecordFilter {
    fn default() -> Self {
        Self {
            severity: None,
            classification: None,
            build: None,
            machine_id: None,
            created_in_secs: None,
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
        let mut f = Self::default();
        let mut days = None;
        let mut secs = None;
        for (key, value) in pairs {
            match key.as_str() {
                "severity" => f.severity = Some(int_in(key, value, 1, 4)? as i32),
                "classification" => f.classification = Some(text(key, value)?),
                "build" => f.build = Some(text(key, value)?),
                "machine_id" => f.machine_id = Some(text(key, value)?),
                "created_in_days" => days = Some(int_in(key, value, 0, 30)?),
                "created_in_sec" => secs = Some(int_in(key, value, 0, MAX_CREATED_IN_SECS)?),
                "from_id" => f.from_id = Some(int_in(key, value, 1, i64::from(i32::MAX))? as i32),
                "limit" => f.limit = int_in(key, value, 1, MAX_LIMIT)?,
                _ => {}
            }
        }
        f.created_in_secs = secs.or(days.map(|d| d * 24 * 3600));
        Ok(f)
    }

    /// The WHERE clause and its parameters.
    fn where_clause(&self) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
        let mut conditions = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut push = |sql: &str, p: Box<dyn ToSql + Sync + Send>| {
            params.push(p);
            conditions.push(sql.replace('?', &format!("${}", params.len())));
        };
        if let Some(v) = self.severity {
            push("severity = ?", Box::new(v));
        }
        if let Some(v) = &self.classification {
            push("classification = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.build {
            push("build = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.machine_id {
            push("machine_id = ?", Box::new(v.clone()));
        }
        if let Some(v) = self.created_in_secs {
            push(
                "timestamp_server >= extract(epoch FROM now()) - ?::int8",
                Box::new(v),
            );
        }
        if let Some(v) = self.from_id {
            push("id < ?", Box::new(v));
        }
        let clause = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        (clause, params)
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
    let (clause, mut params) = filter.where_clause();
    params.push(Box::new(filter.limit));
    let sql = format!(
        "SELECT {COLUMNS} FROM records{clause} ORDER BY id DESC LIMIT ${}",
        params.len()
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let rows = client.query(&sql, &refs).await?;
    Ok(rows.iter().map(view).collect())
}

/// Number of stored records (for the UI page and tests).
pub async fn count_records(pool: &Pool) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    Ok(client
        .query_one("SELECT count(*) FROM records", &[])
        .await?
        .get(0))
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
        assert_eq!(f.created_in_secs, Some(2 * 86400));
        assert_eq!(RecordFilter::from_pairs(&[]).unwrap().limit, 1000);
    }

    #[test]
    fn where_clause_numbers_parameters() {
        let f = RecordFilter::from_pairs(&pairs(&[("severity", "2"), ("from_id", "9")])).unwrap();
        let (clause, params) = f.where_clause();
        assert_eq!(clause, " WHERE severity = $1 AND id < $2");
        assert_eq!(params.len(), 2);
    }
}
