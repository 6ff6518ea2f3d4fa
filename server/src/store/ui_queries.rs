//! SQL for the web UI (`crate::ui`): the filtered records list with keyset paging (never
//! OFFSET), one record, CSV chunks and the aggregates behind the charts. Every value reaches
//! PostgreSQL as a bind parameter; nothing here formats HTML.

use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

pub use super::retention::glob_to_like;
use super::rollup::{self, Dimension, Window};
use super::StoreError;

pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// Checked UI filters (see `crate::ui::filter` for how a query string becomes one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiFilter {
    /// Exact classification, or a glob with `*` and `?` (`org.clearlinux/crash/*`).
    pub classification: Option<String>,
    pub severity: Option<i32>,
    pub build: Option<String>,
    pub machine_id: Option<String>,
    pub system_name: Option<String>,
    /// Platform: the host type.
    pub platform: Option<String>,
    pub arch: Option<String>,
    /// Reception time from (inclusive), unix seconds.
    pub from: Option<f64>,
    /// Reception time up to (exclusive), unix seconds.
    pub to: Option<f64>,
    /// Case-insensitive substring of the payload.
    pub text: Option<String>,
}

/// Which page of the newest-first list: keyset positions, never an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Newest,
    /// Records with an id below this one (older).
    Before(i32),
    /// Records with an id above this one (newer), the oldest of them first.
    After(i32),
}

/// `s` matched literally by LIKE (its metacharacters escaped).
pub fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

impl UiFilter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// SQL conditions (joined with AND) and their parameters, numbered from `$1`.
    pub(super) fn conditions(&self) -> (Vec<String>, Vec<Param>) {
        let mut conditions = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        let mut push = |sql: &str, p: Param| {
            params.push(p);
            conditions.push(sql.replace('?', &format!("${}", params.len())));
        };
        if let Some(c) = &self.classification {
            if is_glob(c) {
                push("classification LIKE ?", Box::new(glob_to_like(c)));
            } else {
                push("classification = ?", Box::new(c.clone()));
            }
        }
        if let Some(v) = self.severity {
            push("severity = ?", Box::new(v));
        }
        if let Some(v) = &self.build {
            push("build = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.machine_id {
            push("machine_id = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.system_name {
            push("system_name = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.platform {
            push("host_type = ?", Box::new(v.clone()));
        }
        if let Some(v) = &self.arch {
            push("architecture = ?", Box::new(v.clone()));
        }
        if let Some(v) = self.from {
            push("timestamp_server >= ?::float8::numeric", Box::new(v));
        }
        if let Some(v) = self.to {
            push("timestamp_server < ?::float8::numeric", Box::new(v));
        }
        if let Some(v) = &self.text {
            push("payload ILIKE '%' || ? || '%'", Box::new(like_literal(v)));
        }
        (conditions, params)
    }
}

fn where_sql(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

pub(super) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as _).collect()
}

/// One line of the records table.
#[derive(Debug, Clone)]
pub struct ListRow {
    pub id: i32,
    pub ts_server: f64,
    pub severity: Option<i32>,
    pub classification: String,
    pub build: String,
    pub machine_id: Option<String>,
    pub host_type: Option<String>,
    pub arch: Option<String>,
    pub system_name: Option<String>,
    /// The payload's first characters.
    pub excerpt: String,
    /// Whether the payload is longer than the excerpt.
    pub truncated: bool,
}

/// A page of the list, newest first, and the keyset links around it.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub rows: Vec<ListRow>,
    /// `after=` value of the newer page, if there is one.
    pub newer: Option<i32>,
    /// `before=` value of the older page, if there is one.
    pub older: Option<i32>,
}

pub const EXCERPT_CHARS: i32 = 120;

/// The records matching `filter` on `page`, `limit` of them.
pub async fn list_records(
    pool: &Pool,
    filter: &UiFilter,
    page: Page,
    limit: i64,
) -> Result<ListPage, StoreError> {
    let client = pool.get().await?;
    // A payload search first looks at the newest SEARCH_WINDOW records the other filters
    // select (walking the primary key: fast for a common word); only when fewer than a page
    // match there does it ask the whole table (the trigram index: fast for a rare word).
    let rows = match &filter.text {
        Some(_) => {
            let others = UiFilter {
                text: None,
                ..filter.clone()
            };
            let rows =
                select_page(&client, &others, filter, page, limit, Some(SEARCH_WINDOW)).await?;
            if rows.len() as i64 > limit {
                rows
            } else {
                select_page(&client, filter, &UiFilter::default(), page, limit, None).await?
            }
        }
        None => select_page(&client, filter, &UiFilter::default(), page, limit, None).await?,
    };
    list_page(rows, page, limit)
}

/// How many of the newest records a payload search scans before it uses the trigram index.
const SEARCH_WINDOW: i64 = 20_000;

/// Up to `limit + 1` rows matching `filter` on `page`; with `window`, only among the newest
/// `window` rows that `filter` selects, which `outer` then filters further.
async fn select_page(
    client: &deadpool_postgres::Client,
    filter: &UiFilter,
    outer: &UiFilter,
    page: Page,
    limit: i64,
    window: Option<i64>,
) -> Result<Vec<Row>, StoreError> {
    let (mut conditions, mut params) = filter.conditions();
    let order = match page {
        Page::Newest => "DESC",
        Page::Before(id) => {
            params.push(Box::new(id));
            conditions.push(format!("id < ${}", params.len()));
            "DESC"
        }
        Page::After(id) => {
            params.push(Box::new(id));
            conditions.push(format!("id > ${}", params.len()));
            "ASC"
        }
    };
    let source = match window {
        Some(window) => {
            let (outer_conditions, outer_params) = outer.conditions();
            let inner = format!(
                "(SELECT * FROM records{} ORDER BY id {order} LIMIT {window}) r",
                where_sql(&conditions)
            );
            // The outer conditions' placeholders continue the inner ones' numbering.
            let shift = params.len();
            conditions = outer_conditions
                .iter()
                .map(|c| renumber(c, shift))
                .collect();
            params.extend(outer_params);
            inner
        }
        None => "records".to_string(),
    };
    params.push(Box::new(limit + 1));
    let sql = format!(
        "SELECT id, timestamp_server::float8, severity, classification, build, machine_id,
                host_type, architecture, system_name, left(payload, {EXCERPT_CHARS}),
                length(payload) > {EXCERPT_CHARS}
         FROM {source}{} ORDER BY id {order} LIMIT ${}",
        where_sql(&conditions),
        params.len()
    );
    Ok(client.query(&sql, &refs(&params)).await?)
}

/// `$1`, `$2`... in `sql` become `$(1+shift)`, `$(2+shift)`...
fn renumber(sql: &str, shift: usize) -> String {
    let mut out = String::new();
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + shift).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

fn list_page(rows: Vec<Row>, page: Page, limit: i64) -> Result<ListPage, StoreError> {
    let more = rows.len() as i64 > limit;
    let mut rows: Vec<ListRow> = rows
        .iter()
        .take(limit as usize)
        .map(|r| ListRow {
            id: r.get(0),
            ts_server: r.get(1),
            severity: r.get(2),
            classification: r.get(3),
            build: r.get(4),
            machine_id: r.get(5),
            host_type: r.get(6),
            arch: r.get(7),
            system_name: r.get(8),
            excerpt: r.get(9),
            truncated: r.get::<_, Option<bool>>(10).unwrap_or(false),
        })
        .collect();
    let (has_newer, has_older) = match page {
        Page::Newest => (false, more),
        Page::Before(_) => (true, more),
        Page::After(_) => {
            rows.reverse();
            (more, true)
        }
    };
    Ok(ListPage {
        newer: has_newer.then(|| rows.first().map(|r| r.id)).flatten(),
        older: has_older.then(|| rows.last().map(|r| r.id)).flatten(),
        rows,
    })
}

/// Every column of one record, as text, in schema order (`None` = SQL NULL).
pub const DETAIL_COLUMNS: &[&str] = &[
    "id",
    "timestamp_server",
    "timestamp_client",
    "severity",
    "classification",
    "build",
    "machine_id",
    "host_type",
    "architecture",
    "kernel_version",
    "system_name",
    "board_name",
    "cpu_model",
    "bios_version",
    "event_id",
    "record_version",
    "payload_version",
    "external",
    "processed",
    "guilty_id",
];

/// One record: (column, value) for [`DETAIL_COLUMNS`], and the payload.
pub async fn record_detail(
    pool: &Pool,
    id: i32,
) -> Result<Option<(Vec<(&'static str, Option<String>)>, String)>, StoreError> {
    let client = pool.get().await?;
    let columns: Vec<String> = DETAIL_COLUMNS
        .iter()
        .map(|c| format!("{c}::text"))
        .collect();
    let sql = format!(
        "SELECT {}, payload FROM records WHERE id = $1",
        columns.join(", ")
    );
    let Some(row) = client.query_opt(&sql, &[&id]).await? else {
        return Ok(None);
    };
    let fields = DETAIL_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, row.get::<_, Option<String>>(i)))
        .collect();
    Ok(Some((fields, row.get(DETAIL_COLUMNS.len()))))
}

/// CSV columns, in order (the export's header line).
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "ts_reception",
    "ts_capture",
    "severity",
    "classification",
    "build",
    "machine_id",
    "host_type",
    "architecture",
    "kernel_version",
    "system_name",
    "board_name",
    "cpu_model",
    "bios_version",
    "event_id",
    "record_version",
    "payload_version",
    "external",
    "payload",
];

/// Up to `limit` matching records with an id below `before` (all when `None`), newest first,
/// as text cells in [`CSV_COLUMNS`] order (timestamps as unix seconds).
pub async fn csv_chunk(
    pool: &Pool,
    filter: &UiFilter,
    before: Option<i32>,
    limit: i64,
) -> Result<Vec<(i32, Vec<Option<String>>)>, StoreError> {
    let client = pool.get().await?;
    let (mut conditions, mut params) = filter.conditions();
    if let Some(id) = before {
        params.push(Box::new(id));
        conditions.push(format!("id < ${}", params.len()));
    }
    params.push(Box::new(limit));
    let sql = format!(
        "SELECT id, id::text, timestamp_server::text, timestamp_client::text, severity::text,
                classification, build, machine_id, host_type, architecture, kernel_version,
                system_name, board_name, cpu_model, bios_version, event_id, record_version::text,
                payload_version::text, external::text, payload
         FROM records{} ORDER BY records.id DESC LIMIT ${}",
        where_sql(&conditions),
        params.len()
    );
    let rows = client.query(&sql, &refs(&params)).await?;
    Ok(rows
        .iter()
        .map(|r: &Row| {
            let cells = (1..=CSV_COLUMNS.len()).map(|i| r.get(i)).collect();
            (r.get(0), cells)
        })
        .collect())
}

/// (value, count) pairs, largest count first.
pub type Counts = Vec<(String, i64)>;

/// Records per build matching `filter`, the `top` biggest builds.
pub async fn count_by_build(
    pool: &Pool,
    filter: &UiFilter,
    top: i64,
) -> Result<Counts, StoreError> {
    count_by(pool, Dimension::Build, filter, top).await
}

async fn count_by(
    pool: &Pool,
    dimension: Dimension,
    filter: &UiFilter,
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

pub async fn breakdown(pool: &Pool, filter: &UiFilter) -> Result<Breakdown, StoreError> {
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

/// Number of stored records: exact on small tables, the planner's estimate (prefixed `~` by
/// callers, see the bool) above 200,000 rows, where `count(*)` would scan the table.
pub async fn stored_records(pool: &Pool) -> Result<i64, StoreError> {
    Ok(stored_records_estimate(pool).await?.0)
}

/// (count, exact?).
pub async fn stored_records_estimate(pool: &Pool) -> Result<(i64, bool), StoreError> {
    let client = pool.get().await?;
    let estimate: f32 = client
        .query_one(
            "SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass",
            &[],
        )
        .await?
        .get(0);
    if estimate > 200_000.0 {
        return Ok((estimate as i64, false));
    }
    let exact: i64 = client
        .query_one("SELECT count(*) FROM records", &[])
        .await?
        .get(0);
    Ok((exact, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_escaped_like_patterns() {
        assert_eq!(
            glob_to_like("org.clearlinux/crash/*"),
            "org.clearlinux/crash/%"
        );
        assert_eq!(glob_to_like("a/b?/c"), "a/b_/c");
        assert_eq!(glob_to_like("100%_x\\"), "100\\%\\_x\\\\");
    }

    #[test]
    fn conditions_number_their_parameters() {
        let f = UiFilter {
            classification: Some("a/b/*".into()),
            severity: Some(3),
            text: Some("50%".into()),
            ..UiFilter::default()
        };
        let (conditions, params) = f.conditions();
        assert_eq!(
            conditions,
            [
                "classification LIKE $1",
                "severity = $2",
                "payload ILIKE '%' || $3 || '%'"
            ]
        );
        assert_eq!(params.len(), 3);
        let exact = UiFilter {
            classification: Some("a/b/c".into()),
            ..UiFilter::default()
        };
        assert_eq!(exact.conditions().0, ["classification = $1"]);
    }
}
