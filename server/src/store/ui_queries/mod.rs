//! SQL for the web UI (`crate::ui`), one module per page: the records list, one record, the
//! CSV export and the charts' aggregates. Filters become SQL in [`super::filter`], as for the
//! query API; every value reaches PostgreSQL as a bind parameter; nothing here formats HTML.

mod charts;
mod csv;
mod detail;
mod records;

pub use charts::{
    breakdown, count_by_build, database_identity, overview, Breakdown, Counts, Overview,
};
pub use csv::{csv_chunk, CSV_COLUMNS};
pub use detail::record_detail;
pub use records::{list_records, stored_records_estimate, ListPage, ListRow, Page};
