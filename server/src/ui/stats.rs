//! The chart pages: `/builds` (records per build), `/stats` (by classification, platform and
//! architecture) and `/overview` (last 24 h / 7 d / 30 d, records per day, top
//! classifications). Builds and stats take the records filters; every bar links to the
//! records it counts.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::cache::{age_note, cached};
use super::chart::{columns, hbars, Bar};
use super::filter::{Field, RecordsQuery};
use super::form;
use super::html::{page, Ctx, UiError};
use super::records::{now, params, Given};
use crate::state::AppState;
use crate::store::ui_queries::{
    breakdown, count_by_build, database_identity, overview as load_overview, Counts,
};

/// Most bars in one chart; the rest is summed into one "(N others)" bar.
const TOP: usize = 30;

/// The `top` bars of `counts`, each linking to the records of `query` with `field` set to its
/// label.
fn bars(ctx: &Ctx, query: &RecordsQuery, field: Field, counts: &Counts, top: usize) -> Vec<Bar> {
    let mut out: Vec<Bar> = counts
        .iter()
        .take(top)
        .map(|(label, value)| Bar {
            label: label.clone(),
            value: *value,
            href: (label != "(none)").then(|| ctx.query("records", &query.with(field, label))),
        })
        .collect();
    if counts.len() > top {
        out.push(Bar {
            label: format!("({} others)", counts.len() - top),
            value: counts[top..].iter().map(|c| c.1).sum(),
            href: None,
        });
    }
    out
}

/// Builds as version numbers where they are numbers: newest (largest) first.
fn build_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => b.cmp(a),
    }
}

pub async fn builds(
    State(state): State<AppState>,
    ctx: Ctx,
    given: Given,
) -> Result<Response, UiError> {
    let p = params(given)?;
    let key = format!(
        "{}|builds|{}",
        database_identity(&state.pool).await?,
        p.query.encode()
    );
    let (pool, filter) = (state.pool.clone(), p.filter.clone());
    let (counts, age) = cached(
        key,
        || async move { count_by_build(&pool, &filter, 60).await },
    )
    .await?;
    let mut counts = counts.as_ref().clone();
    counts.sort_by(|a, b| build_order(&a.0, &b.0));
    let total: i64 = counts.iter().map(|c| c.1).sum();
    let chart = bars(&ctx, &p.query, |q| &mut q.build, &counts, 60);
    let body = html! {
        h1 { "Builds" }
        (form::filters(&p.query, &ctx.href("builds")))
        p {
            "The " (counts.len()) " builds with the most records"
            @if !p.filter.is_empty() { " matching the filters" }
            ", newest build first (" (total) " records)."
        }
        (hbars("builds-chart", "Records per build", &chart))
        (age_note(age))
    };
    Ok(page(&ctx, "Builds", body))
}

pub async fn stats(
    State(state): State<AppState>,
    ctx: Ctx,
    given: Given,
) -> Result<Response, UiError> {
    let p = params(given)?;
    let key = format!(
        "{}|stats|{}",
        database_identity(&state.pool).await?,
        p.query.encode()
    );
    let (pool, filter) = (state.pool.clone(), p.filter.clone());
    let (b, age) = cached(key, || async move { breakdown(&pool, &filter).await }).await?;
    let q = &p.query;
    let body = html! {
        h1 { "Stats" }
        (form::filters(q, &ctx.href("stats")))
        p { (b.total) " records" @if !p.filter.is_empty() { " match the filters" } "." }
        (hbars(
            "classification-chart",
            "Records by classification",
            &bars(&ctx, q, |q| &mut q.classification, &b.classification, TOP)
        ))
        (hbars(
            "platform-chart",
            "Records by platform (host type)",
            &bars(&ctx, q, |q| &mut q.platform, &b.platform, TOP)
        ))
        (hbars(
            "arch-chart",
            "Records by architecture",
            &bars(&ctx, q, |q| &mut q.arch, &b.arch, TOP)
        ))
        (age_note(age))
    };
    Ok(page(&ctx, "Stats", body))
}

pub async fn overview(State(state): State<AppState>, ctx: Ctx) -> Result<Response, UiError> {
    let key = format!("{}|overview", database_identity(&state.pool).await?);
    let pool = state.pool.clone();
    let (o, age) = cached(key, || async move { load_overview(&pool, now(), 10).await }).await?;
    let since = |value: &str| RecordsQuery {
        since: value.into(),
        ..RecordsQuery::default()
    };
    let card = |label: &str, value: &str, n: i64| {
        html! { a.card href=(ctx.query("records", &since(value))) { (label) b { (n) } } }
    };
    let days: Vec<Bar> = o
        .per_day
        .iter()
        .map(|(day, n)| {
            let date = chrono::DateTime::from_timestamp(*day, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            let that_day = RecordsQuery {
                from: date.clone(),
                to: date.clone(),
                ..RecordsQuery::default()
            };
            Bar {
                href: Some(ctx.query("records", &that_day)),
                label: date,
                value: *n,
            }
        })
        .collect();
    let week = since("7d");
    let body = html! {
        h1 { "Overview" }
        p { (o.total) " stored records." }
        div.cards {
            (card("last 24 h", "24h", o.last_24h))
            (card("last 7 days", "7d", o.last_7d))
            (card("last 30 days", "30d", o.last_30d))
        }
        (columns("days-chart", "Records per day, last 30 days (UTC)", &days, 5))
        (hbars(
            "top-chart",
            "Top classifications, last 7 days",
            &bars(&ctx, &week, |q| &mut q.classification, &o.top_classifications, 10)
        ))
        (age_note(age))
    };
    Ok(page(&ctx, "Overview", body))
}
