//! Per-product rate limits (T6, docs/origins.md#t6): GCRA over the decision clock. The arrival
//! time lives in the partition state, so the decision stays a pure function of (intent, state,
//! policy, time) and products homed on the same partition never slow one another down.

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

/// GCRA step: the new theoretical arrival time (µs) if an intent at `now_ms` conforms to
/// `rate_per_sec` with `burst`, else how long to wait (ms).
pub fn gcra(tat_us: i64, now_ms: i64, rate_per_sec: u32, burst: u32) -> Result<i64, i64> {
    let now_us = now_ms.saturating_mul(1000);
    let emission = 1_000_000 / i64::from(rate_per_sec.max(1));
    let tolerance = emission.saturating_mul(i64::from(burst));
    let earliest = tat_us.saturating_sub(tolerance);
    if now_us < earliest {
        return Err((earliest - now_us + 999) / 1000);
    }
    Ok(tat_us.max(now_us) + emission)
}

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    let Some(product) = ctx.policy.products.get(&i.product_id) else {
        return;
    };
    if let Err(wait_ms) = gcra(
        ctx.state.rate_tat(&i.product_id),
        ctx.now_ms,
        product.rate_per_sec,
        product.burst,
    ) {
        out.push(Finding::new(
            ReasonCode::RateLimited,
            format!(
                "product {:?} is over {} intents/s (burst {}); retry after {wait_ms} ms",
                i.product_id, product.rate_per_sec, product.burst
            ),
        ));
    }
}

/// The retry-after delay (ms) stated in a RATE_LIMITED detail, for the rejected-record header.
pub fn retry_after_ms(detail: &str) -> Option<i64> {
    detail
        .rsplit("retry after ")
        .next()?
        .strip_suffix(" ms")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        // 10/s with burst 5: 6 at once conform (burst + 1), the 7th waits 100 ms.
        let mut tat = 0;
        for n in 0..6 {
            tat = gcra(tat, 1_000, 10, 5).unwrap_or_else(|w| panic!("#{n} waited {w}"));
        }
        assert_eq!(gcra(tat, 1_000, 10, 5), Err(100));
        assert!(gcra(tat, 1_100, 10, 5).is_ok());
    }

    #[test]
    fn retry_after_is_parsed_back() {
        assert_eq!(
            retry_after_ms("x over 5 intents/s (burst 1); retry after 42 ms"),
            Some(42)
        );
    }
}
