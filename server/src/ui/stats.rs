//! The chart pages: `/builds` (records per build), `/stats` (by classification, platform and
//! architecture) and `/overview` (last 24 h / 7 d / 30 d, records per day, top
//! classifications). Builds and stats take the records filters; every bar links to the
//! records it counts.

use axum::extract::State;
use axum::response::Response;

use super::cache::{age_note, cached};
use super::chart::{columns, hbars, Bar};
use super::filter::Params;
use super::html::{page, Ctx, UiError};
use super::records::{now, params, Pairs};
use crate::state::AppState;
use crate::store::ui_queries::{
    breakdown, count_by_build, database_identity, overview as load_overview, Counts,
};

/// Most bars in one chart; the rest is summed into one "(N others)" bar.
const TOP: usize = 30;

fn bars(ctx: &Ctx, p: &Params, key: &'static str, counts: &Counts, top: usize) -> Vec<Bar> {
    let mut out: Vec<Bar> = counts
        .iter()
        .take(top)
        .map(|(label, value)| Bar {
            label: label.clone(),
            value: *value,
            href: (label != "(none)")
                .then(|| ctx.href(&format!("records?{}", p.link(&[(key, label.clone())])))),
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
    pairs: Pairs,
) -> Result<Response, UiError> {
    let p = params(pairs)?;
    let key = format!(
        "{}|builds|{}",
        database_identity(&state.pool).await?,
        p.link(&[])
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
    let body = format!(
        "<h1>Builds</h1>{}<p>The {} builds with the most records{}, newest build first \
         ({total} records).</p>{}{}",
        p.form(&ctx.href("builds")),
        counts.len(),
        if p.filter.is_empty() {
            ""
        } else {
            " matching the filters"
        },
        hbars(
            "builds-chart",
            "Records per build",
            &bars(&ctx, &p, "build", &counts, 60)
        ),
        age_note(age),
    );
    Ok(page(&ctx, "Builds", &body))
}

pub async fn stats(
    State(state): State<AppState>,
    ctx: Ctx,
    pairs: Pairs,
) -> Result<Response, UiError> {
    let p = params(pairs)?;
    let key = format!(
        "{}|stats|{}",
        database_identity(&state.pool).await?,
        p.link(&[])
    );
    let (pool, filter) = (state.pool.clone(), p.filter.clone());
    let (b, age) = cached(key, || async move { breakdown(&pool, &filter).await }).await?;
    let body = format!(
        "<h1>Stats</h1>{}<p>{} records{}.</p>{}{}{}{}",
        p.form(&ctx.href("stats")),
        b.total,
        if p.filter.is_empty() {
            ""
        } else {
            " match the filters"
        },
        hbars(
            "classification-chart",
            "Records by classification",
            &bars(&ctx, &p, "classification", &b.classification, TOP)
        ),
        hbars(
            "platform-chart",
            "Records by platform (host type)",
            &bars(&ctx, &p, "platform", &b.platform, TOP)
        ),
        hbars(
            "arch-chart",
            "Records by architecture",
            &bars(&ctx, &p, "arch", &b.arch, TOP)
        ),
        age_note(age),
    );
    Ok(page(&ctx, "Stats", &body))
}

pub async fn overview(State(state): State<AppState>, ctx: Ctx) -> Result<Response, UiError> {
    let now = now();
    let key = format!("{}|overview", database_identity(&state.pool).await?);
    let pool = state.pool.clone();
    let (o, age) = cached(key, || async move {
        load_overview(&pool, super::records::now(), 10).await
    })
    .await?;
    let card = |label: &str, since: &str, n: i64| {
        format!(
            "<a class=\"card\" href=\"{}\">{label}<b>{n}</b></a>",
            ctx.href(&format!("records?since={since}"))
        )
    };
    let days: Vec<Bar> = o
        .per_day
        .iter()
        .map(|(day, n)| {
            let date = chrono::DateTime::from_timestamp(*day, 0)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            Bar {
                href: Some(ctx.href(&format!(
                    "records?from={date}&to={date}",
                    date = super::html::enc(&date)
                ))),
                label: date,
                value: *n,
            }
        })
        .collect();
    let week = Params::parse(&[("since".into(), "7d".into())], now).map_err(UiError::BadRequest)?;
    let body = format!(
        "<h1>Overview</h1><p>{} stored records.</p><div class=\"cards\">{}{}{}</div>{}{}{}",
        o.total,
        card("last 24 h", "24h", o.last_24h),
        card("last 7 days", "7d", o.last_7d),
        card("last 30 days", "30d", o.last_30d),
        columns(
            "days-chart",
            "Records per day, last 30 days (UTC)",
            &days,
            5
        ),
        hbars(
            "top-chart",
            "Top classifications, last 7 days",
            &bars(&ctx, &week, "classification", &o.top_classifications, 10)
        ),
        age_note(age),
    );
    Ok(page(&ctx, "Overview", &body))
}
