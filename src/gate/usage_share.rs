//! Shares usage across partitions and instances through Redis, off the hot path: once a second
//! each task publishes its exact per-product usage (with the audit sequence it reflects) and
//! reads the other partitions' totals for the global quota. Redis is never trusted for
//! correctness of per-product quotas; a flushed Redis is detected (missing epoch key) and
//! repopulated by every gate within one interval. If Redis is down, global totals keep their
//! last known value and decisions go on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::task::Task;
use crate::core::state::Usage;

const EVERY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_millis(500);

/// Redis publisher/reader of usage.
pub struct UsageShare {
    client: Option<redis::Client>,
    conn: Option<redis::Connection>,
    prefix: String,
    last: Option<Instant>,
    warned: bool,
    /// Outcome of the last exchange (None: not tried yet).
    ok: Option<bool>,
}

impl UsageShare {
    /// A share on `url` (None disables it) with keys under `bucket:<namespace>:`.
    pub fn new(url: Option<&str>, namespace: &str) -> UsageShare {
        let client = url.and_then(|u| match redis::Client::open(u) {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(error = %e, "redis URL invalid; global quotas use local totals only");
                None
            }
        });
        UsageShare {
            client,
            conn: None,
            prefix: format!("bucket:{namespace}:"),
            last: None,
            warned: false,
            ok: None,
        }
    }

    /// `disabled`, `unknown` (not tried yet), `up` or `down`, for the admin status.
    pub fn state(&self) -> &'static str {
        match (&self.client, self.ok) {
            (None, _) => "disabled",
            (Some(_), None) => "unknown",
            (Some(_), Some(true)) => "up",
            (Some(_), Some(false)) => "down",
        }
    }

    /// Publishes and reads at most once per interval; errors are logged, never returned.
    pub fn tick(&mut self, tasks: &mut HashMap<i32, Task>, partitions: i32) {
        if self.last.is_some_and(|t| t.elapsed() < EVERY) || self.client.is_none() {
            return;
        }
        self.last = Some(Instant::now());
        match self.exchange(tasks, partitions) {
            Ok(()) => {
                self.warned = false;
                self.ok = Some(true);
            }
            Err(e) => {
                self.conn = None;
                self.ok = Some(false);
                if !self.warned {
                    warn!(error = %e, "redis unavailable; global quotas use the last known totals");
                    self.warned = true;
                }
            }
        }
    }

    fn exchange(
        &mut self,
        tasks: &mut HashMap<i32, Task>,
        partitions: i32,
    ) -> Result<(), redis::RedisError> {
        if self.conn.is_none()
            && let Some(c) = &self.client
        {
            let conn = c.get_connection_with_timeout(TIMEOUT)?;
            conn.set_read_timeout(Some(TIMEOUT))?;
            conn.set_write_timeout(Some(TIMEOUT))?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let epoch_key = format!("{}epoch", self.prefix);
        let epoch: bool = redis::cmd("EXISTS").arg(&epoch_key).query(conn)?;
        if !epoch {
            info!("redis has no usage epoch (new or flushed): republishing usage");
            redis::cmd("SET")
                .arg(&epoch_key)
                .arg(crate::produce::now_ms())
                .query::<()>(conn)?;
        }
        let mut pipe = redis::pipe();
        for (p, t) in tasks.iter() {
            let total = t.state.local_total();
            pipe.cmd("HSET")
                .arg(format!("{}partition:{p}", self.prefix))
                .arg("bytes")
                .arg(total.bytes)
                .arg("artifacts")
                .arg(total.artifacts)
                .arg("audit_seq")
                .arg(t.chain.next_seq - 1)
                .arg("updated_ms")
                .arg(crate::produce::now_ms())
                .ignore();
            for (product, u) in t.state.usage_by_product() {
                pipe.cmd("HSET")
                    .arg(format!("{}product:{product}", self.prefix))
                    .arg("bytes")
                    .arg(u.bytes)
                    .arg("artifacts")
                    .arg(u.artifacts)
                    .arg("partition")
                    .arg(*p)
                    .ignore();
            }
        }
        if !tasks.is_empty() {
            // An empty pipeline is an error ("empty command"), not a Redis outage.
            pipe.query::<()>(conn)?;
        }
        let mut by_partition: HashMap<i32, Usage> = HashMap::new();
        for p in 0..partitions {
            let (bytes, artifacts): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
                .arg(format!("{}partition:{p}", self.prefix))
                .arg("bytes")
                .arg("artifacts")
                .query(conn)?;
            by_partition.insert(
                p,
                Usage {
                    bytes: bytes.unwrap_or(0),
                    artifacts: artifacts.unwrap_or(0),
                },
            );
        }
        // Own partitions count with their exact local figures, others as published.
        for (p, t) in tasks.iter_mut() {
            let others =
                by_partition
                    .iter()
                    .filter(|(q, _)| *q != p)
                    .fold(Usage::default(), |a, (_, u)| Usage {
                        bytes: a.bytes + u.bytes,
                        artifacts: a.artifacts + u.artifacts,
                    });
            t.state.set_others(others);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate holding no partition (more instances than partitions) publishes nothing; that
    /// must not read as a Redis outage (an empty pipeline is an "empty command" error).
    #[test]
    fn an_instance_without_partitions_is_not_a_redis_outage() {
        let url =
            std::env::var("BUCKET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut share = UsageShare::new(Some(&url), "unit-test-no-partitions");
        let mut tasks = HashMap::new();
        share.tick(&mut tasks, 2);
        assert!(
            !share.warned,
            "an empty exchange was reported as a Redis outage"
        );
        assert!(share.conn.is_some(), "the connection was dropped");
    }
}
