//! Reading a record's body under two bounds: `body_limit_bytes` per body (413 above it) and
//! `body_budget_bytes` for all bodies in flight together. The first [`SMALL_BODY_BYTES`] of
//! every body are outside the budget (their total is bounded by the number of record requests
//! in flight), so a record the real client sends never waits for it; the rest of a larger
//! body is reserved from the budget at once (its declared length, before any of it is read;
//! for a chunked body the limit, once it outgrows the small part), before the buffer grows. When the budget is spent, a body waits at most
//! [`BUDGET_WAIT`] for it, then gets 503: its bytes stay in the kernel's socket buffer, not in
//! the collector. The reservation is returned when the request is answered.

use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::sync::OwnedSemaphorePermit;

pub use crate::config::SMALL_BODY_BYTES;
pub use crate::state::BodyBudget;

/// How long a body may wait for room in the budget before it gets 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(1);

pub enum BodyError {
    TooLarge,
    /// The connection failed mid-body (the client hung up or sent a broken chunk).
    Broken,
    /// No room in the body budget in time.
    Overloaded,
}

/// A received body and its share of the budget (returned when dropped).
pub struct Received {
    pub bytes: Bytes,
    pub reservation: Option<OwnedSemaphorePermit>,
}

/// The whole body, at most `limit` bytes, copied into one buffer as it arrives. Keeping the
/// received chunks instead (as `axum::body::to_bytes` does) would keep alive the connection's
/// whole read buffer (8 KiB and more) for every chunk, so a client trickling one byte at a time
/// would make the collector hold ~8 KiB per byte sent (measured: ~600 KiB per slow client).
/// The buffer never grows by doubling past [`SMALL_BODY_BYTES`]: it is sized to what the
/// budget reserved.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
    budget: &BodyBudget,
) -> Result<Received, BodyError> {
    let small = SMALL_BODY_BYTES.min(limit);
    let mut reservation = None;
    let mut buf = match declared {
        // A declared large body waits for its share before a byte of it is read: while it
        // waits, the collector holds nothing for it.
        Some(total) if total > small => {
            reservation = Some(
                budget
                    .reserve(total - small, BUDGET_WAIT)
                    .await
                    .ok_or(BodyError::Overloaded)?,
            );
            Vec::with_capacity(total)
        }
        Some(total) => Vec::with_capacity(total),
        None => Vec::new(),
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let needed = buf.len() + data.len();
        if needed > limit {
            return Err(BodyError::TooLarge);
        }
        if needed > buf.capacity() {
            if needed <= small {
                buf.reserve_exact(needed.max(buf.capacity() * 2).min(small) - buf.len());
            } else {
                // Past the small part: reserve the rest of the body from the budget once.
                debug_assert!(reservation.is_none(), "a reserved body never outgrows it");
                let total = declared.unwrap_or(limit).clamp(needed, limit);
                reservation = Some(
                    budget
                        .reserve(total - small, BUDGET_WAIT)
                        .await
                        .ok_or(BodyError::Overloaded)?,
                );
                buf.reserve_exact(total - buf.len());
            }
        }
        buf.extend_from_slice(&data);
    }
    Ok(Received {
        bytes: Bytes::from(buf),
        reservation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(len: usize) -> Body {
        Body::from(vec![b'x'; len])
    }

    #[tokio::test]
    async fn small_bodies_do_not_touch_the_budget() {
        let budget = BodyBudget::new(0);
        let r = read_body(body_of(SMALL_BODY_BYTES), 1 << 20, None, &budget)
            .await
            .ok()
            .unwrap();
        assert_eq!(r.bytes.len(), SMALL_BODY_BYTES);
        assert!(r.reservation.is_none());
    }

    #[tokio::test]
    async fn large_bodies_reserve_and_return_their_share() {
        let budget = BodyBudget::new(300_000);
        let len = 200_000;
        let r = read_body(body_of(len), 307_200, Some(len), &budget)
            .await
            .ok()
            .unwrap();
        assert_eq!(r.bytes.len(), len);
        assert_eq!(budget.available(), 300_000 - (len - SMALL_BODY_BYTES));
        // A second such body finds no room and gives up after BUDGET_WAIT.
        let started = std::time::Instant::now();
        let second = read_body(body_of(len), 307_200, Some(len), &budget).await;
        assert!(matches!(second, Err(BodyError::Overloaded)));
        assert!(started.elapsed() >= BUDGET_WAIT);
        drop(r);
        assert_eq!(budget.available(), 300_000);
        let third = read_body(body_of(len), 307_200, None, &budget)
            .await
            .ok()
            .unwrap();
        // A chunked body (no declared length) reserves up to the limit.
        assert_eq!(budget.available(), 300_000 - (307_200 - SMALL_BODY_BYTES));
        drop(third);
        assert_eq!(budget.available(), 300_000);
    }
}
