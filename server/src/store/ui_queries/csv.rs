//! The CSV export (`/records.csv`): the filtered set in keyset chunks, as text cells.

use deadpool_postgres::Pool;
use tokio_postgres::Row;

use crate::store::filter::{where_sql, Binds, Filter};
use crate::store::StoreError;

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
    filter: &Filter,
    before: Option<i32>,
    limit: i64,
) -> Result<Vec<(i32, Vec<Option<String>>)>, StoreError> {
    let client = pool.get().await?;
    let mut binds = Binds::default();
    let mut conditions = filter.sql(&mut binds);
    if let Some(id) = before {
        conditions.push(format!("id < {}", binds.bind(id)));
    }
    let limit = binds.bind(limit);
    let sql = format!(
        "SELECT id, id::text, timestamp_server::text, timestamp_client::text, severity::text,
                classification, build, machine_id, host_type, architecture, kernel_version,
                system_name, board_name, cpu_model, bios_version, event_id, record_version::text,
                payload_version::text, external::text, payload
         FROM records{} ORDER BY records.id DESC LIMIT {limit}",
        where_sql(&conditions)
    );
    let rows = client.query(&sql, &binds.refs()).await?;
    Ok(rows
        .iter()
        .map(|r: &Row| {
            let cells = (1..=CSV_COLUMNS.len()).map(|i| r.get(i)).collect();
            (r.get(0), cells)
        })
        .collect())
}
