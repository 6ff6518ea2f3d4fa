//! The records list (`/`, `/records`): the filtered newest-first page with keyset paging
//! (never OFFSET), a payload search that looks at the newest records first, and the number
//! of stored records.

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::store::filter::{where_sql, Binds, Filter};
use crate::store::StoreError;

/// Which page of the newest-first list: keyset positions, never an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Newest,
    /// Records with an id below this one (older).
    Before(i32),
    /// Records with an id above this one (newer), the oldest of them first.
    After(i32),
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
    filter: &Filter,
    page: Page,
    limit: i64,
) -> Result<ListPage, StoreError> {
    let client = pool.get().await?;
    // A payload search first looks at the newest SEARCH_WINDOW records the other filters
    // select (walking the primary key: fast for a common word); only when fewer than a page
    // match there does it ask the whole table (the trigram index: fast for a rare word).
    let rows = match &filter.text {
        Some(_) => {
            let others = Filter {
                text: None,
                ..filter.clone()
            };
            let rows =
                select_page(&client, &others, filter, page, limit, Some(SEARCH_WINDOW)).await?;
            if rows.len() as i64 > limit {
                rows
            } else {
                select_page(&client, filter, &Filter::default(), page, limit, None).await?
            }
        }
        None => select_page(&client, filter, &Filter::default(), page, limit, None).await?,
    };
    list_page(rows, page, limit)
}

/// How many of the newest records a payload search scans before it uses the trigram index.
const SEARCH_WINDOW: i64 = 20_000;

/// Up to `limit + 1` rows matching `filter` on `page`; with `window`, only among the newest
/// `window` rows that `filter` selects, which `outer` then filters further.
async fn select_page(
    client: &deadpool_postgres::Client,
    filter: &Filter,
    outer: &Filter,
    page: Page,
    limit: i64,
    window: Option<i64>,
) -> Result<Vec<Row>, StoreError> {
    let mut binds = Binds::default();
    let mut conditions = filter.sql(&mut binds);
    let order = match page {
        Page::Newest => "DESC",
        Page::Before(id) => {
            conditions.push(format!("id < {}", binds.bind(id)));
            "DESC"
        }
        Page::After(id) => {
            conditions.push(format!("id > {}", binds.bind(id)));
            "ASC"
        }
    };
    let source = match window {
        Some(window) => {
            let inner = format!(
                "(SELECT * FROM records{} ORDER BY id {order} LIMIT {window}) r",
                where_sql(&conditions)
            );
            conditions = outer.sql(&mut binds);
            inner
        }
        None => "records".to_string(),
    };
    let limit = binds.bind(limit + 1);
    let sql = format!(
        "SELECT id, timestamp_server::float8, severity, classification, build, machine_id,
                host_type, architecture, system_name, left(payload, {EXCERPT_CHARS}),
                length(payload) > {EXCERPT_CHARS}
         FROM {source}{} ORDER BY id {order} LIMIT {limit}",
        where_sql(&conditions)
    );
    Ok(client.query(&sql, &binds.refs()).await?)
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

/// Number of stored records and whether it is exact: exact on small tables, the planner's
/// estimate above 200,000 rows, where `count(*)` would scan the table (callers show it
/// prefixed `~`).
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
