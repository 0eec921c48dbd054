//! The store's byte layouts: small, explicit and versioned. Values are local to one store and
//! never shared, so a layout change bumps [`super::STORE_GENERATION`] and old stores are wiped.
//! Every value starts with a layout byte ([`LAYOUT`]); integers are big-endian; strings are a
//! `u16` length and UTF-8 bytes.

use std::collections::VecDeque;

use super::StateStoreError;
use crate::core::state::{ArtifactRecord, OffenderState, Usage};

/// Layout byte every value starts with.
pub const LAYOUT: u8 = 1;

/// Appends values to a buffer.
#[derive(Debug, Default)]
pub struct ByteWriter(Vec<u8>);

impl ByteWriter {
    /// A writer with the layout byte already written.
    pub fn value() -> ByteWriter {
        ByteWriter(vec![LAYOUT])
    }

    /// An empty writer (keys carry no layout byte).
    pub fn key() -> ByteWriter {
        ByteWriter(Vec::new())
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends an `i64`.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw bytes (no length: only as the last field of a key).
    pub fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// Appends a length-prefixed string; refused over `u16::MAX` bytes.
    pub fn str(&mut self, v: &str) -> Result<&mut Self, StateStoreError> {
        let len = u16::try_from(v.len()).map_err(|_| StateStoreError::TooLong(v.len()))?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(v.as_bytes());
        Ok(self)
    }

    /// The bytes written.
    pub fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// Reads values back; every read checks bounds.
#[derive(Debug)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    /// Starts reading a value: checks its layout byte.
    pub fn value(buf: &'a [u8], what: &'static str) -> Result<ByteReader<'a>, StateStoreError> {
        let mut r = ByteReader { buf, what };
        match r.u8()? {
            LAYOUT => Ok(r),
            other => Err(r.corrupt(format!("layout {other}"))),
        }
    }

    /// Starts reading bytes without a layout byte.
    pub fn raw(buf: &'a [u8], what: &'static str) -> ByteReader<'a> {
        ByteReader { buf, what }
    }

    fn corrupt(&self, problem: String) -> StateStoreError {
        StateStoreError::Corrupt(format!("{}: {problem}", self.what))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StateStoreError> {
        if self.buf.len() < n {
            return Err(self.corrupt(format!("truncated (needs {n} more bytes)")));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StateStoreError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads 32 raw bytes (a hash).
    pub fn bytes32(&mut self) -> Result<[u8; 32], StateStoreError> {
        self.array::<32>()
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, StateStoreError> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads a `u32`.
    pub fn u32(&mut self) -> Result<u32, StateStoreError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Reads a `u64`.
    pub fn u64(&mut self) -> Result<u64, StateStoreError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Reads an `i64`.
    pub fn i64(&mut self) -> Result<i64, StateStoreError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Reads a length-prefixed string.
    pub fn str(&mut self) -> Result<String, StateStoreError> {
        let len = u16::from_be_bytes(self.array()?) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("invalid UTF-8".into()))
    }

    /// The bytes not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// Fails unless everything was read.
    pub fn end(&self) -> Result<(), StateStoreError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.corrupt(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

/// Encodes an artifact record.
pub fn artifact(r: &ArtifactRecord) -> Result<Vec<u8>, StateStoreError> {
    let mut w = ByteWriter::value();
    w.i64(r.version).u8(u8::from(r.deleted)).u64(r.size);
    w.str(&r.owner_id)?.str(&r.artifact_class)?;
    Ok(w.done())
}

/// Decodes an artifact record.
pub fn read_artifact(buf: &[u8]) -> Result<ArtifactRecord, StateStoreError> {
    let mut r = ByteReader::value(buf, "artifact")?;
    let version = r.i64()?;
    let deleted = r.u8()? != 0;
    let size = r.u64()?;
    let owner_id = r.str()?;
    let artifact_class = r.str()?;
    r.end()?;
    Ok(ArtifactRecord {
        version,
        owner_id,
        artifact_class,
        size,
        deleted,
    })
}

/// Encodes a product's usage.
pub fn usage(u: &Usage) -> Vec<u8> {
    ByteWriter::value().u64(u.bytes).u64(u.artifacts).done()
}

/// Decodes a product's usage.
pub fn read_usage(buf: &[u8]) -> Result<Usage, StateStoreError> {
    let mut r = ByteReader::value(buf, "usage")?;
    let u = Usage {
        bytes: r.u64()?,
        artifacts: r.u64()?,
    };
    r.end()?;
    Ok(u)
}

/// Encodes a GCRA arrival time (µs).
pub fn rate(tat_us: i64) -> Vec<u8> {
    ByteWriter::value().i64(tat_us).done()
}

/// Decodes a GCRA arrival time (µs).
pub fn read_rate(buf: &[u8]) -> Result<i64, StateStoreError> {
    let mut r = ByteReader::value(buf, "rate")?;
    let v = r.i64()?;
    r.end()?;
    Ok(v)
}

/// Encodes an integration's offender state.
pub fn offender(o: &OffenderState) -> Result<Vec<u8>, StateStoreError> {
    let mut w = ByteWriter::value();
    match o.cooling_until {
        Some(t) => w.u8(1).i64(t),
        None => w.u8(0),
    };
    let n = u32::try_from(o.rejections.len())
        .map_err(|_| StateStoreError::TooLong(o.rejections.len()))?;
    w.u32(n);
    for t in &o.rejections {
        w.i64(*t);
    }
    Ok(w.done())
}

/// Decodes an integration's offender state.
pub fn read_offender(buf: &[u8]) -> Result<OffenderState, StateStoreError> {
    let mut r = ByteReader::value(buf, "offender")?;
    let cooling_until = match r.u8()? {
        0 => None,
        _ => Some(r.i64()?),
    };
    let n = r.u32()? as usize;
    let mut rejections = VecDeque::with_capacity(n.min(1024));
    for _ in 0..n {
        rejections.push_back(r.i64()?);
    }
    r.end()?;
    Ok(OffenderState {
        rejections,
        cooling_until,
    })
}

/// Encodes a `u64` counter (meta entries, replay sequence numbers).
pub fn counter(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

/// Decodes a `u64` counter.
pub fn read_counter(buf: &[u8], what: &'static str) -> Result<u64, StateStoreError> {
    let mut r = ByteReader::raw(buf, what);
    let v = r.u64()?;
    r.end()?;
    Ok(v)
}
