//! A short-lived in-process cache for the chart pages' aggregates. On a big table (1,000,000
//! records on 2 cores) a full aggregate takes 1–2 s; counts a minute old are fine for charts.
//! An entry younger than [`FRESH`] is served as is; an older one (up to [`STALE`]) is served
//! while one background task recomputes it, so only the very first request waits.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use maud::{html, Markup};

use crate::store::StoreError;

pub const FRESH: Duration = Duration::from_secs(60);
pub const STALE: Duration = Duration::from_secs(600);
/// Entries kept at most (distinct filter combinations); the oldest go first.
const MAX_ENTRIES: usize = 256;

struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    at: Instant,
    refreshing: bool,
}

fn entries() -> &'static Mutex<HashMap<String, Entry>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn store(key: String, value: Arc<dyn Any + Send + Sync>) {
    let mut map = entries().lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_ENTRIES {
        if let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| k.clone()) {
            map.remove(&oldest);
        }
    }
    map.insert(
        key,
        Entry {
            value,
            at: Instant::now(),
            refreshing: false,
        },
    );
}

/// The value for `key` (which must name the database and everything the value depends on),
/// and how old it is; computed by `load` when missing or too old.
pub async fn cached<T, F, Fut>(key: String, load: F) -> Result<(Arc<T>, Duration), StoreError>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
{
    let hit = {
        let mut map = entries().lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&key) {
            Some(e) if e.at.elapsed() < STALE => {
                let refresh = e.at.elapsed() >= FRESH && !e.refreshing;
                e.refreshing |= refresh;
                Some((e.value.clone(), e.at.elapsed(), refresh))
            }
            _ => None,
        }
    };
    if let Some((value, age, refresh)) = hit {
        if let Ok(value) = value.downcast::<T>() {
            if refresh {
                let job = load();
                let key = key.clone();
                tokio::spawn(async move {
                    match job.await {
                        Ok(v) => store(key, Arc::new(v)),
                        Err(e) => {
                            tracing::warn!(error = %e, "refreshing a UI aggregate failed");
                            let mut map = entries().lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(entry) = map.get_mut(&key) {
                                entry.refreshing = false;
                            }
                        }
                    }
                });
            }
            return Ok((value, age));
        }
    }
    let value = Arc::new(load().await?);
    store(key, value.clone());
    Ok((value, Duration::ZERO))
}

/// "as of N s ago" for a page footer, or nothing for a fresh value.
pub fn age_note(age: Duration) -> Markup {
    html! {
        @if age.as_secs() >= 1 {
            p { small { "Counts as of " (age.as_secs()) " s ago (refreshed every "
                (FRESH.as_secs()) " s)." } }
        }
    }
}
