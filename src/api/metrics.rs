//! The read API's Prometheus metrics (`GET /metrics`, OpenMetrics text, like the admin servers'):
//! refusals by product and limit, and the size of the limiters' state. Label values are bounded:
//! `product` is a product of the tokens file or `none` (no valid token), `limit` one of four.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::limits::{LimitKind, Limiters};

/// Content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `bucket_api_throttled_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabels {
    /// The token's product, or `none` for requests without a valid token.
    pub product: String,
    /// `requests`, `content_bytes`, `content_streams` or `unauthenticated`.
    pub limit: &'static str,
}

/// Labels of `bucket_api_limiter_keys`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimiterLabel {
    limiter: &'static str,
}

/// The API's metrics; handles are atomic and cheap to clone.
#[derive(Clone, Default)]
pub struct ApiMetrics {
    /// `bucket_api_throttled_total{product,limit}`.
    pub throttled: Family<ThrottleLabels, Counter>,
    /// `bucket_api_limiter_keys{limiter}` (`addresses`, `tokens`), set at each scrape.
    limiter_keys: Family<LimiterLabel, Gauge>,
}

impl ApiMetrics {
    /// Counts one refusal.
    pub fn throttled(&self, product: &str, kind: LimitKind) {
        self.throttled
            .get_or_create(&ThrottleLabels {
                product: product.to_string(),
                limit: kind.as_str(),
            })
            .inc();
    }

    /// The exposition text, with the limiters' current sizes.
    pub fn encode(&self, limiters: &Limiters) -> Result<String, std::fmt::Error> {
        let (addresses, tokens) = limiters.tracked();
        for (limiter, n) in [("addresses", addresses), ("tokens", tokens)] {
            self.limiter_keys
                .get_or_create(&LimiterLabel { limiter })
                .set(n as i64);
        }
        let mut r = Registry::default();
        r.register(
            "bucket_api_throttled",
            "Read-API requests answered 429, by product and limit",
            self.throttled.clone(),
        );
        r.register(
            "bucket_api_limiter_keys",
            "Keys the read API's rate limiters hold (bounded: idle keys are dropped)",
            self.limiter_keys.clone(),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::config::ApiConfig;

    #[test]
    fn exposition_uses_the_contract_names() {
        let c = ApiConfig::default();
        let l = Limiters::new(&c.tokens, &c.server);
        let m = ApiMetrics::default();
        m.throttled("ai_avatar", LimitKind::Requests);
        m.throttled("ai_avatar", LimitKind::Requests);
        m.throttled("none", LimitKind::Unauthenticated);
        let out = m.encode(&l).unwrap();
        for want in [
            "bucket_api_throttled_total{product=\"ai_avatar\",limit=\"requests\"} 2",
            "bucket_api_throttled_total{product=\"none\",limit=\"unauthenticated\"} 1",
            "bucket_api_limiter_keys{limiter=\"addresses\"} 0",
        ] {
            assert!(out.contains(want), "{want} missing:\n{out}");
        }
    }
}
