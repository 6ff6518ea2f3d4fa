//! Property: any record the validator accepts round-trips through the database unchanged.
//!
//! Generated records (mostly near-valid values, with arbitrary Unicode, control characters,
//! quotes, whitespace, Latin-1 bytes and out-of-range values mixed in) are posted through the
//! router in either body format. The expected outcome is computed independently with the pure
//! `record::from_*` + `record::validate` functions: an accepted record must be answered 201 and
//! its row must hold exactly the validated values (every column), a refused one must be a 400
//! that stored nothing.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};
use telem_collector::http::router;
use telem_collector::record::{self, Record};
use telem_collector::serve::App;
use tower::ServiceExt;

use crate::harness::{config, migrated_db, TID};
use crate::pg::{connect, PgCluster};

/// Enough to cover every rule several times over and still run in a few seconds.
const CASES: u32 = 384;

/// A value that is valid for its rule most of the time, arbitrary text otherwise.
fn mostly(valid: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        40 => valid,
        1 => "[\\PC\t\r\n\x0b\x0c\u{80}-\u{ff}]{0,12}",
        1 => any::<String>(),
    ]
    .boxed()
}

fn int_text(range: std::ops::RangeInclusive<i64>) -> BoxedStrategy<String> {
    prop_oneof![
        6 => range.prop_map(|n| n.to_string()),
        1 => (1i64..5).prop_map(|n| format!(" {n} ")),
        1 => (1i64..5).prop_map(|n| format!("+{n}")),
        1 => (1i64..5).prop_map(|n| format!("0{n}")),
    ]
    .boxed()
}

/// Free text that validation only bounds by length (host_type, classification parts).
fn free_text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::string::string_regex(&format!("[ -.0-~]{{0,{max}}}")).unwrap(),
        2 => proptest::string::string_regex(&format!("[\\PC\t&&[^/]]{{0,{max}}}")).unwrap(),
    ]
    .boxed()
}

fn printable(max: usize) -> BoxedStrategy<String> {
    proptest::string::string_regex(&format!("[ -~\t\x0b\x0c]{{0,{max}}}"))
        .unwrap()
        .boxed()
}

#[derive(Debug, Clone)]
struct Case {
    /// Values indexed like `record::Field::ALL`; `None` leaves the field out.
    fields: Vec<Option<String>>,
    external: Option<String>,
    payload: Vec<u8>,
    json: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let version = mostly(
        prop_oneof![Just("4"), Just("3"), Just("2"), Just("1")]
            .prop_map(String::from)
            .boxed(),
    );
    let classification = mostly(
        (free_text(12), free_text(12), free_text(12))
            .prop_map(|(a, b, c)| format!("{a}/{b}/{c}").replace("//", "/x/"))
            .boxed(),
    );
    let severity = mostly(int_text(1..=4));
    let machine_id = mostly(free_text(33));
    let timestamp = mostly(
        prop_oneof![
            (0i64..=4_000_000_000).prop_map(|n| n.to_string()),
            "[0-9]{1,18}"
        ]
        .boxed(),
    );
    let arch = mostly(
        proptest::sample::select(vec![
            "armv7l", "armv6l", "aarch64", "amd64", "sparc64", "ppc64", "i686", "i386", "x86_64",
            "ppc",
        ])
        .prop_map(String::from)
        .boxed(),
    );
    let host_type = mostly(prop_oneof![8 => free_text(40), 1 => "[a-z]{245,252}"].boxed());
    let build = mostly(
        prop_oneof![
            "[0-9]{1,8}",
            "\"[0-9]{1,6}\"",
            "[-_a-zA-Z0-9.]{1,30}",
            "[-_a-zA-Z0-9.]{195,205}",
        ]
        .boxed(),
    );
    let kernel = mostly("[0-9]{1,3}\\.[0-9]{1,3}\\.[\\PC]{0,16}".boxed());
    let payload_version = mostly(
        prop_oneof![
            int_text(0..=3),
            Just("2147483646".to_string()),
            Just("2147483647".to_string())
        ]
        .boxed(),
    );
    let system_name = mostly(
        prop_oneof![
            Just("clear-linux-os".to_string()),
            Just("\"clear-linux-os\"".to_string()),
            free_text(16),
        ]
        .boxed(),
    );
    let info = || mostly(prop_oneof![6 => printable(40), 1 => printable(205)].boxed());
    let event_id = mostly("[0-9a-f]{32}".boxed());
    let fields = (
        (
            version,
            classification,
            severity,
            machine_id,
            timestamp,
            arch,
            host_type,
            build,
        ),
        (
            kernel,
            payload_version,
            system_name,
            info(),
            info(),
            info(),
            event_id,
        ),
        proptest::collection::vec(proptest::bool::weighted(0.005), 15),
    )
        .prop_map(|((a, b, c, d, e, f, g, h), (i, j, k, l, m, n, o), drop)| {
            [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o]
                .into_iter()
                .zip(drop)
                .map(|(v, drop)| (!drop).then_some(v))
                .collect::<Vec<_>>()
        });
    let external = proptest::option::of(
        proptest::sample::select(vec!["true", "TRUE", " true ", "false", "1", ""])
            .prop_map(String::from),
    );
    let payload = prop_oneof![
        6 => "[\\PC\t\r\n\x0b\x0c]{0,300}".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ];
    (fields, external, payload, any::<bool>()).prop_map(|(fields, external, payload, json)| Case {
        fields,
        external,
        payload,
        json,
    })
}

impl Case {
    /// The request as a client would send it, with the headers the handler will see.
    /// Header format when every value fits in a header, JSON otherwise.
    fn request(&mut self) -> (Request<Body>, HeaderMap, Vec<u8>) {
        if !self.json {
            if let Some(r) = self.try_request() {
                return r;
            }
            self.json = true; // a control character no header can carry
        }
        self.try_request().expect("any text fits in JSON")
    }

    fn try_request(&self) -> Option<(Request<Body>, HeaderMap, Vec<u8>)> {
        let mut headers = HeaderMap::new();
        headers.insert("x-telemetry-tid", HeaderValue::from_static(TID));
        if let Some(e) = &self.external {
            headers.insert("x-clr-external", HeaderValue::from_str(e).unwrap());
        }
        let body = if self.json {
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            let mut object = serde_json::Map::new();
            for (field, value) in record::Field::ALL.iter().zip(&self.fields) {
                if let Some(v) = value {
                    object.insert(field.name().into(), v.clone().into());
                }
            }
            // JSON carries text: the payload bytes as the client would have decoded them.
            object.insert("payload".into(), record::decode_text(&self.payload).into());
            serde_json::to_vec(&object).unwrap()
        } else {
            headers.insert("content-type", HeaderValue::from_static("application/text"));
            for (field, value) in record::Field::ALL.iter().zip(&self.fields) {
                if let Some(v) = value {
                    let value = HeaderValue::from_bytes(v.as_bytes()).ok()?;
                    headers.insert(HeaderName::from_static(field.name()), value);
                }
            }
            self.payload.clone()
        };
        let mut builder = Request::post("/v3/collector");
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        Some((
            builder.body(Body::from(body.clone())).unwrap(),
            headers,
            body,
        ))
    }
}

/// The stored row, column by column, in the shape of a [`Record`].
async fn stored(client: &tokio_postgres::Client, id: i32) -> Record {
    let row = client
        .query_one(
            "SELECT record_version, severity, classification, machine_id,
                    timestamp_client::int8, architecture, host_type, build, kernel_version,
                    payload_version, system_name, board_name, cpu_model, bios_version, event_id,
                    external, payload
             FROM records WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the acknowledged row exists");
    Record {
        record_version: row.get(0),
        severity: row.get(1),
        classification: row.get(2),
        machine_id: row.get(3),
        timestamp_client: row.get(4),
        architecture: row.get(5),
        host_type: row.get(6),
        build: row.get(7),
        kernel_version: row.get(8),
        payload_version: row.get(9),
        system_name: row.get(10),
        board_name: row.get(11),
        cpu_model: row.get(12),
        bios_version: row.get(13),
        event_id: row.get(14),
        external: row.get(15),
        payload: row.get(16),
    }
}

#[test]
fn accepted_records_round_trip_unchanged() {
    let Some(pg) = PgCluster::shared() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, db) = rt.block_on(async {
        let db_url = migrated_db(pg).await;
        let app = App::start(&config(&db_url)).await.unwrap();
        (router(app.state), connect(&db_url).await)
    });
    let accepted = AtomicU32::new(0);
    let reasons = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut runner = TestRunner::new(PtConfig {
        cases: CASES,
        failure_persistence: None,
        ..PtConfig::default()
    });
    let result = runner.run(&case(), |mut case| {
        let (request, headers, body) = case.request();
        let expected = if case.json {
            record::from_json(&headers, &body)
        } else {
            Ok(record::from_headers(&headers, &body))
        }
        .and_then(|raw| record::validate(&raw, TID));
        rt.block_on(async {
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("answer is not JSON: {e}")))?;
            match expected {
                Ok(record) => {
                    prop_assert_eq!(status, 201, "accepted record not stored: {}", answer);
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let id = answer["id"].as_i64().unwrap() as i32;
                    let row = stored(&db, id).await;
                    prop_assert_eq!(&row, &record);
                    // The 201 body shows the values that were stored.
                    prop_assert_eq!(answer["payload"].as_str(), Some(row.payload.as_str()));
                    prop_assert_eq!(
                        answer["classification"].as_str(),
                        Some(row.classification.as_str())
                    );
                    prop_assert_eq!(answer["build"].as_str(), Some(row.build.as_str()));
                    // Nothing of the input was lost on the way: payload and free text as sent.
                    let sent_payload = record::decode_text(&case.payload);
                    prop_assert_eq!(&row.payload, &sent_payload);
                    prop_assert_eq!(Some(&row.host_type), case.fields[6].as_ref());
                }
                Err(rejection) => {
                    reasons
                        .lock()
                        .unwrap()
                        .entry(rejection.message.chars().take(40).collect::<String>())
                        .and_modify(|n| *n += 1)
                        .or_insert(1u32);
                    prop_assert_eq!(status, 400, "refused record answered: {}", answer);
                    prop_assert_eq!(answer["message"].as_str(), Some(rejection.message.as_str()));
                }
            }
            // Fresh table for the next case: a format-4 resend would otherwise answer with
            // an earlier row.
            let left = db.execute("DELETE FROM records", &[]).await.unwrap();
            prop_assert!(left <= 1, "one request stored {} rows", left);
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let accepted = accepted.into_inner();
    eprintln!("{:#?}", reasons.lock().unwrap());
    eprintln!("round trip: {accepted} of {CASES} generated records accepted and compared");
    assert!(
        accepted >= CASES / 8,
        "only {accepted} of {CASES} cases were accepted: the generator no longer exercises storage"
    );
}
