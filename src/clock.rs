//! The shell's one wall clock. The decision core never reads it: the shell passes the time in
//! (`decide(…, now_ms)`), so decisions stay a pure function of their inputs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_is_after_this_code_was_written() {
        assert!(super::now_ms() > 1_764_000_000_000);
    }
}
