//! The model test: random commit sequences into the store answer as the same sequence applied
//! to core's `PartitionState` does, across reopens.

use std::collections::HashMap;

use proptest::prelude::*;
use tempfile::TempDir;

use super::{checkpoint, key, open, record, rk};
use crate::core::state::{Effect, OffenderState, PartitionState, Usage};
use crate::gate::store::Changes;

/// One random operation of the model test.
#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, i64, bool),
    Usage(u8, i64, i64),
    Rate(u8, i64),
    Offender(u8, Vec<i64>, Option<i64>),
    Remember(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8, 0..8u8, 1..5i64, any::<bool>()).prop_map(|(p, a, v, d)| Op::Put(p, a, v, d)),
        (0..3u8, -500..500i64, -2..3i64).prop_map(|(p, b, a)| Op::Usage(p, b, a)),
        (0..3u8, any::<i64>()).prop_map(|(p, t)| Op::Rate(p, t)),
        (
            0..2u8,
            prop::collection::vec(any::<i64>(), 0..3),
            any::<Option<i64>>()
        )
            .prop_map(|(i, r, c)| Op::Offender(i, r, c)),
        (0..3u8, 0..12u8).prop_map(|(p, i)| Op::Remember(p, i)),
    ]
}

/// Intent id `i`: UUIDs (canonical and not) and plain strings.
fn intent(i: u8) -> String {
    match i % 3 {
        0 => format!("00000000-0000-4000-8000-0000000000{i:02x}"),
        1 => format!("00000000-0000-4000-8000-0000000000{i:02X}").replace('-', ""),
        _ => format!("intent-{i}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_commits_answer_like_partition_state(
        commits in prop::collection::vec(
            (prop::collection::vec(op(), 0..12), 1..6usize, any::<bool>()), 1..12),
    ) {
        let dir = TempDir::new().unwrap();
        let mut s = open(&dir);
        let mut m = PartitionState::default();
        let mut rates: HashMap<String, i64> = HashMap::new();
        let mut offenders: HashMap<String, OffenderState> = HashMap::new();
        let product = |p: u8| format!("product-{p}");
        for (n, (ops, window, reopen)) in commits.iter().enumerate() {
            let mut c = Changes::new(*window);
            for op in ops {
                match op {
                    Op::Put(p, a, v, d) => {
                        let e = Effect { key: key(&product(*p), &format!("a{a}")), record: record(*v, *d) };
                        c.artifacts.push((e.key.clone(), e.record.clone()));
                        m.apply(&e);
                    }
                    Op::Usage(p, b, a) => {
                        c.usage.push((product(*p), *b, *a));
                        m.add_usage(&product(*p), *b, *a);
                    }
                    Op::Rate(p, t) => {
                        c.rates.push((product(*p), *t));
                        rates.insert(product(*p), *t);
                    }
                    Op::Offender(i, r, cool) => {
                        let o = OffenderState { rejections: r.iter().copied().collect(), cooling_until: *cool };
                        c.offenders.push((format!("int-{i}"), o.clone()));
                        offenders.insert(format!("int-{i}"), o);
                    }
                    Op::Remember(p, i) => {
                        c.replay.push(rk(&product(*p), &intent(*i)));
                        m.remember(rk(&product(*p), &intent(*i)), *window);
                    }
                }
            }
            s.commit(&c, &checkpoint(n as i64)).unwrap();
            if *reopen {
                drop(s);
                s = open(&dir);
            }
            for p in 0..3 {
                for a in 0..8 {
                    let k = key(&product(p), &format!("a{a}"));
                    let got = s.artifact(&k).unwrap();
                    prop_assert_eq!(got.as_ref(), m.artifact(&k));
                }
                for i in 0..12 {
                    let k = rk(&product(p), &intent(i));
                    prop_assert_eq!(s.seen(&k).unwrap(), m.seen(&k));
                }
            }
            let usage: HashMap<String, Usage> = m.usage_by_product().clone();
            prop_assert_eq!(s.usage_all().unwrap(), usage);
            prop_assert_eq!(&s.rate_all().unwrap(), &rates);
            prop_assert_eq!(&s.offenders_all().unwrap(), &offenders);
            prop_assert_eq!(s.checkpoint().unwrap(), Some(checkpoint(n as i64)));
        }
    }
}
