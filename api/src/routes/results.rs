//! `GET /experiments/{id}/results`, `GET /experiments/{id}/timeseries`, `GET /event_types`.

mod catalog;

use axum::{extract::State, Json};
use chrono::{Duration, Utc};
use serde::Serialize;
use server::{error::ErrorCode, query::Query, ApiError};

use super::{
    not_found,
    params::{segment, EventTypesParams, ResultsParams, TimeseriesParams, DEFAULT_CUPED_DAYS, DEFAULT_EVENT_TYPE_DAYS},
    ExperimentId,
};
use crate::{
    domain::{Experiment, Phase},
    results::{self, multi::MetricsResults, timeseries, ExperimentResults, Question, Window},
    storage::{
        clickhouse::{self as ch, StatsQuery},
        trace, StorageError,
    },
    AppState,
};

/// The phase asked for (default the current one) and the window it covers: from its start
/// (the first phase: from the experiment's creation) to its end, now while it is open, or
/// the experiment's scheduled stop once past; `last_day` keeps only its last days. The
/// experiment comes back with the phase's allocations.
fn phase_window(
    mut experiment: Experiment,
    asked: Option<i32>,
    last_day: Option<u32>,
) -> Result<(Experiment, Phase, Window), ApiError> {
    let phases = &experiment.phases;
    let phase = match asked {
        None => phases.last().cloned(),
        Some(n) => phases.iter().find(|p| p.phase == n).cloned(),
    }
    .ok_or_else(|| {
        ApiError::field(
            ErrorCode::InvalidQuery,
            "phase",
            format!("experiment {} has phases 1 to {}", experiment.id, phases.last().map_or(0, |p| p.phase)),
        )
    })?;
    let now = Utc::now();
    let scheduled_stop = experiment.rollout.stop_at.filter(|t| *t < now);
    let to = [Some(now), phase.ended_at, scheduled_stop].into_iter().flatten().min().unwrap_or(now);
    // ClickHouse keeps whole seconds: the second a phase changes in belongs to the phase
    // that ends (its window ends within it), so the next one starts at the second after.
    let start = if phase.phase == 1 {
        experiment.created_at - Duration::seconds(1)
    } else {
        let second = phase.started_at.timestamp() + 1;
        chrono::DateTime::from_timestamp(second, 0).unwrap_or(phase.started_at)
    };
    let from = match last_day {
        Some(days) => start.max(to - Duration::days(i64::from(days))),
        None => start,
    };
    for v in &mut experiment.variants {
        if let Some(bp) = phase.allocations.0.get(&v.name) {
            v.allocation_bp = *bp;
            v.allocation_percent = f64::from(*bp) / 100.0;
        }
    }
    Ok((experiment, phase, Window { from, to: to.max(from) }))
}

impl From<ResultsParams> for Question {
    fn from(p: ResultsParams) -> Self {
        Question {
            event_type: p.event_type.map(|t| t.0).unwrap_or_default(),
            value_property: p.value_property.map(|v| v.0),
            alpha: p.alpha.map_or(0.05, |a| a.0),
            correction: p.correction.unwrap_or_default(),
            cuped_days: p.cuped_days.map_or(DEFAULT_CUPED_DAYS, |d| d.0),
            target_lift: p.target_lift.map(|t| t.0),
            segment: None,
            prior: None,
        }
    }
}

/// The answer: one event type's conversion (and value), or every catalog metric of the
/// experiment when no `event_type` is given.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Results {
    EventType(Box<ExperimentResults>),
    Metrics(Box<MetricsResults>),
}

/// Conversion (and optionally value) of `event_type` per variant, compared with the control;
/// without `event_type`, every metric of the experiment (primary, secondaries, guardrails).
#[utoipa::path(get, path = "/experiments/{id}/results", tag = "results", operation_id = "get_results",
    params(ExperimentId, ResultsParams),
    responses(
        (status = 200, body = Results),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn results(
    State(state): State<AppState>,
    ExperimentId(id): ExperimentId,
    Query(params): Query<ResultsParams>,
) -> Result<Json<Results>, ApiError> {
    let last_day = params.last_day.as_ref().map(|d| d.0);
    let params_phase = params.phase.as_ref().map(|p| p.0);
    let explain = params.explain.unwrap_or(false);
    let dimension = params.dimension.as_ref().map(|d| d.0.clone());
    if dimension.is_some() && params.attribute.is_some() {
        return Err(ApiError::field(
            ErrorCode::InvalidQuery,
            "dimension",
            "dimension breaks the results down by an attribute: it cannot be combined with attribute/attribute_value",
        ));
    }
    let segment = segment(params.attribute.clone(), params.attribute_value.clone())?;
    let question = Question { segment, ..Question::from(params) };
    let experiment = state.experiments.get(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let (experiment, phase, window) = phase_window((*experiment).clone(), params_phase, last_day)?;
    if question.event_type.is_empty() {
        let answer = catalog::answer(&state, &experiment, &question, (window, phase), explain, dimension.as_deref());
        return Ok(Json(Results::Metrics(Box::new(answer.await?))));
    }
    let query = StatsQuery {
        experiment_id: experiment.id,
        event_type: &question.event_type,
        value_property: question.value_property.as_deref().unwrap_or(""),
        from: Window::secs(window.from),
        to: Window::secs(window.to),
        cuped_seconds: question.cuped_days * 86_400,
        segment: question.segment.as_ref().map_or(("", ""), |s| (s.attribute.as_str(), s.value.as_str())),
        rest: &[],
        refine: Default::default(),
    };
    let asked = state.rollup.variant_stats(&state.clickhouse, &state.db, &experiment, &window, &query);
    let (rows, statements) = trace::recording_if(explain, asked).await;
    let rows = rows?;
    let explained = explain.then(|| {
        let analysis = results::analysis_of(&experiment, &question, &window);
        results::explain::explain(&experiment, &rows, &question, &analysis, statements)
    });
    let broken_down = match &dimension {
        Some(d) => Some(breakdown(&state, &experiment, &query, d, &question, &window, &phase).await?),
        None => None,
    };
    let mut answer = results::assemble(&experiment, rows, question, window, phase);
    answer.explain = explained;
    answer.breakdown = broken_down;
    Ok(Json(Results::EventType(Box::new(answer))))
}

/// A breakdown's slices: the values of `dimension` with the most users first exposed in
/// the window of `query` (shown), each `(value, false)`, then `("", true)` for every other
/// value when there are more.
async fn slices(
    state: &AppState,
    query: &StatsQuery<'_>,
    dimension: &str,
) -> Result<(Vec<String>, Vec<(String, bool)>), StorageError> {
    let limit = results::breakdown::TOP_VALUES;
    let mut top = ch::top_values(&state.clickhouse, query, dimension, limit + 1).await?;
    let other = top.len() as u64 > limit;
    top.truncate(limit as usize);
    let shown: Vec<String> = top.into_iter().map(|v| v.value).collect();
    let slices = shown.iter().map(|v| (v.clone(), false)).chain(other.then(|| (String::new(), true))).collect();
    Ok((shown, slices))
}

/// The results per value of `dimension`: one raw statement per slice, run concurrently.
async fn breakdown(
    state: &AppState,
    experiment: &Experiment,
    query: &StatsQuery<'_>,
    dimension: &str,
    question: &Question,
    window: &Window,
    phase: &Phase,
) -> Result<results::breakdown::Breakdown, ApiError> {
    let (shown, slices) = slices(state, query, dimension).await?;
    let runs = slices.iter().map(|(value, is_other)| {
        let q = StatsQuery {
            segment: (dimension, value.as_str()),
            rest: if *is_other { shown.as_slice() } else { &[] },
            ..query.clone()
        };
        async move { ch::variant_stats(&state.clickhouse, &q).await }
    });
    let rows = futures::future::try_join_all(runs).await?;
    let assembled = slices
        .into_iter()
        .zip(rows)
        .map(|((value, is_other), rows)| {
            let q = question.sliced(dimension, &value);
            (value, is_other, results::assemble(experiment, rows, q, window.clone(), phase.clone()))
        })
        .collect();
    Ok(results::breakdown::breakdown(dimension, assembled, question.correction))
}

/// Daily exposures and conversions per variant, with cumulative conversion rates.
#[utoipa::path(get, path = "/experiments/{id}/timeseries", tag = "results", operation_id = "get_timeseries",
    params(ExperimentId, TimeseriesParams),
    responses(
        (status = 200, body = timeseries::Timeseries),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 404, response = server::openapi::NotFound),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn timeseries(
    State(state): State<AppState>,
    ExperimentId(id): ExperimentId,
    Query(params): Query<TimeseriesParams>,
) -> Result<Json<timeseries::Timeseries>, ApiError> {
    let experiment = state.experiments.get(&state.db, id).await?.ok_or_else(|| not_found(id))?;
    let (experiment, _, window) =
        phase_window((*experiment).clone(), params.phase.map(|p| p.0), params.last_day.map(|d| d.0))?;
    let (from, to) = (Window::secs(window.from), Window::secs(window.to));
    let segment = segment(params.attribute, params.attribute_value)?;
    let query = ch::DaysQuery {
        experiment_id: experiment.id,
        event_type: &params.event_type.0,
        from,
        to,
        segment: segment.as_ref().map_or(("", ""), |s| (s.attribute.as_str(), s.value.as_str())),
    };
    let rows = ch::day_stats(&state.clickhouse, &query).await?;
    Ok(Json(timeseries::assemble(&experiment, params.event_type.0, window, segment, rows)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventTypeCount {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Events of this type in the window (a replayed event may count twice here).
    pub events: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventTypes {
    pub window: Window,
    /// The 100 most frequent types, most frequent first.
    pub event_types: Vec<EventTypeCount>,
}

/// The event types recently received, for choosing a results metric (the results page's
/// event type selector).
#[utoipa::path(get, path = "/event_types", tag = "results", operation_id = "list_event_types", params(EventTypesParams),
    responses(
        (status = 200, body = EventTypes),
        (status = 400, response = server::openapi::BadRequest),
        (status = 401, response = server::openapi::Unauthorized),
        (status = 503, response = server::openapi::Unavailable)),
    security(("bearer" = [])))]
pub async fn event_types(
    State(state): State<AppState>,
    Query(params): Query<EventTypesParams>,
) -> Result<Json<EventTypes>, ApiError> {
    let days = params.last_day.map_or(DEFAULT_EVENT_TYPE_DAYS, |d| d.0);
    let to = Utc::now();
    let from = to - Duration::days(i64::from(days));
    let event_types = ch::event_types(&state.clickhouse, Window::secs(from), Window::secs(to))
        .await?
        .into_iter()
        .map(|r| EventTypeCount { event_type: r.event_type, events: r.events })
        .collect();
    Ok(Json(EventTypes { window: Window { from, to }, event_types }))
}
