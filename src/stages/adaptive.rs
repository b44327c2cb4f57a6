//! The adaptive-scheduling stage: sample a volatile source faster and a stable one slower.
//!
//! Every reading is forwarded unchanged. Per source the stage keeps the last `window`
//! numeric values (booleans as 0/1, text ignored, NaN/infinite values skipped) in a ring
//! buffer allocated once. Each reading that finds the window full is an *evaluation*:
//!
//! - `cv` = population stddev / mean(|x|). For data of one sign (every system metric) this
//!   is exactly stddev / |mean|; for data around zero it stays finite instead of blowing
//!   up, and a window of all-equal values (including all zeros) has cv 0 (calm).
//! - `max step` = the largest |x[i] - x[i-1]| between consecutive values in the window.
//! - Classification: *volatile* if cv >= `volatile_cv` or (a `max_step` threshold is set
//!   and max step >= it); *calm* if cv <= `calm_cv` and no step reaches the threshold;
//!   otherwise *steady* (counts toward neither).
//!
//! Hysteresis: a source's settled state (initially steady) changes only after `hysteresis`
//! consecutive evaluations agree on the same new classification; one disagreeing
//! evaluation restarts the count.
//!
//! Interval: read from the registry when the source is first seen and remembered from then
//! on (0 = event-driven: never any feedback). On an evaluation that agrees with the
//! settled state, a volatile source's interval halves (not below `min`) and a calm one's
//! doubles (not above `max`); steady leaves it. The interval is never moved against the
//! intent (a source configured outside the bounds is not slowed down for being volatile
//! or sped up for being calm). Feedback is emitted only when the interval changes, and
//! then the window is restarted, so the next move is based on data sampled at the new
//! interval and the same data never causes two moves.
//!
//! `Item::Change` follows the reading when the settled state turns volatile, and when it
//! turns calm after having been reported volatile ("calm again"); a source that starts
//! out calm produces no Change.

use std::sync::Arc;

use log::debug;

use super::PerSource;
use crate::config::duration::Dur;
use crate::graph::counters::Counters;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::shown::{Approx, WithUnit};
use crate::graph::stage::{Out, Stage};
use crate::graph::{Change, Item, Micros, Reading, SourceId, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveParams {
    /// Readings per source in the volatility window.
    pub window: usize,
    /// Bounds of the sampling interval.
    pub min: Micros,
    pub max: Micros,
    /// Consecutive evaluations that must agree before the state changes.
    pub hysteresis: u32,
    /// Coefficient of variation (stddev / |mean|) at or above which a source is volatile.
    pub volatile_cv: f64,
    /// Coefficient of variation at or below which a source is calm.
    pub calm_cv: f64,
    /// Optional absolute max-step threshold: a step between consecutive readings at least
    /// this large makes the source volatile regardless of its CV.
    pub max_step: PerSource<f64>,
}

impl Default for AdaptiveParams {
    fn default() -> Self {
        AdaptiveParams {
            window: 10,
            min: 2_000_000,
            max: 300_000_000,
            hysteresis: 3,
            volatile_cv: 0.05,
            calm_cv: 0.01,
            max_step: PerSource::none(),
        }
    }
}

/// Counter names, in index order. `volatile` and `calm` count settled-state flips.
const COUNTER_NAMES: &[&str] = &["in", "volatile", "calm", "interval_changes"];
const C_IN: usize = 0;
const C_VOLATILE: usize = 1;
const C_CALM: usize = 2;
const C_INTERVAL_CHANGES: usize = 3;

/// The smallest window that has a spread and a step.
const MIN_WINDOW: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Calm,
    Steady,
    Volatile,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Calm => "calm",
            Class::Steady => "steady",
            Class::Volatile => "volatile",
        }
    }
}

struct SourceState {
    info: Option<Arc<SourceInfo>>,
    max_step: Option<f64>,
    /// Ring buffer of the last values; capacity fixed at creation.
    window: Vec<f64>,
    /// Index of the oldest value once the window is full (0 while filling).
    head: usize,
    /// Current sampling interval (µs); 0 = event-driven.
    interval: Micros,
    settled: Class,
    candidate: Class,
    streak: u32,
    reported_volatile: bool,
}

impl SourceState {
    fn name(&self) -> &str {
        self.info.as_ref().map_or("?", |i| &i.name)
    }

    /// A change in this source's value for a log line: rounded, with the source's unit.
    fn shown(&self, step: f64) -> WithUnit<'_> {
        WithUnit(
            Value::Number(step),
            self.info.as_ref().map_or("", |i| &i.unit),
        )
    }

    fn push(&mut self, x: f64, cap: usize) -> bool {
        if self.window.len() < cap {
            self.window.push(x);
        } else {
            self.window[self.head] = x;
            self.head = (self.head + 1) % cap;
        }
        self.window.len() == cap
    }

    fn restart(&mut self) {
        self.window.clear();
        self.head = 0;
    }

    /// (cv, max step) of the full window.
    fn stats(&self) -> (f64, f64) {
        let w = &self.window;
        let n = w.len();
        let (sum, sum_abs) = w.iter().fold((0.0, 0.0), |(s, a), x| (s + x, a + x.abs()));
        let mean = sum / n as f64;
        let mean_abs = sum_abs / n as f64;
        let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        let sd = var.sqrt();
        let cv = if mean_abs > 0.0 { sd / mean_abs } else { 0.0 };
        let mut step: f64 = 0.0;
        for i in 1..n {
            let a = w[(self.head + i - 1) % n];
            let b = w[(self.head + i) % n];
            step = step.max((b - a).abs());
        }
        (cv, step)
    }
}

pub struct Adaptive {
    params: AdaptiveParams,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
    /// Log prefix: `adaptive` or `adaptive <name>`.
    label: String,
    sources: Vec<Option<SourceState>>,
}

impl Adaptive {
    pub fn new(params: AdaptiveParams, registry: Arc<Registry>) -> Adaptive {
        Adaptive {
            params,
            registry,
            counters: Arc::new(Counters::new(COUNTER_NAMES)),
            label: "adaptive".into(),
            sources: Vec::new(),
        }
    }

    /// Name the stage in log lines (`adaptive pace: ...`).
    pub fn with_name(mut self, name: &str) -> Adaptive {
        self.label = format!("adaptive {name}");
        self
    }

    fn on_reading(&mut self, r: Reading, out: &mut Out) {
        let Some(x) = r.value.as_f64().filter(|x| x.is_finite()) else {
            return;
        };
        let Adaptive {
            params,
            registry,
            counters,
            label,
            sources,
        } = self;
        let st = state_for(sources, params, registry, r.source);
        if st.push(x, params.window.max(MIN_WINDOW)) {
            evaluate(st, r, params, counters, label, out);
        }
    }
}

/// The state of source `id`, created on its first reading.
fn state_for<'a>(
    sources: &'a mut Vec<Option<SourceState>>,
    params: &AdaptiveParams,
    registry: &Registry,
    id: SourceId,
) -> &'a mut SourceState {
    let idx = id.index();
    if sources.len() <= idx {
        sources.resize_with(idx + 1, || None);
    }
    sources[idx].get_or_insert_with(|| {
        let info = registry.get(id);
        let max_step = match &info {
            Some(i) => params.max_step.for_name(&i.name),
            None => params.max_step.default,
        };
        let interval = info.as_ref().map_or(0, |i| i.live.interval()).max(0);
        SourceState {
            info,
            max_step,
            window: Vec::with_capacity(params.window.max(MIN_WINDOW)),
            head: 0,
            interval,
            settled: Class::Steady,
            candidate: Class::Steady,
            streak: 0,
            reported_volatile: false,
        }
    })
}

/// One evaluation of a full window: classify, apply hysteresis, move the interval.
fn evaluate(
    st: &mut SourceState,
    r: Reading,
    params: &AdaptiveParams,
    c: &Counters,
    label: &str,
    out: &mut Out,
) {
    let hysteresis = params.hysteresis.max(1);
    let (cv, step) = st.stats();
    let step_over = st.max_step.is_some_and(|t| step >= t);
    let class = if cv >= params.volatile_cv || step_over {
        Class::Volatile
    } else if cv <= params.calm_cv {
        Class::Calm
    } else {
        Class::Steady
    };

    let mut flipped = false;
    if class == st.settled {
        st.candidate = class;
        st.streak = 0;
    } else {
        if class == st.candidate {
            st.streak += 1;
        } else {
            st.candidate = class;
            st.streak = 1;
        }
        if st.streak >= hysteresis {
            st.settled = class;
            st.streak = 0;
            flipped = true;
        } else {
            debug!(
                "{label}: {} looks {} (cv {}, max step {}), {}/{hysteresis} evaluations, still {}",
                st.name(),
                class.as_str(),
                Approx(cv),
                st.shown(step),
                st.streak,
                st.settled.as_str()
            );
            return;
        }
    }

    if flipped {
        debug!(
            "{label}: {} now {} (cv {}, max step {})",
            st.name(),
            class.as_str(),
            Approx(cv),
            st.shown(step)
        );
        let volatile = match class {
            Class::Volatile => {
                c.inc(C_VOLATILE);
                st.reported_volatile = true;
                Some(true)
            }
            Class::Calm => {
                c.inc(C_CALM);
                std::mem::take(&mut st.reported_volatile).then_some(false)
            }
            Class::Steady => None,
        };
        if let Some(volatile) = volatile {
            out.emit(Item::Change(Change {
                source: r.source,
                ts: r.ts,
                volatile,
                score: cv as f32,
            }));
        }
    }

    if st.interval <= 0 {
        return;
    }
    let cur = st.interval;
    let new = match class {
        Class::Volatile => (cur / 2).max(params.min).min(cur),
        Class::Calm => cur.saturating_mul(2).min(params.max).max(cur),
        Class::Steady => cur,
    };
    if new != cur {
        debug!(
            "{label}: {} {} (cv {}) -> interval {} (was {})",
            st.name(),
            class.as_str(),
            Approx(cv),
            Dur(new),
            Dur(cur)
        );
        st.interval = new;
        c.inc(C_INTERVAL_CHANGES);
        out.feedback(r.source, new);
        st.restart();
    }
}

impl Stage for Adaptive {
    fn on_item(&mut self, item: Item, out: &mut Out) {
        out.emit(item);
        if let Item::Reading(r) = item {
            self.counters.inc(C_IN);
            self.on_reading(r, out);
        }
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

// ---------------------------------------------------------------------------------------
// The kind: parameters and setup.

use crate::config::StageSpec;
use crate::config::duration::format_duration;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::Setup;
use crate::plugins::params::{Reader, as_dur, int_in, non_negative, positive};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Role, Unavailable, params_of};

/// The shortest sampling interval a source may be moved to.
const MIN_EVERY: Micros = 100_000;

pub const KIND: Kind = Kind {
    role: Role::Stage,
    name: "adaptive",
    version: env!("CARGO_PKG_VERSION"),
    doc: "measures each source's volatility and moves its sampling interval within [min, max]",
    params: &[
        Param::new(Spec {
            range: Some((2.0, 1000.0)),
            default: "10",
            doc: "readings per volatility window",
            hint: "use 2 to 1000 readings (default 10)",
            ..Spec::new("window", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "\"2s\"",
            doc: "shortest sampling interval (at least 100ms)",
            ..Spec::new("min", Want::Duration)
        }),
        Param::new(Spec {
            default: "\"5m\"",
            doc: "longest sampling interval",
            ..Spec::new("max", Want::Duration)
        }),
        Param::new(Spec {
            range: Some((1.0, 100.0)),
            default: "3",
            doc: "evaluations in a row before the class changes",
            hint: "use 1 to 100 evaluations (default 3)",
            ..Spec::new("hysteresis", Want::WholeNumber)
        }),
        Param::new(Spec {
            default: "0.05",
            doc: "coefficient of variation above which a source is volatile",
            ..Spec::new("volatile_cv", Want::Number)
        }),
        Param::new(Spec {
            default: "0.01",
            doc: "coefficient of variation below which a source is calm",
            ..Spec::new("calm_cv", Want::Number)
        }),
        Param::only(
            Flow::Number,
            Spec {
                doc: "a step between readings at least this large makes the source volatile (per source: a table)",
                ..Spec::new("max_step", Want::Number)
            },
        ),
    ],
    make: Make::Stage { parse, setup },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut a = AdaptiveParams::default();
    for p in r.params() {
        match p.key.as_str() {
            "window" | "hysteresis" => {
                match int_in(&p.value, &KIND.param(&p.key).expect("declared").spec) {
                    Ok(w) if p.key == "window" => a.window = w as usize,
                    Ok(h) => a.hysteresis = h as u32,
                    Err(e) => r.bad(p, e),
                }
            }
            "min" | "max" => match as_dur(&p.value) {
                Ok(d) if d < MIN_EVERY => r.bad(
                    p,
                    (
                        format!("{} is too short", format_duration(d)),
                        Some("the sampling interval must be at least 100ms".into()),
                    ),
                ),
                Ok(d) if p.key == "min" => a.min = d,
                Ok(d) => a.max = d,
                Err(e) => r.bad(p, e),
            },
            "volatile_cv" | "calm_cv" => match non_negative(&p.value) {
                Ok(v) if p.key == "calm_cv" => a.calm_cv = v,
                Ok(v) => a.volatile_cv = v,
                Err(e) => r.bad(p, e),
            },
            "max_step" => a.max_step = r.per_source(p, positive).unwrap_or_default(),
            _ => {}
        }
    }
    if a.min > a.max {
        let at = line_of(r, ["min", "max"]);
        let msg = format!(
            "stage '{}': min ({}) is greater than max ({})",
            r.name,
            format_duration(a.min),
            format_duration(a.max)
        );
        r.bad_at(
            at,
            msg,
            Some("the sampling interval moves within [min, max]; defaults are 2s and 5m".into()),
        );
    }
    if a.calm_cv >= a.volatile_cv {
        let at = line_of(r, ["calm_cv", "volatile_cv"]);
        let msg = format!(
            "stage '{}': calm_cv ({}) must be less than volatile_cv ({})",
            r.name, a.calm_cv, a.volatile_cv
        );
        r.bad_at(
            at,
            msg,
            Some("defaults are calm_cv = 0.01 and volatile_cv = 0.05".into()),
        );
    }
    Arc::new(a)
}

/// The line of the first of `keys` given, else the node's.
fn line_of(r: &Reader, keys: [&str; 2]) -> usize {
    keys.iter()
        .find_map(|k| r.get(k))
        .map_or(r.line, |p| p.line)
}

fn setup(spec: &StageSpec, s: &mut Setup) -> Result<Box<dyn Stage>, Unavailable> {
    let p = params_of::<AdaptiveParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    Ok(Box::new(
        Adaptive::new(p.clone(), s.parts.registry.clone()).with_name(&spec.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::stage::Feedback;
    use crate::graph::{ShortText, Value, ValueKind};

    const S: Micros = 1_000_000;

    fn params() -> AdaptiveParams {
        AdaptiveParams {
            window: 4,
            min: 2 * S,
            max: 40 * S,
            hysteresis: 3,
            volatile_cv: 0.05,
            calm_cv: 0.01,
            max_step: PerSource::none(),
        }
    }

    /// A stage and the id of `system:cpu_temp`, whose interval is `interval`.
    fn setup(params: AdaptiveParams, interval: Micros) -> (Adaptive, Arc<Registry>, SourceId) {
        let reg = Arc::new(Registry::new());
        let info = reg.intern("system:cpu_temp", "celsius", ValueKind::Number);
        info.live.set_interval(interval);
        (
            Adaptive::new(params, reg.clone()).with_name("pace"),
            reg,
            info.id,
        )
    }

    /// Changes and feedback, each with the index of the reading that caused it.
    type Seen = (Vec<(usize, Change)>, Vec<(usize, Feedback)>);

    /// Feed values one per second; returns (changes, feedback) with the reading index.
    fn run(a: &mut Adaptive, id: SourceId, start: usize, values: &[f64]) -> Seen {
        let (mut changes, mut feedback) = (Vec::new(), Vec::new());
        for (i, &v) in values.iter().enumerate() {
            let n = start + i;
            let r = Reading::new(id, n as Micros * S, Value::Number(v));
            let mut out = Out::default();
            a.on_item(Item::Reading(r), &mut out);
            assert_eq!(
                out.items[0],
                Item::Reading(r),
                "the reading goes first, unchanged"
            );
            for item in &out.items[1..] {
                match item {
                    Item::Change(c) => changes.push((n, *c)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            feedback.extend(out.feedback.iter().map(|f| (n, *f)));
        }
        (changes, feedback)
    }

    fn noisy(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| if i % 2 == 0 { 10.0 } else { 20.0 })
            .collect()
    }

    fn intervals(fb: &[(usize, Feedback)]) -> Vec<(usize, Micros)> {
        fb.iter().map(|(n, f)| (*n, f.interval)).collect()
    }

    #[test]
    fn constant_source_turns_calm_and_its_interval_doubles_up_to_max() {
        let (mut a, _, id) = setup(params(), 10 * S);
        let (changes, fb) = run(&mut a, id, 0, &[50.0; 30]);
        // Window full at reading 3; evaluations 3, 4, 5 agree -> calm at reading 5: 20s.
        // The window restarts, is full again at 9 -> 40s (max); then no more feedback.
        assert_eq!(intervals(&fb), vec![(5, 20 * S), (9, 40 * S)]);
        assert!(fb.iter().all(|(_, f)| f.source == id));
        assert!(changes.is_empty(), "calm from the start is not a change");
        let c = a.counters();
        assert_eq!(c.by_name("calm"), 1);
        assert_eq!(c.by_name("interval_changes"), 2);
        assert_eq!(c.by_name("in"), 30);
    }

    #[test]
    fn noisy_source_turns_volatile_and_its_interval_halves_down_to_min() {
        let (mut a, _, id) = setup(params(), 10 * S);
        let (changes, fb) = run(&mut a, id, 0, &noisy(30));
        assert_eq!(
            intervals(&fb),
            vec![(5, 5 * S), (9, 2_500_000), (13, 2 * S)]
        );
        assert_eq!(changes.len(), 1);
        let (n, c) = changes[0];
        assert_eq!(n, 5, "flips exactly at the hysteresis-th evaluation");
        assert!(c.volatile);
        assert_eq!(c.ts, 5 * S);
        assert!(c.score > 0.3, "{}", c.score);
        assert_eq!(a.counters().by_name("volatile"), 1);
    }

    #[test]
    fn a_single_outlier_does_not_flip_the_state() {
        let p = AdaptiveParams {
            hysteresis: 5,
            ..params()
        };
        let (mut a, _, id) = setup(p, 0);
        let mut values = vec![50.0; 10];
        values.push(80.0);
        values.extend([50.0; 20]);
        let (changes, _) = run(&mut a, id, 0, &values);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(a.counters().by_name("volatile"), 0);
        assert_eq!(a.counters().by_name("calm"), 1);
    }

    #[test]
    fn changes_are_emitted_exactly_on_flips() {
        let (mut a, _, id) = setup(params(), 0);
        let mut values = noisy(8);
        values.extend([50.0; 20]);
        let (changes, fb) = run(&mut a, id, 0, &values);
        assert!(fb.is_empty(), "event-driven: no feedback");
        let flips: Vec<(usize, bool)> = changes.iter().map(|(n, c)| (*n, c.volatile)).collect();
        // Volatile at the third evaluation (reading 5). The constant run fills the window
        // at reading 11; three calm evaluations later (13) it is calm again.
        assert_eq!(flips, vec![(5, true), (13, false)]);
        assert!(changes[1].1.score <= 0.01);
    }

    #[test]
    fn event_driven_sources_get_no_feedback() {
        let (mut a, _, id) = setup(params(), 0);
        let (changes, fb) = run(&mut a, id, 0, &noisy(20));
        assert!(fb.is_empty());
        assert_eq!(changes.len(), 1, "the state is still tracked");
        let (_, fb) = run(&mut a, id, 20, &[1.0; 20]);
        assert!(fb.is_empty());
        assert_eq!(a.counters().by_name("interval_changes"), 0);
    }

    #[test]
    fn max_step_threshold_makes_a_jump_volatile() {
        let p = AdaptiveParams {
            hysteresis: 1,
            max_step: PerSource {
                default: None,
                rules: vec![("cpu_temp".into(), 5.0)],
            },
            ..params()
        };
        let (mut a, reg, cpu) = setup(p, 10 * S);
        let load = reg.intern("system:load_avg", "load", ValueKind::Number);
        load.live.set_interval(10 * S);
        // cv of [100, 100, 100, 105] is about 0.02: steady on cv alone.
        let data = [100.0, 100.0, 100.0, 105.0];
        let (changes, fb) = run(&mut a, cpu, 0, &data);
        assert_eq!(changes.len(), 1);
        assert!(changes[0].1.volatile);
        assert_eq!(intervals(&fb), vec![(3, 5 * S)]);
        let (changes, fb) = run(&mut a, load.id, 0, &data);
        assert!(
            changes.is_empty() && fb.is_empty(),
            "the rule is for cpu_temp only"
        );
    }

    #[test]
    fn text_and_other_items_pass_without_effect() {
        let (mut a, _, id) = setup(params(), 10 * S);
        let mut out = Out::default();
        for t in 0..20 {
            let r = Reading::new(id, t * S, Value::Text(ShortText::new("on")));
            a.on_item(Item::Reading(r), &mut out);
        }
        let change = Item::Change(Change {
            source: id,
            ts: 0,
            volatile: true,
            score: 1.0,
        });
        a.on_item(change, &mut out);
        assert_eq!(out.items.len(), 21);
        assert_eq!(out.items[20], change);
        assert!(out.feedback.is_empty());
    }
}
