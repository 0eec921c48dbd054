//! The read API's limiters: `governor`'s keyed GCRA for requests and content bytes per token
//! and for requests without a valid token per client address, a semaphore per token for
//! concurrent content streams. Memory stays bounded: idle keys are dropped every cleanup
//! interval, and early when the address limiter tracks more addresses than allowed.
//!
//! Tokens with the same limits share one keyed limiter (keyed by token id); the set of tokens is
//! fixed at start-up, the set of addresses is not (IPv6 addresses are keyed by their /64, so one
//! host cannot mint keys).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::TokenLimits;
use super::auth::{Principal, Tokens};
use super::config::ServerLimits;

/// Which limit refused a request (the `limit` label of `bucket_api_throttled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// The token's requests per second.
    Requests,
    /// The token's content bytes per second.
    ContentBytes,
    /// The token's concurrent content streams.
    ContentStreams,
    /// Requests without a valid token from one client address.
    Unauthenticated,
}

impl LimitKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Requests => "requests",
            LimitKind::ContentBytes => "content_bytes",
            LimitKind::ContentStreams => "content_streams",
            LimitKind::Unauthenticated => "unauthenticated",
        }
    }
}

/// A refusal: which limit, and when to ask again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The limit that refused.
    pub kind: LimitKind,
    /// How long until the request would be allowed (concurrency: a nominal second).
    pub retry_after: Duration,
}

/// The key of a client address: IPv4 whole, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(u128);

impl AddressKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(u128::from(u32::from(v4))),
                None => AddressKey(((u128::from(v6) >> 64) << 64) | 1),
            },
        }
    }
}

/// One quota's keyed limiter over token ids.
struct Group {
    limits: (u32, u32),
    limiter: DefaultKeyedRateLimiter<usize>,
}

/// Keyed limiters for one per-token dimension (requests or content bytes), one per distinct
/// quota, and which one each token uses.
struct PerToken {
    groups: Vec<Group>,
    of_token: HashMap<usize, usize>,
}

fn quota(per_sec: u32, burst: u32) -> Quota {
    let per_sec = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_sec).allow_burst(burst)
}

impl PerToken {
    fn new<'a>(
        principals: impl Iterator<Item = &'a Principal>,
        pick: fn(&TokenLimits) -> (u32, u32),
    ) -> PerToken {
        let mut groups: Vec<Group> = Vec::new();
        let mut of_token = HashMap::new();
        for p in principals {
            let limits = pick(&p.limits);
            let at = match groups.iter().position(|g| g.limits == limits) {
                Some(at) => at,
                None => {
                    groups.push(Group {
                        limits,
                        limiter: RateLimiter::keyed(quota(limits.0, limits.1)),
                    });
                    groups.len() - 1
                }
            };
            of_token.insert(p.id, at);
        }
        PerToken { groups, of_token }
    }

    /// Charges `n` cells to token `id`; a charge above the burst costs the whole burst.
    fn charge(&self, id: usize, n: u64, clock: &DefaultClock) -> Result<(), Duration> {
        let Some(g) = self.of_token.get(&id).and_then(|&at| self.groups.get(at)) else {
            return Err(Duration::from_secs(1));
        };
        let n = n.clamp(1, u64::from(g.limits.1)) as u32;
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        match g.limiter.check_key_n(&id, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(clock.now())),
            Err(_) => Err(Duration::from_secs(1)),
        }
    }

    fn clean(&self) {
        for g in &self.groups {
            g.limiter.retain_recent();
            g.limiter.shrink_to_fit();
        }
    }
}

/// Every limiter of the API; shared by the handlers.
pub struct Limiters {
    clock: DefaultClock,
    requests: PerToken,
    content: PerToken,
    streams: HashMap<usize, Arc<Semaphore>>,
    addresses: DefaultKeyedRateLimiter<AddressKey>,
    /// Addresses over their allowance until the instant: refused before any token check.
    blocked: Mutex<HashMap<AddressKey, Instant>>,
    max_tracked: usize,
    started: Instant,
    last_clean_ms: AtomicU64,
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiters")
            .field("tracked_addresses", &self.addresses.len())
            .finish_non_exhaustive()
    }
}

/// Holds one of a token's content-stream slots until the response body is dropped.
#[derive(Debug)]
pub struct StreamPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl Limiters {
    /// The limiters of `tokens` under `server`'s unauthenticated limit.
    pub fn new(tokens: &Tokens, server: &ServerLimits) -> Limiters {
        Limiters {
            clock: DefaultClock::default(),
            requests: PerToken::new(tokens.principals(), |l| (l.requests_per_sec, l.burst)),
            content: PerToken::new(tokens.principals(), |l| {
                (l.content_bytes_per_sec, l.content_burst_bytes)
            }),
            streams: tokens
                .principals()
                .map(|p| {
                    let n = p.limits.max_content_streams as usize;
                    (p.id, Arc::new(Semaphore::new(n)))
                })
                .collect(),
            addresses: RateLimiter::keyed(quota(
                server.unauthenticated_per_sec,
                server.unauthenticated_burst,
            )),
            blocked: Mutex::new(HashMap::new()),
            max_tracked: server.max_tracked_addresses,
            started: Instant::now(),
            last_clean_ms: AtomicU64::new(0),
        }
    }

    /// Refuses an address that went over its unauthenticated allowance, until it may ask again:
    /// checked before the token is.
    pub fn check_blocked(&self, addr: AddressKey) -> Result<(), Throttled> {
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&addr) {
            Some(&until) if until > now => Err(Throttled {
                kind: LimitKind::Unauthenticated,
                retry_after: until - now,
            }),
            Some(_) => {
                blocked.remove(&addr);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Charges one request without a valid token to its address; over the allowance the address
    /// is blocked until the limiter lets it in again.
    pub fn charge_unauthenticated(&self, addr: AddressKey) -> Result<(), Throttled> {
        if self.addresses.len() > self.max_tracked {
            self.clean_at_most_every(Duration::from_secs(1));
        }
        match self.addresses.check_key(&addr) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
                blocked.insert(addr, Instant::now() + wait);
                Err(Throttled {
                    kind: LimitKind::Unauthenticated,
                    retry_after: wait,
                })
            }
        }
    }

    /// Charges one request to the token.
    pub fn charge_request(&self, p: &Principal) -> Result<(), Throttled> {
        self.requests
            .charge(p.id, 1, &self.clock)
            .map_err(|retry_after| Throttled {
                kind: LimitKind::Requests,
                retry_after,
            })
    }

    /// Admits a content response of `bytes` for the token: a free stream slot (held until the
    /// body is dropped) and the bytes charged to its byte rate.
    pub fn admit_content(&self, p: &Principal, bytes: i64) -> Result<StreamPermit, Throttled> {
        let busy = Throttled {
            kind: LimitKind::ContentStreams,
            retry_after: Duration::from_secs(1),
        };
        let permit = self
            .streams
            .get(&p.id)
            .ok_or(busy)?
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy)?;
        self.content
            .charge(p.id, bytes.max(1) as u64, &self.clock)
            .map_err(|retry_after| Throttled {
                kind: LimitKind::ContentBytes,
                retry_after,
            })?;
        Ok(StreamPermit(permit))
    }

    /// Keys the limiters hold now: (`addresses`, `tokens`).
    pub fn tracked(&self) -> (usize, usize) {
        let tokens = self
            .requests
            .groups
            .iter()
            .chain(&self.content.groups)
            .map(|g| g.limiter.len())
            .sum();
        (self.addresses.len(), tokens)
    }

    /// Drops every key whose state equals a fresh one, and blocks that have ended.
    pub fn clean(&self) {
        self.addresses.retain_recent();
        self.addresses.shrink_to_fit();
        self.requests.clean();
        self.content.clean();
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.retain(|_, until| *until > now);
        blocked.shrink_to_fit();
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_clean_ms.store(ms, Ordering::Relaxed);
    }

    fn clean_at_most_every(&self, every: Duration) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_clean_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= every.as_millis() as u64 {
            self.clean();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config::ApiConfig;

    fn limiters(text: &str) -> (ApiConfig, Limiters) {
        let c = ApiConfig::parse(text).unwrap();
        let l = Limiters::new(&c.tokens, &c.server);
        (c, l)
    }

    const TWO: &str = "[limits.default]\nrequests_per_sec = 1\nburst = 3\n\
        content_bytes_per_sec = 100\ncontent_burst_bytes = 1000\nmax_content_streams = 2\n\
        [server]\nunauthenticated_per_sec = 1\nunauthenticated_burst = 2\n\
        [[tokens]]\nname = \"a\"\nproduct = \"ai_assistant\"\n\
        sha256 = \"1c250c881a1d43c561e877d060963a388f20125bc70acc7fb95c3eb9d17410f6\"\n\
        [[tokens]]\nname = \"b\"\nproduct = \"ai_avatar\"\n\
        sha256 = \"295bf591ab7907cf205ed6eae44b246caf3b71ff91e8351a1fdabcea5ac7d9cc\"\n";

    #[test]
    fn a_token_over_its_burst_is_refused_and_the_other_is_not() {
        let (c, l) = limiters(TWO);
        let a = c
            .tokens
            .authenticate(Some("Bearer demo-ai-assistant-token"))
            .unwrap();
        let b = c
            .tokens
            .authenticate(Some("Bearer demo-ai-avatar-token"))
            .unwrap();
        for _ in 0..3 {
            l.charge_request(a).unwrap();
        }
        let refused = l.charge_request(a).unwrap_err();
        assert_eq!(refused.kind, LimitKind::Requests);
        assert!(
            refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1)
        );
        l.charge_request(b).unwrap();
        assert_eq!(l.tracked().1, 2);
    }

    #[test]
    fn content_streams_are_capped_and_freed_and_bytes_are_charged() {
        let (c, l) = limiters(TWO);
        let a = c
            .tokens
            .authenticate(Some("Bearer demo-ai-assistant-token"))
            .unwrap();
        let s1 = l.admit_content(a, 10).unwrap();
        let _s2 = l.admit_content(a, 10).unwrap();
        assert_eq!(
            l.admit_content(a, 10).unwrap_err().kind,
            LimitKind::ContentStreams
        );
        drop(s1);
        // 20 of 1000 bytes used; more than the burst costs the whole burst, which is not there.
        let e = l.admit_content(a, 5000).unwrap_err();
        assert_eq!(e.kind, LimitKind::ContentBytes);
        assert!(e.retry_after > Duration::ZERO);
    }

    #[test]
    fn an_address_over_its_allowance_is_blocked_before_any_token_check() {
        let (_, l) = limiters(TWO);
        let x = AddressKey::of("10.0.0.1".parse().unwrap());
        let y = AddressKey::of("10.0.0.2".parse().unwrap());
        l.check_blocked(x).unwrap();
        l.charge_unauthenticated(x).unwrap();
        l.charge_unauthenticated(x).unwrap();
        assert!(l.charge_unauthenticated(x).is_err());
        let blocked = l.check_blocked(x).unwrap_err();
        assert_eq!(blocked.kind, LimitKind::Unauthenticated);
        l.check_blocked(y).unwrap();
        l.charge_unauthenticated(y).unwrap();
        assert_eq!(l.tracked().0, 2);
    }

    #[test]
    fn ipv6_hosts_share_their_64_and_v4_mapped_is_v4() {
        let a = AddressKey::of("2001:db8::1".parse().unwrap());
        let b = AddressKey::of("2001:db8::ffff:2".parse().unwrap());
        let c = AddressKey::of("2001:db8:0:1::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let v4 = AddressKey::of("10.0.0.1".parse().unwrap());
        assert_eq!(AddressKey::of("::ffff:10.0.0.1".parse().unwrap()), v4);
        assert_ne!(AddressKey::of("::a00:1".parse().unwrap()), v4);
    }

    #[test]
    fn cleaning_drops_idle_keys() {
        let (_, l) =
            limiters("[server]\nunauthenticated_per_sec = 1000\nunauthenticated_burst = 1\n");
        for i in 0..50u32 {
            l.charge_unauthenticated(AddressKey::of(IpAddr::from(i.to_be_bytes())))
                .unwrap();
        }
        assert_eq!(l.tracked().0, 50);
        std::thread::sleep(Duration::from_millis(20));
        l.clean();
        assert_eq!(l.tracked().0, 0);
    }
}
