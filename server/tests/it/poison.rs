//! A record nobody can store ("poison") is refused alone: its batch-mates are committed and
//! answered 201, the poison gets 400, and the collector stays ready. Every kind of refusal
//! that can be provoked is tried: one the validator catches (a classification longer than any
//! index can hold), and ones only PostgreSQL finds, installed as test-only schema objects that
//! each refuse one marked payload: a program limit (an index row above 2704 bytes, SQLSTATE
//! 54000), a data exception (division by zero in a CHECK, 22012), an integrity violation
//! (CHECK, 23514) and an error raised by a trigger (P0001).
//! And the largest values validation accepts are stored (every index included).

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{
    config, header_request, migrated_db, send_raw, HttpResponse, TestServer, TID,
};
use crate::pg::{connect, PgCluster};

/// Test-only schema objects, each refusing payloads that start with its marker.
const POISON_SCHEMA: &str = "
CREATE INDEX poison_limit_idx ON records (payload) WHERE payload LIKE 'poison-54%';
ALTER TABLE records ADD CONSTRAINT poison_data
    CHECK (length(payload) / (CASE WHEN payload LIKE 'poison-22%' THEN 0 ELSE 1 END) >= 0);
ALTER TABLE records ADD CONSTRAINT poison_check CHECK (payload NOT LIKE 'poison-23%');
CREATE FUNCTION poison_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload LIKE 'poison-P0%' THEN
        RAISE EXCEPTION 'this record is not welcome';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER poison_trigger BEFORE INSERT ON records
    FOR EACH ROW EXECUTE FUNCTION poison_trigger();
";

/// Deterministic text no compression shrinks much (xorshift over `alphabet`).
fn noise(seed: u64, len: usize, alphabet: &[char]) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize]
        })
        .collect()
}

fn alnum() -> Vec<char> {
    ('a'..='z').chain('A'..='Z').chain('0'..='9').collect()
}

/// (name, the poison record's header overrides and body, what its 400 must mention).
type Poison = (
    &'static str,
    Vec<(&'static str, String)>,
    Vec<u8>,
    &'static str,
);

fn poisons(round: u64) -> Vec<Poison> {
    let big = |marker: &str| format!("{marker}{}", noise(round, 4000, &alnum())).into_bytes();
    vec![
        (
            "classification over its limit (validation)",
            vec![(
                "classification",
                format!("org/{}/x", noise(round, 3000, &alnum())),
            )],
            b"poison".to_vec(),
            "classification",
        ),
        (
            "index row too large (54000)",
            vec![],
            big("poison-54"),
            "index",
        ),
        (
            "data exception (22012)",
            vec![],
            b"poison-22".to_vec(),
            "division by zero",
        ),
        (
            "check violation (23514)",
            vec![],
            b"poison-23".to_vec(),
            "poison_check",
        ),
        (
            "raised by a trigger (P0001)",
            vec![],
            b"poison-P0".to_vec(),
            "not welcome",
        ),
    ]
}

async fn ready(addr: SocketAddr) -> u16 {
    send_raw(addr, b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .status
}

#[tokio::test]
async fn a_poison_record_is_refused_alone_and_its_batch_mates_are_stored() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let client = connect(&db).await;
    client.batch_execute(POISON_SCHEMA).await.unwrap();
    let mut cfg = config(&db);
    // Records arriving within 20 ms share a batch.
    cfg.batch_max_wait = Duration::from_millis(20);
    let server = TestServer::start(cfg).await;
    let (good_per_round, rounds) = (50, 3);
    let mut event = 0u64;
    let mut good_sent = 0;
    for round in 0..rounds {
        for (name, overrides, body, mentions) in poisons(round) {
            let mut requests = Vec::new();
            for i in 0..=good_per_round {
                event += 1;
                let event_id = format!("{event:032x}");
                let ts = (1_790_000_000 + event).to_string();
                let mut fields: Vec<(&str, &str)> =
                    vec![("event_id", &event_id), ("creation_timestamp", &ts)];
                // The poison sits in the middle of its round.
                let (fields, body, poison) = if i == good_per_round / 2 {
                    fields.extend(overrides.iter().map(|(k, v)| (*k, v.as_str())));
                    (fields, body.clone(), true)
                } else {
                    let body = format!("good {round} {name} {i}").into_bytes();
                    (fields, body, false)
                };
                requests.push((poison, header_request("/", &fields, &body)));
            }
            let tasks: Vec<_> = requests
                .into_iter()
                .map(|(poison, request)| {
                    let addr = server.addr;
                    tokio::spawn(async move { (poison, send_raw(addr, &request).await) })
                })
                .collect();
            for task in tasks {
                let (poison, r): (bool, HttpResponse) = task.await.unwrap();
                let body = String::from_utf8_lossy(&r.body).to_string();
                if poison {
                    assert_eq!(r.status, 400, "{name}: poison answered {body}");
                    assert!(
                        body.contains(mentions),
                        "{name}: 400 without {mentions:?}: {body}"
                    );
                } else {
                    assert_eq!(
                        r.status, 201,
                        "{name}, round {round}: good record got {body}"
                    );
                    good_sent += 1;
                }
            }
            assert_eq!(
                ready(server.addr).await,
                200,
                "{name}: /readyz after the round"
            );
        }
    }
    // Every good record stored exactly once; no poison stored.
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT payload),
                    count(*) FILTER (WHERE payload LIKE 'poison%')
             FROM records",
            &[],
        )
        .await
        .unwrap();
    let (rows, distinct, poison): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((rows, distinct, poison), (good_sent, good_sent, 0));
    // The poison shared batches with good records: batches were split to find it.
    let metrics = server.state.metrics.render();
    let splits: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("telem_collector_database_errors_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        splits > f64::from(4 * rounds as u32),
        "only {splits} database errors: the poison records never shared a batch"
    );
    server.stop().await;
}

/// A JSON-format record (any Unicode travels as is) from (field, value) pairs.
fn json_request(fields: &[(&str, String)], payload: &str) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    for (k, v) in fields {
        object.insert(k.to_string(), serde_json::Value::String(v.clone()));
    }
    object.insert("payload".into(), payload.into());
    let body = serde_json::to_vec(&object).unwrap();
    let mut out = format!(
        "POST /v3/collector HTTP/1.1\r\nHost: t\r\nX-Telemetry-TID: {TID}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The longest value of every limited field, made of characters that take the most bytes and
/// compress the least, is stored: every index (and `record_counts`' key) takes it.
#[tokio::test]
async fn the_largest_values_validation_accepts_are_stored() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let db = migrated_db(pg).await;
    let server = TestServer::start(config(&db)).await;
    let wide: Vec<char> = (0x1F300..0x1F5FF).filter_map(char::from_u32).collect();
    let build_chars: Vec<char> = alnum().into_iter().chain(['-', '_', '.']).collect();
    let printable: Vec<char> = (' '..='~').collect();
    let classification = format!(
        "{}/{}/{}",
        noise(1, 170, &alnum()),
        noise(2, 170, &alnum()),
        noise(3, 170, &alnum())
    );
    assert_eq!(classification.len(), 512);
    let kernel = format!("6.1.{}", noise(4, 252, &alnum()));
    let fields: Vec<(&str, String)> = vec![
        ("record_format_version", "4".into()),
        ("classification", classification),
        ("severity", "4".into()),
        ("machine_id", noise(5, 32, &wide)),
        ("creation_timestamp", "1795758044".into()),
        ("arch", "aarch64".into()),
        ("host_type", noise(6, 249, &wide)),
        ("build", noise(7, 199, &build_chars)),
        ("kernel_version", kernel),
        ("payload_format_version", "2147483646".into()),
        ("system_name", noise(8, 256, &alnum())),
        ("board_name", noise(9, 199, &printable)),
        ("cpu_model", noise(10, 199, &printable)),
        ("bios_version", noise(11, 199, &printable)),
        ("event_id", "0123456789abcdef0123456789abcdef".into()),
    ];
    // 240 KB: past the small part of a body, within the body limit.
    let payload = noise(12, 60_000, &wide);
    let r = send_raw(server.addr, &json_request(&fields, &payload)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_i64().unwrap() as i32;
    let client = connect(&db).await;
    let row = client
        .query_one(
            "SELECT classification, machine_id, host_type, build, kernel_version, system_name,
                    board_name, cpu_model, bios_version, payload
             FROM records WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let stored: Vec<String> = (0..10).map(|i| row.get(i)).collect();
    let sent: Vec<&str> = [1, 3, 6, 7, 8, 10, 11, 12, 13]
        .iter()
        .map(|&i| fields[i].1.as_str())
        .chain([payload.as_str()])
        .collect();
    assert_eq!(stored, sent);
    server.stop().await;
}
