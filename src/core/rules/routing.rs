//! Routing invariants: the record key is the product id, and the product is on its home partition.

use crate::core::decide::{Context, Finding};
use crate::core::partitioner::home_partition;
use crate::core::reason::ReasonCode;

pub(super) fn check(ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let product = ctx.intent.product_id.as_bytes();
    if ctx.envelope.key != Some(product) {
        out.push(Finding::new(
            ReasonCode::KeyMismatch,
            format!(
                "record key {:?} differs from product_id {:?}",
                ctx.envelope.key.map(String::from_utf8_lossy),
                ctx.intent.product_id
            ),
        ));
        return;
    }
    let home = home_partition(product, ctx.envelope.partition_count);
    if home != ctx.envelope.partition {
        out.push(Finding::new(
            ReasonCode::WrongPartition,
            format!(
                "product {:?} is homed on partition {home}, record arrived on {}",
                ctx.intent.product_id, ctx.envelope.partition
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::core::decide::{Envelope, decide};
    use crate::core::partitioner::home_partition;
    use crate::core::policy::tests::shipped;
    use crate::core::reason::ReasonCode;
    use crate::core::rules::test_support::*;
    use crate::core::state::PartitionState;

    #[test]
    fn key_must_equal_product_id() {
        let i = create();
        let sig = sign_as(&i.integration_id, "ed25519", VALUE);
        let env = Envelope {
            key: Some(b"gurukul"),
            partition: 0,
            partition_count: PARTITIONS,
            payload: Ok(&i),
            value: VALUE,
            signature: Some(sig.as_bytes()).into(),
        };
        let d = decide(&env, &PartitionState::default(), &shipped(), NOW);
        assert_eq!(d.reasons(), vec![ReasonCode::KeyMismatch]);
    }

    #[test]
    fn product_must_be_on_home_partition() {
        let i = create();
        let sig = sign_as(&i.integration_id, "ed25519", VALUE);
        let home = home_partition(i.product_id.as_bytes(), PARTITIONS);
        let env = Envelope {
            key: Some(i.product_id.as_bytes()),
            partition: (home + 1) % PARTITIONS,
            partition_count: PARTITIONS,
            payload: Ok(&i),
            value: VALUE,
            signature: Some(sig.as_bytes()).into(),
        };
        let d = decide(&env, &PartitionState::default(), &shipped(), NOW);
        assert_eq!(d.reasons(), vec![ReasonCode::WrongPartition]);
    }
}
