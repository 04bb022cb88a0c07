//! ClickHouse rows in RowBinary, written straight from the envelopes of `common::event`
//! into one buffer per table: no per-row allocation, and the insert sends the buffer as it
//! is. Each row remembers where it starts and which Kafka message it came from, so a batch
//! can be split to find rows ClickHouse refuses and those rows traced to their message.
//!
//! RowBinary (ClickHouse's `RowBinary` format): `UUID` as its two `u64` halves, high then
//! low, little-endian; `String` as a LEB128 length and the bytes; `DateTime` and integers
//! little-endian; `Array(String)` as a LEB128 count and the strings.

use std::ops::Range;

use common::event::{compact_json_into, properties, EventEnvelope, ExposureEnvelope};

/// Where a row came from: enough to fetch its message again (for the DLQ) and to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub partition: i32,
    pub offset: i64,
}

/// A table and the columns our rows fill, in row order.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static str,
}

/// `clickhouse/001_events.sql` and the properties' leaves of `007_event_properties.sql`.
pub const EVENTS: Table = Table {
    name: "events",
    columns: "event_id, user_id, type, timestamp, received_at, properties, prop_keys, prop_values, num_keys, \
              num_values, props_v",
};
/// `clickhouse/003_exposures_earliest_wins.sql` (its `earliness` column is computed by
/// ClickHouse) and `004_exposure_attributes.sql`.
pub const EXPOSURES: Table = Table {
    name: "exposures",
    columns: "experiment_id, user_id, variant, exposed_at, forced, attribute_keys, attribute_values, exposure_id",
};

/// Rows of one table in RowBinary.
#[derive(Debug, Default)]
pub struct Rows {
    buf: Vec<u8>,
    starts: Vec<usize>,
    sources: Vec<Source>,
    /// Reused for properties that are not compact yet.
    scratch: Vec<u8>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    pub fn source(&self, row: usize) -> Source {
        self.sources[row]
    }

    /// The RowBinary of rows `range`.
    pub fn bytes(&self, range: Range<usize>) -> &[u8] {
        let start = self.starts.get(range.start).copied().unwrap_or(self.buf.len());
        let end = self.starts.get(range.end).copied().unwrap_or(self.buf.len());
        &self.buf[start..end]
    }

    fn begin(&mut self, source: Source) {
        self.starts.push(self.buf.len());
        self.sources.push(source);
    }

    /// Appends the event's row; returns how many leaves of its properties were dropped
    /// beyond [`properties::MAX_LEAVES`].
    pub fn push_event(&mut self, e: &EventEnvelope<'_>, source: Source) -> usize {
        self.begin(source);
        let (high, low) = e.event_id.as_u64_pair();
        self.buf.extend_from_slice(&high.to_le_bytes());
        self.buf.extend_from_slice(&low.to_le_bytes());
        put_str(&mut self.buf, e.user_id.as_bytes());
        put_str(&mut self.buf, e.event_type.as_bytes());
        self.buf.extend_from_slice(&seconds(e.timestamp_ms).to_le_bytes());
        self.buf.extend_from_slice(&seconds(e.received_at_ms).to_le_bytes());
        self.scratch.clear();
        compact_json_into(e.properties.get(), &mut self.scratch);
        put_str(&mut self.buf, &self.scratch);
        let (leaves, dropped) = properties::leaves(e.properties.get());
        put_leb128(&mut self.buf, leaves.len());
        for leaf in &leaves {
            put_str(&mut self.buf, leaf.pointer.as_bytes());
        }
        put_leb128(&mut self.buf, leaves.len());
        for leaf in &leaves {
            put_str(&mut self.buf, leaf.text.as_bytes());
        }
        let numbers = || leaves.iter().filter_map(|l| Some((&l.pointer, l.number?)));
        put_leb128(&mut self.buf, numbers().count());
        for (pointer, _) in numbers() {
            put_str(&mut self.buf, pointer.as_bytes());
        }
        put_leb128(&mut self.buf, numbers().count());
        for (_, number) in numbers() {
            self.buf.extend_from_slice(&number.to_le_bytes());
        }
        self.buf.push(1); // props_v: the leaves are there
        dropped
    }

    pub fn push_exposure(&mut self, e: &ExposureEnvelope<'_>, source: Source) {
        self.begin(source);
        self.buf.extend_from_slice(&u64::try_from(e.experiment_id).unwrap_or_default().to_le_bytes());
        put_str(&mut self.buf, e.user_id.as_bytes());
        put_str(&mut self.buf, e.variant.as_bytes());
        self.buf.extend_from_slice(&seconds(e.exposed_at_ms).to_le_bytes());
        self.buf.push(u8::from(e.forced));
        put_leb128(&mut self.buf, e.attributes.len());
        for name in e.attributes.keys() {
            put_str(&mut self.buf, name.as_bytes());
        }
        put_leb128(&mut self.buf, e.attributes.len());
        for value in e.attributes.values() {
            put_str(&mut self.buf, value.as_bytes());
        }
        put_str(&mut self.buf, e.exposure_id.as_deref().unwrap_or_default().as_bytes());
    }
}

/// Bytes per chunk of an insert's request body.
const INSERT_CHUNK: usize = 1 << 20;

/// One `INSERT INTO table (columns) FORMAT RowBinary` of `rowbinary`, sent in chunks; each
/// of the send and the final answer bounded by `timeout`.
pub async fn insert(
    client: &clickhouse::Client,
    table: Table,
    rowbinary: &[u8],
    timeout: std::time::Duration,
) -> clickhouse::error::Result<()> {
    let sql = format!("INSERT INTO {} ({}) FORMAT RowBinary", table.name, table.columns);
    let mut insert = client.insert_formatted_with(sql).with_timeouts(Some(timeout), Some(timeout));
    for chunk in rowbinary.chunks(INSERT_CHUNK) {
        insert.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    insert.end().await
}

/// A RowBinary `String`: LEB128 length, then the bytes.
fn put_str(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_leb128(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// A length or count as RowBinary writes it.
fn put_leb128(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(byte);
            break;
        }
        buf.push(byte | 0x80);
    }
}

/// Milliseconds to `DateTime` seconds; decode already checked the range.
fn seconds(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn rows_are_rowbinary_byte_for_byte() {
        let properties = RawValue::from_string("{ \"a\" : [1, 2] }".into()).expect("json");
        let id = uuid::Uuid::from_u64_pair(0x0102_0304_0506_0708, 0x1112_1314_1516_1718);
        let long_user = "ü".repeat(100); // 200 bytes: a length over 127 takes two LEB128 bytes
        let e = EventEnvelope {
            v: 1,
            event_id: id,
            user_id: long_user.as_str().into(),
            event_type: "buy".into(),
            timestamp_ms: 1_000_999,
            received_at_ms: 2_000_000,
            properties: &properties,
        };
        let mut rows = Rows::default();
        rows.push_event(&e, Source { partition: 0, offset: 7 });
        rows.push_event(&e, Source { partition: 3, offset: 8 });
        let mut expected = vec![8, 7, 6, 5, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11];
        expected.extend([0xc8, 0x01]); // 200
        expected.extend(long_user.as_bytes());
        expected.extend([3, b'b', b'u', b'y']);
        expected.extend(1000u32.to_le_bytes());
        expected.extend(2000u32.to_le_bytes());
        expected.push(11);
        expected.extend(br#"{"a":[1,2]}"#);
        expected.extend([2, 4, b'/', b'a', b'/', b'0', 4, b'/', b'a', b'/', b'1']); // prop_keys
        expected.extend([2, 1, b'1', 1, b'2']); // prop_values
        expected.extend([2, 4, b'/', b'a', b'/', b'0', 4, b'/', b'a', b'/', b'1']); // num_keys
        expected.push(2); // num_values
        expected.extend(1.0f64.to_le_bytes());
        expected.extend(2.0f64.to_le_bytes());
        expected.push(1); // props_v
        assert_eq!(rows.bytes(0..1), expected.as_slice());
        assert_eq!(rows.bytes(1..2), expected.as_slice());
        assert_eq!(rows.bytes(0..2).len(), 2 * expected.len());
        assert_eq!((rows.len(), rows.source(1)), (2, Source { partition: 3, offset: 8 }));

        let mut exposures = Rows::default();
        let mut x = ExposureEnvelope::new(5, "b".into(), "u".into(), 3_000);
        exposures.push_exposure(&x, Source { partition: 0, offset: 0 });
        // not forced, no attribute names, no values, an empty exposure id
        let old = [5, 0, 0, 0, 0, 0, 0, 0, 1, b'u', 1, b'b', 3, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(exposures.bytes(0..1), old);
        x.forced = true;
        x.attributes.insert("os".into(), "ios".into());
        x.attributes.insert("age".into(), "4".into());
        x.exposure_id = Some("e7".into());
        exposures.push_exposure(&x, Source { partition: 0, offset: 1 });
        let mut expected = vec![5, 0, 0, 0, 0, 0, 0, 0, 1, b'u', 1, b'b', 3, 0, 0, 0, 1];
        expected.extend([2, 3, b'a', b'g', b'e', 2, b'o', b's']); // names, in order
        expected.extend([2, 1, b'4', 3, b'i', b'o', b's']); // their values
        expected.extend([2, b'e', b'7']);
        assert_eq!(exposures.bytes(1..2), expected.as_slice());
    }
}
