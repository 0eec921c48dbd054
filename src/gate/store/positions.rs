//! Replay-window positions, for a task that loads single ids into its in-memory state and must
//! answer "still in the window?" exactly as the full window would.

use super::{StateStore, StateStoreError, Table, codec, ids};
use crate::core::state::ReplayKey;

impl StateStore {
    /// Window position of a remembered id, if the store holds it.
    pub fn seen_position(&self, key: &ReplayKey) -> Result<Option<u64>, StateStoreError> {
        let Some(product) = self.product(&key.0) else {
            return Ok(None);
        };
        self.engine
            .get(Table::ReplayIds, &ids::replay_key(product, key))?
            .map(|v| codec::read_counter(&v, "replay position"))
            .transpose()
    }

    /// (oldest position still held, position the next id gets).
    pub fn replay_counters(&self) -> (u64, u64) {
        let c = self.replay_state();
        (c.head, c.next)
    }
}
