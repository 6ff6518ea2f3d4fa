//! Reads of the pre-aggregated counts (`record_counts`, migration 4, plus the changes in
//! `record_counts_delta` that no fold has moved there yet, migration 6; triggers on `records`
//! append those changes): records per day received and classification, in all and by build,
//! platform and architecture. They answer every chart whose filter is at most a classification (exact or
//! glob) and a start time. A window that starts mid-day takes its first, partial day from
//! `records` itself (a range scan of the `timestamp_server` index), so every count is exact.

use deadpool_postgres::Client;

use super::filter::{refs, Filter as UiFilter};
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
    /// The `record_counts.dimension` holding it (classifications are a column of every row).
    fn stored_as(self) -> &'static str {
        match self {
            Dimension::Classification => "records",
            Dimension::Build => "build",
            Dimension::Platform => "platform",
            Dimension::Arch => "arch",
        }
    }

    /// The value as `record_counts_delta` has it.
    fn delta_column(self) -> &'static str {
        match self {
            Dimension::Classification => "classification",
            Dimension::Build => "build",
            Dimension::Platform => "platform",
            Dimension::Arch => "arch",
        }
    }

    /// The value as `records` has it.
    pub fn column(self) -> &'static str {
        match self {
            Dimension::Classification => "classification",
            Dimension::Build => "build",
            Dimension::Platform => "host_type",
            Dimension::Arch => "architecture",
        }
    }
}

/// What a filter asks of the counts: `Some` when the filter is at most a classification and a
/// start time, which the counts can answer.
#[derive(Debug, Clone)]
pub struct Window {
    classification: UiFilter,
    since: Option<f64>,
}

impl Window {
    pub fn of(filter: &UiFilter) -> Option<Self> {
        let classification = UiFilter {
            classification: filter.classification.clone(),
            ..UiFilter::default()
        };
        let answerable = UiFilter {
            from: filter.from,
            ..classification.clone()
        };
        (*filter == answerable).then_some(Self {
            classification,
            since: filter.from,
        })
    }

    pub fn since(since: f64) -> Self {
        Self {
            classification: UiFilter::default(),
            since: Some(since),
        }
    }

    pub fn all() -> Self {
        Self {
            classification: UiFilter::default(),
            since: None,
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
    window: &Window,
    group: Group,
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let key = match group {
        Group::Value => "value",
        Group::Day => "day",
        Group::Total => "NULL::int8",
    };
    let (mut conditions, mut params) = window.classification.conditions();
    params.push(Box::new(dimension.stored_as()));
    let dimension_param = params.len();
    // Whole days from the counts; the partial first day [since, first whole day) exactly.
    let first_day = window
        .since
        .map_or(i64::MIN, |s| (s / 86400.0).ceil() as i64 * 86400);
    params.push(Box::new(first_day));
    let day_param = params.len();
    let counted = if dimension.stored_as() == "records" {
        "classification".to_string()
    } else {
        "value".to_string()
    };
    let mut partial = String::new();
    if let Some(since) = window.since {
        params.push(Box::new(since));
        let mut conditions = conditions.clone();
        conditions.push(format!(
            "timestamp_server >= ${}::float8::numeric",
            params.len()
        ));
        conditions.push(format!("timestamp_server < ${day_param}::int8"));
        partial = format!(
            " UNION ALL SELECT coalesce({}::text, '(none)'), \
             (floor(timestamp_server / 86400) * 86400)::int8, 1 FROM records WHERE {}",
            dimension.column(),
            conditions.join(" AND ")
        );
    }
    // The changes no fold has moved into record_counts yet (migration 6): a few seconds' worth.
    let mut unfolded = conditions.clone();
    unfolded.push(format!("day >= ${day_param}"));
    let unfolded = format!(
        " UNION ALL SELECT {}, day, n FROM record_counts_delta WHERE {}",
        dimension.delta_column(),
        unfolded.join(" AND ")
    );
    conditions.push(format!("dimension = ${dimension_param}"));
    conditions.push(format!("day >= ${day_param}"));
    let sql = format!(
        "SELECT {key}, sum(n)::int8 FROM (
             SELECT {counted}, day, n FROM record_counts WHERE {}{unfolded}{partial}
         ) u(value, day, n) GROUP BY 1 HAVING sum(n) <> 0",
        conditions.join(" AND ")
    );
    Ok(client.query(&sql, &refs(&params)).await?)
}

/// Records per value of `dimension` in `window`, largest count first, then by value.
pub async fn counts(
    client: &Client,
    dimension: Dimension,
    window: &Window,
) -> Result<Counts, StoreError> {
    let rows = grouped(client, dimension, window, Group::Value).await?;
    let mut counts: Counts = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(counts)
}

/// Records received per day (start of the day in unix seconds, UTC) in `window`, oldest first.
pub async fn per_day(client: &Client, window: &Window) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = grouped(client, Dimension::Classification, window, Group::Day).await?;
    let mut days: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    days.sort();
    Ok(days)
}

/// Records in `window`.
pub async fn total(client: &Client, window: &Window) -> Result<i64, StoreError> {
    let rows = grouped(client, Dimension::Classification, window, Group::Total).await?;
    Ok(rows
        .first()
        .and_then(|r| r.get::<_, Option<i64>>(1))
        .unwrap_or(0))
}
