//! **The consumer group's assignment as the group describes it**: which partitions a member
//! holds, read from its `member_assignment` bytes (the classic protocol's
//! `ConsumerProtocolAssignment`). Readiness uses it to tell a spare member (an empty assignment)
//! from a static member's predecessor that still holds partitions.

/// Partitions of `topic` in a consumer-protocol assignment (`ConsumerProtocolAssignment`,
/// versions 0-3: int16 version, then an array of (string topic, array of int32 partitions),
/// then user data, which is not read). None when the bytes do not parse.
pub fn parse_assignment(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let name = r.take(len)?;
        let count = r.i32()?;
        for _ in 0..count.max(0) {
            let p = r.i32()?;
            if name == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Some(out)
}

/// Big-endian reads off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        self.take(2)?.try_into().ok().map(i16::from_be_bytes)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)?.try_into().ok().map(i32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A consumer-protocol assignment (version 1) of `topics`, with user data.
    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1i16.to_be_bytes());
        b.extend((topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend(4i32.to_be_bytes());
        b.extend([1, 2, 3, 4]);
        b
    }

    #[test]
    fn assignments_parse_for_the_intents_topic_only() {
        let a = assignment(&[("other", &[9]), ("bucket.intents", &[0, 3])]);
        assert_eq!(parse_assignment(&a, "bucket.intents"), Some(vec![0, 3]));
        assert_eq!(parse_assignment(&a, "missing"), Some(vec![]));
        assert_eq!(parse_assignment(&a[..a.len() - 12], "bucket.intents"), None);
        assert_eq!(parse_assignment(&[], "bucket.intents"), None);
    }
}
