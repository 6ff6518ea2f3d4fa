//! Where a records filter becomes SQL, for every reader: the query API (`GET /api/records`,
//! [`super::query`]), the web UI's list, CSV and charts ([`super::ui_queries`]) and the chart
//! counts ([`super::rollup`]). Each surface parses its own query-string language into one
//! checked [`Filter`]; [`Filter::sql`] turns it into conditions whose values reach PostgreSQL
//! as bind parameters, numbered by [`Binds`] in the order they are bound.

use tokio_postgres::types::ToSql;

use super::retention::glob_to_like;

/// One bind parameter of a statement.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A statement's bind parameters: each [`Binds::bind`] adds one and returns its placeholder,
/// so conditions built in several steps (a filter, then a keyset position, then a limit) are
/// numbered without counting by hand.
#[derive(Default)]
pub(crate) struct Binds(Vec<Param>);

impl Binds {
    /// Adds `value` and returns its placeholder (`$1`, `$2`, ...).
    pub fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    /// The parameters as `tokio_postgres` takes them.
    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        refs(&self.0)
    }
}

/// How a classification filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// This classification exactly (the query API's `classification`).
    Exact(String),
    /// A glob with `*` and `?` (`org.clearlinux/crash/*`), matched with LIKE.
    Glob(String),
}

impl Classification {
    /// The web UI's rule: a glob when `s` holds `*` or `?`, else exact.
    pub fn pattern(s: &str) -> Self {
        if s.contains(['*', '?']) {
            Classification::Glob(s.to_string())
        } else {
            Classification::Exact(s.to_string())
        }
    }
}

/// Checked filters on records; `None` is "any". `Filter::default()` selects every record.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub classification: Option<Classification>,
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
    /// Received within this many seconds before the database's clock (the query API's
    /// `created_in_days`/`created_in_sec`, as upstream computed them).
    pub within_secs: Option<i64>,
    /// Case-insensitive substring of the payload.
    pub text: Option<String>,
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

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// SQL conditions (to be joined with AND), their values bound in `binds`.
    pub(crate) fn sql(&self, binds: &mut Binds) -> Vec<String> {
        let mut conditions = Vec::new();
        let mut push = |template: &str, placeholder: String| {
            conditions.push(template.replace('?', &placeholder));
        };
        match &self.classification {
            Some(Classification::Exact(c)) => push("classification = ?", binds.bind(c.clone())),
            Some(Classification::Glob(g)) => {
                push("classification LIKE ?", binds.bind(glob_to_like(g)))
            }
            None => {}
        }
        if let Some(v) = self.severity {
            push("severity = ?", binds.bind(v));
        }
        let equal = [
            ("build", &self.build),
            ("machine_id", &self.machine_id),
            ("system_name", &self.system_name),
            ("host_type", &self.platform),
            ("architecture", &self.arch),
        ];
        for (column, value) in equal {
            if let Some(v) = value {
                push(&format!("{column} = ?"), binds.bind(v.clone()));
            }
        }
        if let Some(v) = self.from {
            push("timestamp_server >= ?::float8::numeric", binds.bind(v));
        }
        if let Some(v) = self.to {
            push("timestamp_server < ?::float8::numeric", binds.bind(v));
        }
        if let Some(v) = self.within_secs {
            push(
                "timestamp_server >= extract(epoch FROM now()) - ?::int8",
                binds.bind(v),
            );
        }
        if let Some(v) = &self.text {
            push("payload ILIKE '%' || ? || '%'", binds.bind(like_literal(v)));
        }
        conditions
    }

    /// SQL conditions numbered from `$1`, and their parameters (for callers that number
    /// further parameters themselves).
    pub(crate) fn conditions(&self) -> (Vec<String>, Vec<Param>) {
        let mut binds = Binds::default();
        let conditions = self.sql(&mut binds);
        (conditions, binds.0)
    }
}

/// ` WHERE a AND b`, or nothing for no conditions.
pub(crate) fn where_sql(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

pub(crate) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as _).collect()
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
        assert_eq!(like_literal("100%_x\\"), "100\\%\\_x\\\\");
    }

    #[test]
    fn conditions_number_their_parameters() {
        let f = Filter {
            classification: Some(Classification::pattern("a/b/*")),
            severity: Some(3),
            platform: Some("p".into()),
            text: Some("50%".into()),
            ..Filter::default()
        };
        let (conditions, params) = f.conditions();
        assert_eq!(
            conditions,
            [
                "classification LIKE $1",
                "severity = $2",
                "host_type = $3",
                "payload ILIKE '%' || $4 || '%'"
            ]
        );
        assert_eq!(params.len(), 4);
        let exact = Filter {
            classification: Some(Classification::pattern("a/b/c")),
            ..Filter::default()
        };
        assert_eq!(exact.conditions().0, ["classification = $1"]);
        // The query API's classification is exact even with glob characters.
        let literal = Filter {
            classification: Some(Classification::Exact("a/b/*".into())),
            ..Filter::default()
        };
        assert_eq!(literal.conditions().0, ["classification = $1"]);
    }

    #[test]
    fn binds_continue_the_numbering() {
        let f = Filter {
            build: Some("1".into()),
            within_secs: Some(60),
            ..Filter::default()
        };
        let mut binds = Binds::default();
        let mut conditions = f.sql(&mut binds);
        conditions.push(format!("id < {}", binds.bind(9)));
        assert_eq!(
            where_sql(&conditions),
            " WHERE build = $1 AND timestamp_server >= extract(epoch FROM now()) - $2::int8 \
             AND id < $3"
        );
        assert_eq!(binds.refs().len(), 3);
        assert_eq!(where_sql(&[]), "");
    }
}
