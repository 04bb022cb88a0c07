//! The rows being gathered for one insert, and which offsets they let us commit.

use std::{collections::HashMap, time::Instant};

use rdkafka::message::{BorrowedMessage, Message};

use crate::rows::Rows;

/// Which of our two topics a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Events,
    Exposures,
}

#[derive(Default)]
pub(crate) struct Batch {
    pub events: Rows,
    pub exposures: Rows,
    /// Highest offset done (in this batch or in the DLQ) per partition, per stream.
    done: [HashMap<i32, i64>; 2],
    /// Per partition, the first message that reached neither ClickHouse nor the DLQ:
    /// nothing at or after it may be committed.
    held: [HashMap<i32, i64>; 2],
    pub started: Option<Instant>,
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Events => 0,
        Stream::Exposures => 1,
    }
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.events.len() + self.exposures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.iter().all(HashMap::is_empty) && self.held.iter().all(HashMap::is_empty)
    }

    /// Records that `msg` is taken care of (its row is in the batch, or it is in the DLQ).
    pub fn done(&mut self, stream: Stream, msg: &BorrowedMessage<'_>) {
        self.started.get_or_insert_with(Instant::now);
        let entry = self.done[index(stream)].entry(msg.partition()).or_insert(msg.offset());
        *entry = (*entry).max(msg.offset());
    }

    /// Records that `msg` could not be taken care of: the commit stops before it, so it is
    /// read again after a restart.
    pub fn hold(&mut self, stream: Stream, msg: &BorrowedMessage<'_>) {
        self.started.get_or_insert_with(Instant::now);
        let entry = self.held[index(stream)].entry(msg.partition()).or_insert(msg.offset());
        *entry = (*entry).min(msg.offset());
    }

    /// The offsets to commit per partition of `stream`: after the last message done, but
    /// never past a held one.
    pub fn commit_offsets(&self, stream: Stream) -> Vec<(i32, i64)> {
        let held = &self.held[index(stream)];
        self.done[index(stream)]
            .iter()
            .map(|(&partition, &last)| {
                let next = last + 1;
                (partition, held.get(&partition).map_or(next, |&h| next.min(h)))
            })
            .collect()
    }
}
