//! The records query as it travels in a query string: [`RecordsQuery`] is its wire form (read
//! from the request and written into links with serde_urlencoded), [`Params`] the checked
//! form the queries take (a bad value is a 400 naming the parameter). Empty parameters mean
//! "no filter" (that is what an empty form field sends).

use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::store::ui_queries::Page;
use crate::store::{Classification, Filter};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// `since` choices: (value, label, seconds).
pub const SINCE: &[(&str, &str, i64)] = &[
    ("1h", "last hour", 3600),
    ("24h", "last 24 h", 86400),
    ("7d", "last 7 days", 7 * 86400),
    ("30d", "last 30 days", 30 * 86400),
];

/// The records query string: the filter form's fields, the page size and the keyset position,
/// each value as typed, `""` when not given (and left out of links). Unknown parameters are
/// ignored. `RecordsQuery::default()` is the unfiltered newest page at the default page size,
/// a valid query; the records table's per-value links are built from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordsQuery {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub classification: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub build: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub machine_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub platform: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub arch: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub since: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub to: String,
    /// Payload contains.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub q: String,
    /// Page size, 1 to [`MAX_LIMIT`]; `""` is [`DEFAULT_LIMIT`].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub n: String,
    /// Keyset position: records older than this id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub before: String,
    /// Keyset position: records newer than this id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub after: String,
}

/// One filter field of [`RecordsQuery`] (a chart's bars each set one).
pub type Field = fn(&mut RecordsQuery) -> &mut String;

/// The filter fields, in form order.
const FILTERS: [Field; 11] = [
    |q| &mut q.classification,
    |q| &mut q.severity,
    |q| &mut q.build,
    |q| &mut q.machine_id,
    |q| &mut q.system_name,
    |q| &mut q.platform,
    |q| &mut q.arch,
    |q| &mut q.since,
    |q| &mut q.from,
    |q| &mut q.to,
    |q| &mut q.q,
];

impl RecordsQuery {
    /// The query string (`build=31870&n=20`), empty for the defaults.
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(self).expect("a struct of strings always serialises")
    }

    /// The same query with `field` set to `value`.
    pub fn with(&self, field: Field, value: &str) -> Self {
        let mut q = self.clone();
        *field(&mut q) = value.to_string();
        q
    }
}

/// A records query, checked: the query as given (for links and the form) and as values (for
/// SQL).
#[derive(Debug, Clone)]
pub struct Params {
    /// The filters and the page size as given (blank values cleared, no keyset position):
    /// every link of a page starts from it.
    pub query: RecordsQuery,
    pub filter: Filter,
    pub page: Option<Page>,
    pub limit: i64,
}

fn bad(name: &str, why: &str) -> String {
    format!("invalid {name}: {why}")
}

/// Unix seconds of `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]`, `YYYY-MM-DD HH:MM[:SS]` (UTC) or a
/// plain number of seconds. `end_of_day` moves a bare date to the next midnight (for `to`).
pub fn parse_time(value: &str, end_of_day: bool) -> Option<f64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return secs.is_finite().then_some(secs);
    }
    if let Ok(date) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp() as f64;
        return Some(midnight + if end_of_day { 86400.0 } else { 0.0 });
    }
    let v = v.trim_end_matches(" UTC").replace('T', " ");
    ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&v, f).ok())
        .map(|t| t.and_utc().timestamp() as f64)
}

/// A text filter: `None` when blank, else the trimmed value (checked).
fn text(name: &str, value: &str) -> Result<Option<String>, String> {
    let value = value.trim();
    if value.contains('\0') {
        return Err(bad(name, "contains a NUL character"));
    }
    if value.chars().count() > 300 {
        return Err(bad(name, "longer than 300 characters"));
    }
    Ok((!value.is_empty()).then(|| value.to_string()))
}

/// A checked value when `value` is not blank.
fn given<T>(
    name: &str,
    value: &str,
    check: impl FnOnce(&str) -> Option<T>,
    why: &str,
) -> Result<Option<T>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    check(v).map(Some).ok_or_else(|| bad(name, why))
}

fn id(value: &str) -> Option<i32> {
    value.parse::<i32>().ok().filter(|n| *n >= 0)
}

/// The query's filters, checked. `now` is unix seconds (for `since`).
fn filter(q: &RecordsQuery, now: f64) -> Result<Filter, String> {
    const TIME: &str = "expected YYYY-MM-DD[ HH:MM[:SS]] (UTC)";
    let since = given(
        "since",
        &q.since,
        |v| SINCE.iter().find(|s| s.0 == v).map(|s| now - s.2 as f64),
        "expected 1h, 24h, 7d or 30d",
    )?;
    let from = given("from", &q.from, |v| parse_time(v, false), TIME)?;
    // The payload search is not trimmed: a leading space may be what is searched.
    let search = text("q", &q.q)?.map(|_| q.q.clone());
    Ok(Filter {
        classification: text("classification", &q.classification)?
            .map(|c| Classification::pattern(&c)),
        severity: given(
            "severity",
            &q.severity,
            |v| v.parse().ok().filter(|n| (1..=4).contains(n)),
            "expected 1 to 4",
        )?,
        build: text("build", &q.build)?,
        machine_id: text("machine_id", &q.machine_id)?,
        system_name: text("system_name", &q.system_name)?,
        platform: text("platform", &q.platform)?,
        arch: text("arch", &q.arch)?,
        // The later of `since` and `from`.
        from: since.into_iter().chain(from).reduce(f64::max),
        to: given("to", &q.to, |v| parse_time(v, true), TIME)?,
        within_secs: None,
        text: search,
    })
}

impl Params {
    /// Checks a records query. `now` is unix seconds.
    pub fn parse(q: &RecordsQuery, now: f64) -> Result<Self, String> {
        let filter = filter(q, now)?;
        let limit = given(
            "n",
            &q.n,
            |v| v.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)),
            "expected 1 to 500",
        )?
        .unwrap_or(DEFAULT_LIMIT);
        let before = given("before", &q.before, id, "expected a record id")?;
        let after = given("after", &q.after, id, "expected a record id")?;
        let page = match (before, after) {
            (Some(id), _) => Some(Page::Before(id)),
            (None, Some(id)) => Some(Page::After(id)),
            (None, None) => None,
        };
        // What links start from: the filters as given (blank ones dropped), the page size
        // unless it is the default, no keyset position.
        let mut query = RecordsQuery {
            n: if limit == DEFAULT_LIMIT {
                String::new()
            } else {
                limit.to_string()
            },
            before: String::new(),
            after: String::new(),
            ..q.clone()
        };
        for field in FILTERS {
            let value = field(&mut query);
            if value.trim().is_empty() {
                value.clear();
            }
        }
        Ok(Params {
            query,
            filter,
            page,
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(s: &str) -> RecordsQuery {
        serde_urlencoded::from_str(s).unwrap()
    }

    #[test]
    fn parses_filters_and_skips_empty_fields() {
        let p = Params::parse(
            &query(
                "classification=org/probe/*&severity=3&build=&from=2026-01-02&to=2026-01-02\
                 &q=oops&before=77&n=20&unknown=x",
            ),
            0.0,
        )
        .unwrap();
        assert_eq!(
            p.filter.classification,
            Some(Classification::Glob("org/probe/*".into()))
        );
        assert_eq!(p.filter.severity, Some(3));
        assert_eq!(p.filter.build, None);
        assert_eq!(p.filter.from, Some(1767312000.0));
        assert_eq!(p.filter.to, Some(1767312000.0 + 86400.0));
        assert_eq!(p.filter.text.as_deref(), Some("oops"));
        assert_eq!(p.page, Some(Page::Before(77)));
        assert_eq!(p.limit, 20);
        // Links carry the filters and the page size, not the keyset position, encoded as a
        // browser encodes a form.
        assert_eq!(
            p.query.with(|q| &mut q.after, "5").encode(),
            "classification=org%2Fprobe%2F*&severity=3&from=2026-01-02&to=2026-01-02&q=oops&n=20&after=5"
        );
    }

    /// Links built from the defaults (the records table's per-value links) must parse back to
    /// the same query: the default page size is valid and not repeated in the link.
    #[test]
    fn default_queries_make_valid_links() {
        let link = RecordsQuery::default()
            .with(|q| &mut q.build, "31870")
            .encode();
        assert_eq!(link, "build=31870");
        let p = Params::parse(&query(&link), 0.0).unwrap();
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert_eq!(p.filter.build.as_deref(), Some("31870"));
        let p = Params::parse(&RecordsQuery::default(), 0.0).unwrap();
        assert_eq!((p.limit, p.page, p.filter.is_empty()), (50, None, true));
        assert_eq!(RecordsQuery::default().encode(), "");
        // A page size equal to the default is not repeated either; values round-trip.
        let p = Params::parse(&query("n=50&q=a%20b%26c&platform=x%27y+"), 0.0).unwrap();
        assert_eq!(p.query.encode(), "platform=x%27y+&q=a+b%26c");
        assert_eq!(query(&p.query.encode()), p.query);
    }

    #[test]
    fn rejects_bad_values_naming_them() {
        for (k, v) in [
            ("severity", "5"),
            ("since", "2y"),
            ("from", "yesterday"),
            ("to", "later"),
            ("before", "x"),
            ("after", "-1"),
            ("n", "501"),
            ("n", "0"),
            ("machine_id", "a\0"),
        ] {
            let q = query(&serde_urlencoded::to_string([(k, v)]).unwrap());
            let err = Params::parse(&q, 0.0).unwrap_err();
            assert!(err.contains(k), "{k}={v}: {err}");
        }
    }

    #[test]
    fn times_parse_in_utc() {
        assert_eq!(parse_time("2026-01-02T03:04", false), Some(1767323040.0));
        assert_eq!(
            parse_time("2026-01-02 03:04:05 UTC", false),
            Some(1767323045.0)
        );
        assert_eq!(parse_time("1767323045", false), Some(1767323045.0));
        assert_eq!(
            Params::parse(&query("since=24h"), 100000.0)
                .unwrap()
                .filter
                .from,
            Some(100000.0 - 86400.0)
        );
        // `since` and `from` together: the later one.
        let p = Params::parse(&query("since=1h&from=1970-01-01"), 100000.0).unwrap();
        assert_eq!(p.filter.from, Some(100000.0 - 3600.0));
    }
}
