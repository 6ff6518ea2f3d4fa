//! The chart pages' aggregates (`/builds`, `/stats`, `/overview`): from the pre-aggregated
//! counts ([`rollup`]) when the filter allows, else one grouped scan of the matching records.

use deadpool_postgres::Pool;

use crate::store::filter::{refs, where_sql, Filter};
use crate::store::rollup::{self, Dimension, Window};
use crate::store::StoreError;

/// (value, count) pairs, largest count first.
pub type Counts = Vec<(String, i64)>;

/// Records per build matching `filter`, the `top` biggest builds.
pub async fn count_by_build(pool: &Pool, filter: &Filter, top: i64) -> Result<Counts, StoreError> {
    count_by(pool, Dimension::Build, filter, top).await
}

async fn count_by(
    pool: &Pool,
    dimension: Dimension,
    filter: &Filter,
    top: i64,
) -> Result<Counts, StoreError> {
    let client = pool.get().await?;
    if let Some(window) = Window::of(filter) {
        let mut counts = rollup::counts(&client, dimension, &window).await?;
        counts.truncate(usize::try_from(top).unwrap_or(0));
        return Ok(counts);
    }
    let column = dimension.column();
    let (conditions, mut params) = filter.conditions();
    params.push(Box::new(top));
    let sql = format!(
        "SELECT coalesce({column}::text, '(none)'), count(*) FROM records{}
         GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ${}",
        where_sql(&conditions),
        params.len()
    );
    let rows = client.query(&sql, &refs(&params)).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Breakdowns for the stats page, from one scan: by classification, by platform (host type)
/// and by architecture, each complete (the caller keeps the top ones).
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    pub classification: Counts,
    pub platform: Counts,
    pub arch: Counts,
    pub total: i64,
}

pub async fn breakdown(pool: &Pool, filter: &Filter) -> Result<Breakdown, StoreError> {
    let client = pool.get().await?;
    if let Some(w) = Window::of(filter) {
        return Ok(Breakdown {
            classification: rollup::counts(&client, Dimension::Classification, &w).await?,
            platform: rollup::counts(&client, Dimension::Platform, &w).await?,
            arch: rollup::counts(&client, Dimension::Arch, &w).await?,
            total: rollup::total(&client, &w).await?,
        });
    }
    let (conditions, params) = filter.conditions();
    let sql = format!(
        "SELECT GROUPING(classification, host_type, architecture), classification,
                coalesce(host_type, '(none)'), coalesce(architecture, '(none)'), count(*)
         FROM records{}
         GROUP BY GROUPING SETS ((classification), (host_type), (architecture), ())",
        where_sql(&conditions)
    );
    let rows = client.query(&sql, &refs(&params)).await?;
    let mut out = Breakdown::default();
    for r in &rows {
        let grouping: i32 = r.get(0);
        let count: i64 = r.get(4);
        // GROUPING's bits: classification 4, host_type 2, architecture 1 (1 = not grouped).
        match grouping {
            0b011 => out.classification.push((r.get(1), count)),
            0b101 => out.platform.push((r.get(2), count)),
            0b110 => out.arch.push((r.get(3), count)),
            _ => out.total = count,
        }
    }
    for list in [&mut out.classification, &mut out.platform, &mut out.arch] {
        list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    Ok(out)
}

/// The overview: counts received in the last 24 h / 7 d / 30 d, records per day over 30 days,
/// the top classifications of the last 7 days and the number of stored records.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    pub last_24h: i64,
    pub last_7d: i64,
    pub last_30d: i64,
    /// (day start in unix seconds, count), oldest first; days without records are absent.
    pub per_day: Vec<(i64, i64)>,
    pub top_classifications: Counts,
    pub total: i64,
}

pub async fn overview(pool: &Pool, now: f64, top: i64) -> Result<Overview, StoreError> {
    let client = pool.get().await?;
    let (since_24h, since_7d, since_30d) =
        (now - 86400.0, now - 7.0 * 86400.0, now - 30.0 * 86400.0);
    let mut top_classifications =
        rollup::counts(&client, Dimension::Classification, &Window::since(since_7d)).await?;
    top_classifications.truncate(usize::try_from(top).unwrap_or(0));
    Ok(Overview {
        last_24h: rollup::total(&client, &Window::since(since_24h)).await?,
        last_7d: rollup::total(&client, &Window::since(since_7d)).await?,
        last_30d: rollup::total(&client, &Window::since(since_30d)).await?,
        per_day: rollup::per_day(&client, &Window::since(since_30d)).await?,
        top_classifications,
        total: rollup::total(&client, &Window::all()).await?,
    })
}

/// Which database the pool reaches (`name@port`), to key caches shared by several pools.
pub async fn database_identity(pool: &Pool) -> Result<String, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT current_database()::text || '@' || coalesce(inet_server_port(), 0)::text",
            &[],
        )
        .await?;
    Ok(row.get(0))
}
