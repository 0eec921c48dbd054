//! Reading fields out of a decoded Avro record by name, with precise errors.

use std::sync::LazyLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;

use super::WireError;
use super::schemas::APPROVED;

/// A decoded record's fields.
pub(crate) struct Fields(Vec<(String, Value)>);

impl Fields {
    /// Takes the fields of a record value.
    pub(crate) fn of(value: Value) -> Result<Fields, WireError> {
        match value {
            Value::Record(f) => Ok(Fields(f)),
            other => Err(WireError::Avro(format!("expected a record, got {other:?}"))),
        }
    }

    fn take(&mut self, field: &'static str) -> Result<Value, WireError> {
        let pos = self
            .0
            .iter()
            .position(|(n, _)| n == field)
            .ok_or(WireError::Field {
                field,
                problem: "missing".into(),
            })?;
        Ok(unwrap_union(self.0.swap_remove(pos).1))
    }

    fn wrong(field: &'static str, v: &Value) -> WireError {
        WireError::Field {
            field,
            problem: format!("unexpected value {}", short(v)),
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, WireError> {
        match self.take(field)? {
            Value::String(s) | Value::Enum(_, s) => Ok(s),
            Value::Uuid(u) => Ok(u.to_string()),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn opt_string(&mut self, field: &'static str) -> Result<Option<String>, WireError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn long(&mut self, field: &'static str) -> Result<i64, WireError> {
        match self.take(field)? {
            Value::Long(n) | Value::TimestampMillis(n) => Ok(n),
            Value::Int(n) => Ok(i64::from(n)),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn int(&mut self, field: &'static str) -> Result<i32, WireError> {
        match self.take(field)? {
            Value::Int(n) => Ok(n),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn opt_long(&mut self, field: &'static str) -> Result<Option<i64>, WireError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::Long(n) => Ok(Some(n)),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn boolean(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.take(field)? {
            Value::Boolean(b) => Ok(b),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn opt_bytes(&mut self, field: &'static str) -> Result<Option<Vec<u8>>, WireError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b)),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn strings(&mut self, field: &'static str) -> Result<Vec<String>, WireError> {
        match self.take(field)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    v => Err(Self::wrong(field, &v)),
                })
                .collect(),
            v => Err(Self::wrong(field, &v)),
        }
    }

    /// Like `opt_record`, for a field that older writer schemas do not have: absent is None.
    pub(crate) fn added_record(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Fields>, WireError> {
        if self.0.iter().any(|(n, _)| n == field) {
            self.opt_record(field)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn longs(&mut self, field: &'static str) -> Result<Vec<i64>, WireError> {
        match self.take(field)? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::Long(n) => Ok(n),
                    v => Err(Self::wrong(field, &v)),
                })
                .collect(),
            v => Err(Self::wrong(field, &v)),
        }
    }

    pub(crate) fn opt_record(&mut self, field: &'static str) -> Result<Option<Fields>, WireError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            v @ Value::Record(_) => Fields::of(v).map(Some),
            v => Err(Self::wrong(field, &v)),
        }
    }
}

fn unwrap_union(v: Value) -> Value {
    match v {
        Value::Union(_, inner) => *inner,
        v => v,
    }
}

fn short(v: &Value) -> String {
    let s = format!("{v:?}");
    s.chars().take(48).collect()
}

/// Builds `["null", T]` union values (branch 0 is null, 1 is the value).
pub(crate) fn opt<T>(v: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    match v {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(x) => Value::Union(1, Box::new(f(x))),
    }
}

/// Builds an Avro record value from (name, value) pairs.
pub(crate) fn record(fields: Vec<(&str, Value)>) -> Value {
    Value::Record(
        fields
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
    )
}

/// Readers and writers of the approved schemas, with their names resolved once: building them
/// per record resolves the schema every time (a map of names built and dropped per call), which
/// showed in the decode benchmark (`benches/gate_core.rs`; apache/avro-rs #310, #371).
struct Codecs {
    readers: Vec<(&'static Schema, GenericDatumReader<'static>)>,
    writers: Vec<(&'static Schema, GenericDatumWriter<'static>)>,
}

static CODECS: LazyLock<Codecs> = LazyLock::new(|| {
    let approved: &'static super::schemas::Approved = &APPROVED;
    let schemas: Vec<&'static Schema> = approved.all().into_iter().map(|a| &a.schema).collect();
    Codecs {
        readers: schemas
            .iter()
            .filter_map(|s| Some((*s, GenericDatumReader::builder(s).build().ok()?)))
            .collect(),
        writers: schemas
            .iter()
            .filter_map(|s| Some((*s, GenericDatumWriter::builder(s).build().ok()?)))
            .collect(),
    }
});

fn cached<'a, T>(list: &'a [(&'static Schema, T)], schema: &Schema) -> Option<&'a T> {
    list.iter()
        .find(|(s, _)| std::ptr::eq(*s, schema))
        .map(|(_, t)| t)
}

/// Decodes one Avro datum that must use every byte of `body`.
pub(crate) fn read_datum(schema: &Schema, body: &[u8]) -> Result<Value, WireError> {
    let avro = |e: apache_avro::Error| WireError::Avro(e.to_string());
    let mut cursor = body;
    let value = match cached(&CODECS.readers, schema) {
        Some(reader) => reader.read_value(&mut cursor),
        None => GenericDatumReader::builder(schema)
            .build()
            .and_then(|r| r.read_value(&mut cursor)),
    }
    .map_err(avro)?;
    if !cursor.is_empty() {
        return Err(WireError::Avro(format!(
            "{} trailing bytes after the record",
            cursor.len()
        )));
    }
    Ok(value)
}

/// Encodes one Avro datum (validated against `schema`).
pub(crate) fn write_datum(schema: &Schema, value: Value) -> Result<Vec<u8>, WireError> {
    match cached(&CODECS.writers, schema) {
        Some(writer) => writer.write_value_to_vec(value),
        None => GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value)),
    }
    .map_err(|e| WireError::Avro(e.to_string()))
}

/// Index of an `Operation` in the schemas' `Operation` enum (symbols CREATE, UPDATE, DELETE).
pub(crate) fn operation_index(op: crate::core::Operation) -> i32 {
    use crate::core::Operation;
    match op {
        Operation::Create => 0,
        Operation::Update => 1,
        Operation::Delete => 2,
    }
}

/// Avro enum value for an `Operation` (symbol order CREATE, UPDATE, DELETE).
pub(crate) fn operation_value(op: crate::core::Operation) -> Value {
    Value::Enum(operation_index(op).unsigned_abs(), op.as_str().to_string())
}

/// Parses an `Operation` field.
pub(crate) fn operation(fields: &mut Fields) -> Result<crate::core::Operation, WireError> {
    let s = fields.string("operation")?;
    crate::core::Operation::parse(&s).ok_or(WireError::Field {
        field: "operation",
        problem: format!("unknown operation {s:?}"),
    })
}
