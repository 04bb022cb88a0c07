//! The ClickHouse statements a request runs, when it asks (`?explain=true`): each storage
//! function records the statement it is about to send; outside [`recording`] that is a
//! no-op.

use std::cell::RefCell;

use clickhouse::query::Query;

tokio::task_local! {
    static STATEMENTS: RefCell<Vec<String>>;
}

/// Runs `work` with recording on (concurrent statements of the same task included);
/// returns its output and the statements run, in the order they were sent.
pub async fn recording<F: std::future::Future>(work: F) -> (F::Output, Vec<String>) {
    STATEMENTS
        .scope(RefCell::new(Vec::new()), async move {
            let out = work.await;
            (out, STATEMENTS.with(|s| s.take()))
        })
        .await
}

/// [`recording`] when `on`; otherwise `work` alone, with no statements.
pub async fn recording_if<F: std::future::Future>(on: bool, work: F) -> (F::Output, Vec<String>) {
    if on {
        recording(work).await
    } else {
        (work.await, Vec::new())
    }
}

/// The query, its text (bound values in place) recorded when the request explains itself.
pub fn record(query: Query) -> Query {
    let _ = STATEMENTS.try_with(|s| s.borrow_mut().push(query.sql_display().to_string()));
    query
}
