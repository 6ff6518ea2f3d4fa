//! Retention purge as upstream: records whose classification matches a configured glob keep
//! that many days (the shortest if several match; 0 = keep forever); every other record keeps
//! `retention_max_days` (0 = keep forever). The plan is pure data; [`purge`] runs it.

use deadpool_postgres::Pool;

use super::StoreError;

/// One DELETE (or, in a dry run, COUNT) of the purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRule {
    /// What the rule covers, for logs and `purge --dry-run` (e.g. `org.clearlinux/hello/*`).
    pub label: String,
    pub days: u32,
    /// LIKE patterns the classification must match (one) or, for the global rule, must not
    /// match (all of them).
    pub patterns: Vec<String>,
    pub global: bool,
}

/// What a purge removed (or would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSummary {
    pub label: String,
    pub days: u32,
    pub records: u64,
}

/// Translates a glob (`*` any run, `?` one character) into a LIKE pattern with `\` escapes.
pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The rules for the configured retention, in execution order.
pub fn retention_plan(max_days: u32, classifications: &[(String, u32)]) -> Vec<PurgeRule> {
    let mut rules: Vec<PurgeRule> = classifications
        .iter()
        .filter(|(_, days)| *days > 0)
        .map(|(glob, days)| PurgeRule {
            label: glob.clone(),
            days: *days,
            patterns: vec![glob_to_like(glob)],
            global: false,
        })
        .collect();
    if max_days > 0 {
        rules.push(PurgeRule {
            label: "(all other classifications)".to_string(),
            days: max_days,
            patterns: classifications
                .iter()
                .map(|(g, _)| glob_to_like(g))
                .collect(),
            global: true,
        });
    }
    rules
}

impl PurgeRule {
    /// The WHERE clause: `$1` is the age in seconds, `$2` the LIKE patterns.
    fn where_sql(&self) -> &'static str {
        if self.global {
            "timestamp_server < extract(epoch FROM now()) - $1::int8
             AND NOT (classification LIKE ANY ($2::text[]))"
        } else {
            "timestamp_server < extract(epoch FROM now()) - $1::int8
             AND classification LIKE ANY ($2::text[])"
        }
    }
}

/// Runs the plan in one transaction; with `dry_run` only counts.
pub async fn purge(
    pool: &Pool,
    rules: &[PurgeRule],
    dry_run: bool,
) -> Result<Vec<PurgeSummary>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut out = Vec::new();
    for rule in rules {
        let age = i64::from(rule.days) * 86_400;
        let records = if dry_run {
            let sql = format!("SELECT count(*) FROM records WHERE {}", rule.where_sql());
            let n: i64 = tx.query_one(&sql, &[&age, &rule.patterns]).await?.get(0);
            n as u64
        } else {
            let sql = format!("DELETE FROM records WHERE {}", rule.where_sql());
            tx.execute(&sql, &[&age, &rule.patterns]).await?
        };
        out.push(PurgeSummary {
            label: rule.label.clone(),
            days: rule.days,
            records,
        });
    }
    tx.commit().await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_like_patterns() {
        assert_eq!(
            glob_to_like("org.clearlinux/hello/*"),
            "org.clearlinux/hello/%"
        );
        assert_eq!(glob_to_like("a_b/c%d/?"), "a\\_b/c\\%d/_");
        assert_eq!(glob_to_like("x\\y"), "x\\\\y");
    }

    #[test]
    fn plan_has_one_rule_per_class_and_a_global_rest() {
        let classes = vec![("a/*".to_string(), 7), ("keep/*".to_string(), 0)];
        let plan = retention_plan(35, &classes);
        assert_eq!(plan.len(), 2);
        assert_eq!(
            (plan[0].label.as_str(), plan[0].days, plan[0].global),
            ("a/*", 7, false)
        );
        assert!(plan[1].global);
        assert_eq!(
            plan[1].patterns,
            vec!["a/%", "keep/%"],
            "classified records are excluded"
        );
    }

    #[test]
    fn zero_max_days_keeps_the_rest() {
        assert!(retention_plan(0, &[]).is_empty());
        assert_eq!(retention_plan(0, &[("a/b/c".into(), 3)]).len(), 1);
    }
}
