//! Shares usage across partitions and instances through Redis, off the hot path: once a second
//! each task publishes its per-product usage as of its last committed transaction (with the
//! audit sequence it reflects; a later sequence in Redis is never overwritten) and reads the
//! other partitions' totals for the global quota. Redis is never trusted for
//! correctness of per-product quotas; a flushed Redis is detected (missing epoch key) and
//! repopulated by every gate within one interval. If Redis is down, global totals keep their
//! last known value and decisions go on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::task::Task;
use crate::core::state::Usage;

const EVERY: Duration = Duration::from_secs(1);

/// Writes one partition's committed usage and its products' usage, unless Redis already holds
/// a later audit sequence for that partition: a slow or fenced former owner never overwrites
/// what the current owner published. KEYS: the partition hash, then one hash per product.
/// ARGV: audit_seq, bytes, artifacts, updated_ms, partition, then (bytes, artifacts) per product.
static PUBLISH: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local held = tonumber(redis.call('HGET', KEYS[1], 'audit_seq') or '-2')
if held > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'bytes', ARGV[2], 'artifacts', ARGV[3], 'audit_seq', ARGV[1],
  'updated_ms', ARGV[4])
for i = 2, #KEYS do
  local j = 6 + (i - 2) * 2
  redis.call('HSET', KEYS[i], 'bytes', ARGV[j], 'artifacts', ARGV[j + 1], 'partition', ARGV[5])
end
return 1
",
    )
});
const TIMEOUT: Duration = Duration::from_millis(500);

/// Where and how the gate reaches Redis: its URL (`redis://` or `rediss://` for TLS, optionally
/// with a user name), the password resolved from its reference, and the CA that verifies the
/// server's certificate (the system roots when absent). Kept apart from the URL so that no
/// secret has to sit in a URL or in the environment.
#[derive(Clone, Default)]
pub struct RedisTarget {
    /// `redis://[user@]host:port` or `rediss://[user@]host:port`.
    pub url: String,
    /// The password (overrides one in the URL).
    pub password: Option<String>,
    /// PEM CA certificate(s) for `rediss://`.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

impl RedisTarget {
    /// A client for this target: TLS verified against `ca_pem` for `rediss://`.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        use redis::IntoConnectionInfo;
        let mut info = self.url.as_str().into_connection_info()?;
        if let Some(password) = &self.password {
            let settings = info.redis_settings().clone().set_password(password.clone());
            info = info.set_redis_settings(settings);
        }
        match &self.ca_pem {
            Some(ca) if self.url.starts_with("rediss://") => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            _ => redis::Client::open(info),
        }
    }
}

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
    /// A share on `target` (None disables it) with keys under `bucket:<namespace>:`.
    pub fn new(target: Option<&RedisTarget>, namespace: &str) -> UsageShare {
        let client = target.and_then(|t| match t.client() {
            Ok(c) => Some(c),
            Err(e) => {
                warn!(error = %e, "redis settings invalid; global quotas use local totals only");
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

    /// Publishes and reads at most once per interval, for `tasks` (the partitions held here);
    /// errors are logged, never returned.
    pub fn tick<'a>(
        &mut self,
        tasks: impl IntoIterator<Item = (&'a i32, &'a mut Task)>,
        partitions: i32,
    ) {
        if self.last.is_some_and(|t| t.elapsed() < EVERY) || self.client.is_none() {
            return;
        }
        self.last = Some(Instant::now());
        let mut tasks: Vec<(&i32, &mut Task)> = tasks.into_iter().collect();
        match self.exchange(&mut tasks, partitions) {
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
        tasks: &mut [(&i32, &mut Task)],
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
                .arg(crate::clock::now_ms())
                .query::<()>(conn)?;
        }
        for (p, t) in tasks.iter() {
            let Some(c) = &t.committed else { continue };
            let mut publish = PUBLISH.prepare_invoke();
            publish
                .key(format!("{}partition:{p}", self.prefix))
                .arg(c.audit_seq)
                .arg(c.total.bytes)
                .arg(c.total.artifacts)
                .arg(crate::clock::now_ms())
                .arg(*p);
            for (product, u) in &c.by_product {
                publish
                    .key(format!("{}product:{product}", self.prefix))
                    .arg(u.bytes)
                    .arg(u.artifacts);
            }
            let written: i64 = publish.invoke(conn)?;
            if written == 0 {
                debug!(
                    partition = p,
                    audit_seq = c.audit_seq,
                    "redis holds newer usage for this partition (another owner); not overwritten"
                );
            }
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
            let others = by_partition.iter().filter(|(q, _)| *q != *p).fold(
                Usage::default(),
                |a, (_, u)| Usage {
                    bytes: a.bytes + u.bytes,
                    artifacts: a.artifacts + u.artifacts,
                },
            );
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
        let mut share = UsageShare::new(Some(&target(&url)), "unit-test-no-partitions");
        let mut tasks = HashMap::new();
        share.tick(&mut tasks, 2);
        assert!(
            !share.warned,
            "an empty exchange was reported as a Redis outage"
        );
        assert!(share.conn.is_some(), "the connection was dropped");
    }

    fn target(url: &str) -> RedisTarget {
        RedisTarget {
            url: url.to_string(),
            ..RedisTarget::default()
        }
    }

    /// Redis shows committed usage only (an open transaction may abort), and a former owner
    /// with an older committed sequence does not overwrite the current owner's figures.
    #[test]
    fn only_committed_usage_is_published_and_the_later_sequence_wins() {
        let url =
            std::env::var("BUCKET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let ns = format!("unit-test-committed-{}", std::process::id());
        let read = |key: &str| -> (Option<u64>, Option<u64>) {
            let mut con = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .expect("redis for the test");
            redis::cmd("HMGET")
                .arg(format!("bucket:{ns}:{key}"))
                .arg("bytes")
                .arg("artifacts")
                .query(&mut con)
                .expect("HMGET")
        };
        let mut owner = Task::default();
        owner.state.add_usage("p1", 100, 1);
        owner.chain.next_seq = 11;
        owner.mark_committed();
        owner.state.add_usage("p1", 50, 1); // decided in the open transaction
        let mut tasks = HashMap::from([(0, owner)]);
        UsageShare::new(Some(&target(&url)), &ns).tick(&mut tasks, 1);
        assert_eq!(read("partition:0"), (Some(100), Some(1)));
        assert_eq!(read("product:p1"), (Some(100), Some(1)));

        let mut former = Task::default();
        former.state.add_usage("p1", 7, 1);
        former.chain.next_seq = 5;
        former.mark_committed();
        let mut stale = HashMap::from([(0, former)]);
        UsageShare::new(Some(&target(&url)), &ns).tick(&mut stale, 1);
        assert_eq!(
            read("partition:0"),
            (Some(100), Some(1)),
            "older sequence won"
        );
        assert_eq!(
            read("product:p1"),
            (Some(100), Some(1)),
            "older sequence won"
        );

        if let Some(t) = tasks.get_mut(&0) {
            t.chain.next_seq = 12;
            t.mark_committed();
        }
        UsageShare::new(Some(&target(&url)), &ns).tick(&mut tasks, 1);
        assert_eq!(
            read("partition:0"),
            (Some(150), Some(2)),
            "the commit is published"
        );

        if let Ok(mut con) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection()) {
            for key in ["partition:0", "product:p1", "epoch"] {
                let _: Result<(), _> = redis::cmd("DEL")
                    .arg(format!("bucket:{ns}:{key}"))
                    .query(&mut con);
            }
        }
    }
}
