//! The metrics answer (`GET /experiments/{id}/results` without `event_type`): every catalog
//! metric of the experiment, optionally explained (`explain=true`) and broken down by an
//! exposure attribute (`dimension=`).

use common::event::properties;
use futures::{StreamExt, TryStreamExt};
use server::{error::ErrorCode, ApiError};

use crate::{
    domain::{metric::filter_text, metric::Capping, Experiment, Phase},
    results::{
        self,
        multi::{self, MetricRows, MetricsResults},
        Question, Window,
    },
    storage::{
        clickhouse::{self as ch, Cap, Refine, StatsQuery},
        trace, StorageError,
    },
    AppState,
};

/// Slices of a breakdown computed at once (each runs one statement per metric).
const SLICES_AT_ONCE: usize = 3;

/// Every metric of `experiment`, with its explanation and breakdown when asked.
pub async fn answer(
    state: &AppState,
    experiment: &Experiment,
    base: &Question,
    (window, phase): (Window, Phase),
    explain: bool,
    dimension: Option<&str>,
) -> Result<MetricsResults, ApiError> {
    if experiment.metric_definitions.is_empty() {
        return Err(ApiError::field(
            ErrorCode::InvalidQuery,
            "event_type",
            format!(
                "event_type is required: experiment {} has no metrics (set them with PATCH /experiments/{} {{\"metrics\": {{\"primary\": \"<metric key>\"}}}})",
                experiment.id, experiment.id
            ),
        ));
    }
    let segment = base.segment.as_ref().map_or(("", ""), |s| (s.attribute.as_str(), s.value.as_str()));
    let asked = per_metric(state, experiment, base, &window, segment, &[]);
    let (rows, statements) = trace::recording_if(explain, asked).await;
    let rows = rows?;
    let explained = explain.then(|| {
        let analysis = results::analysis_of(experiment, base, &window);
        results::explain::explain_metrics(experiment, &rows, &analysis, base.correction, statements)
    });
    let broken_down = match dimension {
        Some(d) => Some(breakdown(state, experiment, base, (&window, &phase), d).await?),
        None => None,
    };
    let mut answer = multi::assemble_all(experiment, rows, base, window, phase);
    answer.explain = explained;
    answer.breakdown = broken_down;
    Ok(answer)
}

/// Every metric per value of `dimension` (the most frequent values, the rest as `other`).
async fn breakdown(
    state: &AppState,
    experiment: &Experiment,
    base: &Question,
    (window, phase): (&Window, &Phase),
    dimension: &str,
) -> Result<results::breakdown::MetricsBreakdown, ApiError> {
    let users = StatsQuery {
        experiment_id: experiment.id,
        event_type: "",
        value_property: "",
        from: Window::secs(window.from),
        to: Window::secs(window.to),
        cuped_seconds: 0,
        segment: ("", ""),
        rest: &[],
        refine: Default::default(),
    };
    let (shown, slices) = super::slices(state, &users, dimension).await?;
    let shown = &shown;
    let assembled: Vec<(String, bool, MetricsResults)> = futures::stream::iter(slices)
        .map(|(value, is_other)| async move {
            let rest: &[String] = if is_other { shown } else { &[] };
            let rows = per_metric(state, experiment, base, window, (dimension, &value), rest).await?;
            let slice =
                multi::assemble_all(experiment, rows, &base.sliced(dimension, &value), window.clone(), phase.clone());
            Ok::<_, StorageError>((value, is_other, slice))
        })
        .buffered(SLICES_AT_ONCE)
        .try_collect()
        .await?;
    Ok(results::breakdown::metrics_breakdown(dimension, assembled, base.correction))
}

/// Each metric's rows, in `experiment.metric_definitions` order: one ClickHouse statement
/// per metric (two with percentile capping), run concurrently; ratios and quantiles always
/// from the raw events.
async fn per_metric(
    state: &AppState,
    experiment: &Experiment,
    base: &Question,
    window: &Window,
    segment: (&str, &str),
    rest: &[String],
) -> Result<Vec<MetricRows>, StorageError> {
    let filters: Vec<Vec<(String, String)>> = experiment
        .metric_definitions
        .iter()
        .map(|m| {
            m.filters.iter().filter_map(|f| Some((properties::pointer(&f.property), filter_text(&f.value)?))).collect()
        })
        .collect();
    let questions: Vec<Question> = experiment.metric_definitions.iter().map(|m| multi::question_of(m, base)).collect();
    let base_alpha = base.alpha;
    let queries = experiment.metric_definitions.iter().zip(&filters).zip(&questions).map(|((m, filters), q)| {
        let query = StatsQuery {
            experiment_id: experiment.id,
            event_type: &m.event_type,
            value_property: m.value_property.as_deref().unwrap_or(""),
            from: Window::secs(window.from),
            to: Window::secs(window.to),
            cuped_seconds: q.cuped_days * 86_400,
            segment,
            rest,
            refine: Refine {
                filters,
                window_seconds: m.window_hours.map(|h| (h * 3600.0).round().min(f64::from(u32::MAX)) as u32),
                cap: m.capping.map(|c| match c {
                    Capping::Absolute(v) => Cap::Absolute(v),
                    Capping::Percentile(p) => Cap::Percentile(p),
                }),
            },
        };
        async move {
            if let Some(level) = m.quantile {
                return Ok(MetricRows::Quantile(
                    ch::quantile_stats(&state.clickhouse, &query, level, base_alpha).await?,
                ));
            }
            match &m.denominator {
                Some(d) => {
                    let numerator = ch::Part { event_type: &m.event_type, value_property: m.value_property.as_deref() };
                    let denominator =
                        ch::Part { event_type: &d.event_type, value_property: d.value_property.as_deref() };
                    Ok(MetricRows::Ratio(ch::ratio_stats(&state.clickhouse, &query, numerator, denominator).await?))
                }
                None => Ok::<_, StorageError>(MetricRows::Stats(
                    state.rollup.variant_stats(&state.clickhouse, &state.db, experiment, window, &query).await?,
                )),
            }
        }
    });
    futures::future::try_join_all(queries).await
}
