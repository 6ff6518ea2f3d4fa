//! The collector refuses a PostgreSQL older than it supports, judged by the version the server
//! reports (`server_version_num`), with a message naming that version.

use telem_collector::store::version::{
    check_server_version, require_server_version, MIN_SERVER_VERSION_NUM,
};

use crate::pg::{connect, PgCluster};

#[tokio::test]
async fn a_server_older_than_required_is_refused_with_its_version() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = pg.create_database().await;
    let client = connect(&db).await;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version')",
            &[],
        )
        .await
        .unwrap();
    let (num, version): (i32, String) = (row.get(0), row.get(1));

    // The test cluster itself is supported, and exactly its version is enough.
    assert!(
        num >= MIN_SERVER_VERSION_NUM,
        "the test cluster runs PostgreSQL {version}"
    );
    check_server_version(&client)
        .await
        .expect("a supported server passes");
    require_server_version(&client, num)
        .await
        .expect("its own version passes");

    // One minor release newer than the server is too new for it: refused, naming what it runs.
    let err = require_server_version(&client, num + 1)
        .await
        .expect_err("an older server is refused");
    let message = telem_collector::store::describe(&err);
    let major = (num + 1) / 10000;
    assert!(
        message.contains(&format!("PostgreSQL {version} is older than {major}"))
            && message.contains("the oldest telem-collector supports"),
        "{message}"
    );
    // Nothing was migrated on the way.
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'telem_collector_migrations'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}
