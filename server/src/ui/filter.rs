//! The records filters as they travel in a query string: parsed and checked into a
//! [`Filter`] (a bad value is a 400 naming the parameter), echoed back into links and the
//! filter form. Empty parameters mean "no filter" (that is what an empty form field sends).

use chrono::{NaiveDate, NaiveDateTime};

use super::html::{esc, query_string};
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

/// The parameters of a records query, as given (for links) and as checked (for SQL).
/// `Params::default()` is the unfiltered first page at the default page size: a valid query.
#[derive(Debug, Clone)]
pub struct Params {
    /// Filter parameters exactly as sent (name, value), non-empty ones only.
    pub given: Vec<(&'static str, String)>,
    pub filter: Filter,
    pub page: Option<Page>,
    pub limit: i64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            given: Vec::new(),
            filter: Filter::default(),
            page: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Filter parameter names, in form order.
pub const NAMES: &[&str] = &[
    "classification",
    "severity",
    "build",
    "machine_id",
    "system_name",
    "platform",
    "arch",
    "since",
    "from",
    "to",
    "q",
];

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

fn text(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\0') {
        return Err(bad(name, "contains a NUL character"));
    }
    if value.chars().count() > 300 {
        return Err(bad(name, "longer than 300 characters"));
    }
    Ok(value.to_string())
}

fn id(name: &str, value: &str) -> Result<i32, String> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| bad(name, "expected a record id"))
}

impl Params {
    /// Checks query-string pairs; unknown parameters are ignored. `now` is unix seconds.
    pub fn parse(pairs: &[(String, String)], now: f64) -> Result<Self, String> {
        let mut p = Params::default();
        for (key, value) in pairs {
            if value.trim().is_empty() {
                continue;
            }
            let f = &mut p.filter;
            let name = match NAMES.iter().find(|n| **n == key) {
                Some(name) => *name,
                None => {
                    match key.as_str() {
                        "before" => p.page = Some(Page::Before(id(key, value)?)),
                        "after" => p.page = Some(Page::After(id(key, value)?)),
                        "n" => {
                            p.limit = value
                                .trim()
                                .parse()
                                .ok()
                                .filter(|n| (1..=MAX_LIMIT).contains(n))
                                .ok_or_else(|| bad(key, "expected 1 to 500"))?
                        }
                        _ => {}
                    }
                    continue;
                }
            };
            match name {
                "classification" => {
                    f.classification = Some(Classification::pattern(&text(name, value.trim())?))
                }
                "severity" => {
                    f.severity = Some(
                        value
                            .trim()
                            .parse()
                            .ok()
                            .filter(|n| (1..=4).contains(n))
                            .ok_or_else(|| bad(name, "expected 1 to 4"))?,
                    )
                }
                "build" => f.build = Some(text(name, value.trim())?),
                "machine_id" => f.machine_id = Some(text(name, value.trim())?),
                "system_name" => f.system_name = Some(text(name, value.trim())?),
                "platform" => f.platform = Some(text(name, value.trim())?),
                "arch" => f.arch = Some(text(name, value.trim())?),
                "since" => {
                    let secs = SINCE
                        .iter()
                        .find(|s| s.0 == value.trim())
                        .ok_or_else(|| bad(name, "expected 1h, 24h, 7d or 30d"))?
                        .2;
                    let from = now - secs as f64;
                    f.from = Some(f.from.map_or(from, |old: f64| old.max(from)));
                }
                "from" => {
                    let t = parse_time(value, false)
                        .ok_or_else(|| bad(name, "expected YYYY-MM-DD[ HH:MM[:SS]] (UTC)"))?;
                    f.from = Some(f.from.map_or(t, |old: f64| old.max(t)));
                }
                "to" => {
                    f.to = Some(
                        parse_time(value, true)
                            .ok_or_else(|| bad(name, "expected YYYY-MM-DD[ HH:MM[:SS]] (UTC)"))?,
                    )
                }
                _ => f.text = Some(text(name, value)?),
            }
            p.given.push((name, value.clone()));
        }
        Ok(p)
    }

    /// The value given for `name`, or "".
    pub fn value(&self, name: &str) -> &str {
        self.given
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The filters (and page size, when not the default) plus `extra`, as a query string.
    pub fn link(&self, extra: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = self.given.clone();
        if self.limit != DEFAULT_LIMIT {
            pairs.push(("n", self.limit.to_string()));
        }
        pairs.extend(extra.iter().cloned());
        query_string(&pairs)
    }

    /// The filters form (GET to `action`, a link already escaped).
    pub fn form(&self, action: &str) -> String {
        let input = |name: &str, label: &str, size: usize, placeholder: &str| {
            format!(
                "<label>{label}<input name=\"{name}\" size=\"{size}\" value=\"{}\" \
                 placeholder=\"{}\"></label>",
                esc(self.value(name)),
                esc(placeholder)
            )
        };
        let select = |name: &str, label: &str, options: &[(&str, &str)]| {
            let current = self.value(name);
            let opts: String = options
                .iter()
                .map(|(v, l)| {
                    let sel = if *v == current { " selected" } else { "" };
                    format!("<option value=\"{v}\"{sel}>{l}</option>")
                })
                .collect();
            format!("<label>{label}<select name=\"{name}\">{opts}</select></label>")
        };
        let mut since: Vec<(&str, &str)> = vec![("", "any time")];
        since.extend(SINCE.iter().map(|(v, l, _)| (*v, *l)));
        format!(
            "<form class=\"filters\" method=\"get\" action=\"{action}\">{}{}{}{}{}{}{}{}{}{}{}\
             <button type=\"submit\">Filter</button> <a href=\"{action}\">clear</a></form>",
            input("classification", "classification", 28, "domain/probe/*"),
            select(
                "severity",
                "severity",
                &[("", "any"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")]
            ),
            input("build", "build", 8, ""),
            input("machine_id", "machine id", 20, ""),
            input("system_name", "system name", 14, ""),
            input("platform", "platform", 14, ""),
            input("arch", "arch", 7, ""),
            select("since", "received", &since),
            input("from", "from (UTC)", 16, "YYYY-MM-DD HH:MM"),
            input("to", "to (UTC)", 16, "YYYY-MM-DD HH:MM"),
            input("q", "payload contains", 20, ""),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_filters_and_skips_empty_fields() {
        let p = Params::parse(
            &pairs(&[
                ("classification", "org/probe/*"),
                ("severity", "3"),
                ("build", ""),
                ("from", "2026-01-02"),
                ("to", "2026-01-02"),
                ("q", "oops"),
                ("before", "77"),
                ("n", "20"),
            ]),
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
        assert_eq!(
            p.link(&[("after", "5".into())]),
            "classification=org%2Fprobe%2F%2A&severity=3&from=2026-01-02&to=2026-01-02&q=oops&n=20&after=5"
        );
    }

    /// Links built from the defaults (the records table's per-row filter links) must parse
    /// back to the same query: the default page size is valid and not repeated in the link.
    #[test]
    fn default_params_make_valid_links() {
        let link = Params::default().link(&[("build", "31870".into())]);
        assert_eq!(link, "build=31870");
        let pairs: Vec<(String, String)> = link
            .split('&')
            .map(|kv| kv.split_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = Params::parse(&pairs, 0.0).unwrap();
        assert_eq!(p.limit, DEFAULT_LIMIT);
        assert_eq!(p.filter.build.as_deref(), Some("31870"));
        assert_eq!(
            Params::parse(&[], 0.0).unwrap().limit,
            Params::default().limit
        );
    }

    #[test]
    fn rejects_bad_values_naming_them() {
        for (k, v) in [
            ("severity", "5"),
            ("since", "2y"),
            ("from", "yesterday"),
            ("before", "x"),
            ("n", "501"),
            ("machine_id", "a\0"),
        ] {
            let err = Params::parse(&pairs(&[(k, v)]), 0.0).unwrap_err();
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
            Params::parse(&pairs(&[("since", "24h")]), 100000.0)
                .unwrap()
                .filter
                .from,
            Some(100000.0 - 86400.0)
        );
    }
}
