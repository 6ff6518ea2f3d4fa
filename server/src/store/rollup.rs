//! Reads of the pre-aggregated counts (`record_counts`, migration 4, kept exact by a trigger on
//! `records`): records per classification, build, platform or architecture and hour received.
//! A time window that starts mid-hour takes its first, partial hour from `records` itself (a
//! short range scan of the `timestamp_server` index), so every count is exact.

use deadpool_postgres::Client;

use super::ui_queries::Counts;
use super::StoreError;

/// What the records are counted by.
#[derive(Debug, Clone, Copy)]
pub enum Dimension {
    Classification,
    Build,
    Platform,
    Arch,
}

impl Dimension {
    fn name(self) -> &'static str {
        match self {
            Dimension::Classification => "classification",
            Dimension::Build => "build",
            Dimension::Platform => "platform",
            Dimension::Arch => "arch",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Dimension::Classification => "classification",
            Dimension::Build => "build",
            Dimension::Platform => "host_type",
            Dimension::Arch => "architecture",
        }
    }
}

/// How the counts are grouped.
enum Group {
    Value,
    Day,
    Total,
}

async fn grouped(
    client: &Client,
    dimension: Dimension,
    since: Option<f64>,
    group: Group,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let key = match group {
        Group::Value => "value",
        Group::Day => "(hour - hour % 86400)",
        Group::Total => "NULL::text",
    };
    // Whole hours from the counts; the partial first hour [since, first whole hour) exactly.
    let first_hour = since.map_or(i64::MIN, |s| (s / 3600.0).ceil() as i64 * 3600);
    let partial = match since {
        Some(_) => format!(
            " UNION ALL SELECT coalesce({}::text, '(none)'), \
             (floor(timestamp_server / 3600) * 3600)::int8, 1 FROM records \
             WHERE timestamp_server >= $3::float8::numeric AND timestamp_server < $2::int8",
            dimension.column()
        ),
        None => String::new(),
    };
    let sql = format!(
        "SELECT {key}, sum(n)::int8 FROM (
             SELECT value, hour, n FROM record_counts WHERE dimension = $1 AND hour >= $2{partial}
         ) u(value, hour, n) GROUP BY 1"
    );
    let name = dimension.name();
    let rows = match since {
        Some(since) => client.query(&sql, &[&name, &first_hour, &since]).await?,
        None => client.query(&sql, &[&name, &first_hour]).await?,
    };
    Ok(rows)
}

/// Records per value of `dimension` received at or after `since` (all records when `None`),
/// largest count first, then by value.
pub async fn counts(
    client: &Client,
    dimension: Dimension,
    since: Option<f64>,
) -> Result<Counts, StoreError> {
    let rows = grouped(client, dimension, since, Group::Value).await?;
    let mut counts: Counts = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(counts)
}

/// Records received per day (start of the day in unix seconds, UTC) since `since`, oldest first.
pub async fn per_day(client: &Client, since: f64) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = grouped(client, Dimension::Classification, Some(since), Group::Day).await?;
    let mut days: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    days.sort();
    Ok(days)
}

/// Records received at or after `since` (all records when `None`).
pub async fn total(client: &Client, since: Option<f64>) -> Result<i64, StoreError> {
    let rows = grouped(client, Dimension::Classification, since, Group::Total).await?;
    Ok(rows
        .first()
        .and_then(|r| r.get::<_, Option<i64>>(1))
        .unwrap_or(0))
}
