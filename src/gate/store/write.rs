//! Plans one commit: turns [`Changes`] into the final value of every key it touches (reading
//! the store where a change depends on what is there), so the engine gets one operation per
//! key in one atomic batch.

use std::collections::{BTreeMap, HashMap};

use super::engine::{Engine, Table, WriteBatch};
use super::ids::{self, Interner};
use super::{Changes, META_CHECKPOINT, META_REPLAY, StateStoreError, StoreCheckpoint, codec};
use crate::core::state::Usage;

/// A commit being planned; nothing reaches the engine before [`Plan::finish`].
pub struct Plan<'a> {
    engine: &'a Engine,
    products: Interner,
    replay: ReplayCounters,
    /// Final value of each key touched (None: delete).
    ops: BTreeMap<(Table, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Plan<'a> {
    /// Starts a plan over the store's current state.
    pub fn new(engine: &'a Engine, products: Interner, replay: ReplayCounters) -> Self {
        Plan {
            engine,
            products,
            replay,
            ops: BTreeMap::new(),
        }
    }

    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        self.ops.insert((table, key), Some(value));
    }

    /// Current value of a key: this plan's, else the store's.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StateStoreError> {
        match self.ops.get(&(table, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => self.engine.get(table, key),
        }
    }

    fn product(&mut self, name: &str) -> Result<u32, StateStoreError> {
        let (id, new) = self.products.intern(name)?;
        if let Some(value) = new {
            self.put(Table::Products, name.as_bytes().to_vec(), value);
        }
        Ok(id)
    }

    /// Adds all of a batch's changes.
    pub fn changes(&mut self, c: &Changes) -> Result<(), StateStoreError> {
        for (key, record) in &c.artifacts {
            let product = self.product(&key.product_id)?;
            let value = codec::artifact(record)?;
            self.put(Table::Artifacts, ids::artifact_key(product, key), value);
        }
        let mut usage: HashMap<&str, Usage> = HashMap::new();
        for (product, bytes, artifacts) in &c.usage {
            let current = match usage.get(product.as_str()) {
                Some(u) => *u,
                None => match self.engine.get(Table::Usage, product.as_bytes())? {
                    Some(v) => codec::read_usage(&v)?,
                    None => Usage::default(),
                },
            };
            usage.insert(product, current.plus(*bytes, *artifacts));
        }
        for (product, u) in usage {
            self.put(Table::Usage, product.as_bytes().to_vec(), codec::usage(&u));
        }
        for (product, tat) in &c.rates {
            self.put(Table::Rates, product.as_bytes().to_vec(), codec::rate(*tat));
        }
        for (integration, state) in &c.offenders {
            let value = codec::offender(state)?;
            self.put(Table::Offenders, integration.as_bytes().to_vec(), value);
        }
        for key in &c.replay {
            let product = self.product(&key.0)?;
            self.remember(ids::replay_key(product, key), c.replay_window)?;
        }
        Ok(())
    }

    /// `PartitionState::remember` on the store: the window is by position (an id is remembered
    /// while its position is at least `next - window`, `window` being the last one used); a
    /// new id takes the next position, then positions below the floor are forgotten.
    fn remember(&mut self, id: Vec<u8>, window: usize) -> Result<(), StateStoreError> {
        let window = window as u64;
        self.replay.window = window;
        let floor = self.replay.next.saturating_sub(window);
        if self.position(&id)?.is_none_or(|p| p < floor) {
            let position = self.replay.next;
            self.replay.next += 1;
            self.put(
                Table::ReplayOrder,
                position.to_be_bytes().to_vec(),
                id.clone(),
            );
            self.put(Table::ReplayIds, id, codec::counter(position));
        }
        let floor = self.replay.next.saturating_sub(window);
        while self.replay.head < floor {
            let head = self.replay.head;
            let key = head.to_be_bytes().to_vec();
            let old = self.get(Table::ReplayOrder, &key)?.ok_or_else(|| {
                StateStoreError::Corrupt(format!("replay position {head} missing"))
            })?;
            self.ops.insert((Table::ReplayOrder, key), None);
            // Only if the id was not remembered again at a later position.
            if self.position(&old)? == Some(head) {
                self.ops.insert((Table::ReplayIds, old), None);
            }
            self.replay.head += 1;
        }
        Ok(())
    }

    /// Position of a remembered id, as this plan leaves it.
    fn position(&self, id: &[u8]) -> Result<Option<u64>, StateStoreError> {
        self.get(Table::ReplayIds, id)?
            .map(|v| codec::read_counter(&v, "replay position"))
            .transpose()
    }

    /// Ends the plan with the checkpoint: the engine batch, and the product table and replay
    /// counters the store has once it is written.
    pub fn finish(
        mut self,
        checkpoint: &StoreCheckpoint,
    ) -> Result<(WriteBatch, Interner, ReplayCounters), StateStoreError> {
        self.put(Table::Meta, META_CHECKPOINT.to_vec(), checkpoint.encode()?);
        self.put(Table::Meta, META_REPLAY.to_vec(), self.replay.encode());
        let mut w = self.engine.writer();
        for ((table, key), value) in self.ops {
            match value {
                Some(v) => w.put(table, &key, v),
                None => w.remove(table, &key),
            }
        }
        Ok((w, self.products, self.replay))
    }
}

/// The replay window's counters, stored with every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayCounters {
    /// Oldest position still stored.
    pub head: u64,
    /// Position the next remembered id gets.
    pub next: u64,
    /// Window size last used.
    pub window: u64,
}

impl ReplayCounters {
    /// Encodes the counters.
    pub fn encode(&self) -> Vec<u8> {
        codec::ByteWriter::value()
            .u64(self.head)
            .u64(self.next)
            .u64(self.window)
            .done()
    }

    /// Decodes the counters.
    pub fn decode(buf: &[u8]) -> Result<ReplayCounters, StateStoreError> {
        let mut r = codec::ByteReader::value(buf, "replay counters")?;
        let c = ReplayCounters {
            head: r.u64()?,
            next: r.u64()?,
            window: r.u64()?,
        };
        r.end()?;
        if c.head > c.next {
            return Err(StateStoreError::Corrupt(format!(
                "replay window {}..{}",
                c.head, c.next
            )));
        }
        Ok(c)
    }
}
