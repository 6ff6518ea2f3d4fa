//! One record (`/records/<id>`): every column as text, and the payload.

use deadpool_postgres::Pool;

use crate::store::StoreError;

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
