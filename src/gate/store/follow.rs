//! A store that follows a partition's state changelog instead of deciding (a standby task,
//! issue 26): it holds the latest values of one changelog epoch up to some head, and records
//! how far it has read ([`FollowProgress`]) instead of a [`super::StoreCheckpoint`]. A following
//! store is never decided on: the takeover reads the changelog from the recorded offset, checks
//! the head against the audit log as a cold load does, and only then writes a checkpoint.

use std::sync::PoisonError;

use super::{
    META_CHECKPOINT, META_FOLLOW, ReplayCounters, StateStore, StateStoreError, Table, codec,
};

/// How far a following store has read its partition's changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowProgress {
    /// The changelog epoch whose values the store holds.
    pub epoch: u64,
    /// The changelog offset to read from next (right after the last head applied).
    pub next_offset: i64,
    /// The replay window of the last head applied: ids below `head` are evicted.
    pub replay: ReplayCounters,
}

impl FollowProgress {
    fn encode(&self) -> Vec<u8> {
        codec::ByteWriter::value()
            .u64(self.epoch)
            .i64(self.next_offset)
            .u64(self.replay.head)
            .u64(self.replay.next)
            .u64(self.replay.window)
            .done()
    }

    fn decode(buf: &[u8]) -> Result<FollowProgress, StateStoreError> {
        let mut r = codec::ByteReader::value(buf, "follow progress")?;
        let p = FollowProgress {
            epoch: r.u64()?,
            next_offset: r.i64()?,
            replay: ReplayCounters {
                head: r.u64()?,
                next: r.u64()?,
                window: r.u64()?,
            },
        };
        r.end()?;
        if p.replay.head > p.replay.next || p.next_offset < 0 {
            return Err(StateStoreError::Corrupt(format!("follow progress {p:?}")));
        }
        Ok(p)
    }
}

impl StateStore {
    /// How far this store has followed its changelog; None for a store that does not follow
    /// one (a decided store has a checkpoint instead).
    pub fn follow_progress(&self) -> Result<Option<FollowProgress>, StateStoreError> {
        self.engine
            .get(Table::Meta, META_FOLLOW)?
            .map(|v| FollowProgress::decode(&v))
            .transpose()
    }

    /// Records that the entries imported so far bring the store to a head with replay window
    /// `progress.replay`: forgets the replay ids below its floor (from `from_head`, the floor of
    /// the previous progress) and stores the progress. Any checkpoint goes: the store is no
    /// longer at a point the audit log has confirmed. Idempotent, so a crash between an import
    /// and this call costs only reading the same records again.
    pub fn followed_to(
        &self,
        from_head: u64,
        progress: &FollowProgress,
    ) -> Result<(), StateStoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut w = self.engine.writer();
        self.evict_replay(&mut w, from_head, progress.replay.head)?;
        w.remove(Table::Meta, META_CHECKPOINT);
        w.put(Table::Meta, META_FOLLOW, progress.encode());
        w.sort_by_key();
        self.engine.commit(w)?;
        *self.replay.lock().unwrap_or_else(PoisonError::into_inner) = progress.replay;
        Ok(())
    }

    /// Forgets the replay ids between the floor a followed store reached (`from_head`) and the
    /// floor of the head a takeover completes it to (`to_head`), before that takeover's
    /// [`StateStore::finish_import`] (which ends the following).
    pub fn evict_replay_between(
        &self,
        from_head: u64,
        to_head: u64,
    ) -> Result<(), StateStoreError> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut w = self.engine.writer();
        self.evict_replay(&mut w, from_head, to_head)?;
        w.sort_by_key();
        self.engine.commit(w)
    }

    /// Adds to `w` the removal of the replay ids at positions `from..to`, each id only if it
    /// was not remembered again at a later position.
    fn evict_replay(
        &self,
        w: &mut super::engine::WriteBatch,
        from: u64,
        to: u64,
    ) -> Result<(), StateStoreError> {
        for position in from..to {
            let key = position.to_be_bytes();
            // Missing when compaction dropped it behind a later id of the same ring slot.
            let Some(id) = self.engine.get(Table::ReplayOrder, &key)? else {
                continue;
            };
            w.remove(Table::ReplayOrder, &key);
            let at = self
                .engine
                .get(Table::ReplayIds, &id)?
                .map(|v| codec::read_counter(&v, "replay position"))
                .transpose()?;
            if at == Some(position) {
                w.remove(Table::ReplayIds, &id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::store::{StateEntry, StoreIdentity};

    fn store(dir: &std::path::Path) -> StateStore {
        let id = StoreIdentity::new("c", "bucket.intents", "bucket.audit", 0);
        StateStore::open(dir, &id, 1 << 20).unwrap()
    }

    fn seen(product: &str, id: &str, position: u64) -> StateEntry {
        StateEntry::Seen((product.into(), id.into()), position)
    }

    fn progress(next_offset: i64, head: u64, next: u64) -> FollowProgress {
        FollowProgress {
            epoch: 7,
            next_offset,
            replay: ReplayCounters {
                head,
                next,
                window: 2,
            },
        }
    }

    #[test]
    fn following_evicts_ids_below_each_heads_floor_and_keeps_the_progress() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        assert_eq!(s.follow_progress().unwrap(), None);
        s.import(&[seen("p", "a", 0), seen("p", "b", 1)]).unwrap();
        s.followed_to(0, &progress(5, 0, 2)).unwrap();
        assert!(s.seen(&("p".into(), "a".into())).unwrap());
        // The next head: "c" at 2 and "a" remembered again at 3, window 2: floor 2.
        s.import(&[seen("p", "c", 2), seen("p", "a", 3)]).unwrap();
        s.followed_to(0, &progress(9, 2, 4)).unwrap();
        assert!(!s.seen(&("p".into(), "b".into())).unwrap(), "evicted");
        assert!(
            s.seen(&("p".into(), "a".into())).unwrap(),
            "remembered again"
        );
        assert!(s.seen(&("p".into(), "c".into())).unwrap());
        assert_eq!(s.follow_progress().unwrap(), Some(progress(9, 2, 4)));
        assert_eq!(s.checkpoint().unwrap(), None);
        drop(s);
        // Durable, and a second call for the same head changes nothing.
        let s = store(dir.path());
        assert_eq!(s.follow_progress().unwrap(), Some(progress(9, 2, 4)));
        s.followed_to(2, &progress(9, 2, 4)).unwrap();
        assert!(s.seen(&("p".into(), "a".into())).unwrap());
        assert_eq!(s.replay_state().head, 2);
    }

    #[test]
    fn a_takeover_evicts_to_its_head_and_the_store_stops_following() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.import(&[seen("p", "a", 0), seen("p", "b", 1), seen("p", "c", 2)])
            .unwrap();
        s.followed_to(0, &progress(3, 0, 3)).unwrap();
        s.evict_replay_between(0, 2).unwrap();
        assert!(!s.seen(&("p".into(), "a".into())).unwrap());
        assert!(!s.seen(&("p".into(), "b".into())).unwrap());
        assert!(s.seen(&("p".into(), "c".into())).unwrap());
        let checkpoint = crate::gate::store::StoreCheckpoint {
            audit_next_seq: 1,
            audit_hash: "h".into(),
            audit_offset: 0,
            last_decided_offset: 0,
            policy_version: "v".into(),
            control_next: 0,
            tree_edge: Vec::new(),
        };
        let replay = ReplayCounters {
            head: 2,
            next: 3,
            window: 2,
        };
        s.finish_import(replay, &checkpoint).unwrap();
        assert_eq!(s.follow_progress().unwrap(), None, "decided from now on");
        assert_eq!(s.checkpoint().unwrap(), Some(checkpoint));
    }

    #[test]
    fn damaged_progress_is_refused() {
        let mut bad = progress(-1, 0, 0).encode();
        assert!(FollowProgress::decode(&bad).is_err());
        bad = progress(1, 5, 4).encode();
        assert!(FollowProgress::decode(&bad).is_err());
        assert!(FollowProgress::decode(&[1, 2]).is_err());
    }
}
