//! Repeat offenders (T6, docs/origins.md#t6): while an integration cools off, its intents are
//! refused.
//! Whether a rejection starts a cooling-off is decided in `decide` (it needs the outcome).

use crate::core::decide::{Context, Finding};
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let i = ctx.intent;
    if let Some(until) = ctx
        .state
        .offender(&i.integration_id)
        .and_then(|o| o.cooling_until)
        .filter(|until| *until > ctx.now_ms)
    {
        out.push(Finding::new(
            ReasonCode::CoolingOff,
            format!(
                "integration {:?} is cooling off for {} ms more after repeated rejections",
                i.integration_id,
                until - ctx.now_ms
            ),
        ));
    }
}
