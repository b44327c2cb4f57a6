//! The filter stage: throw away what carries no information.
//!
//! Per source, in this order:
//!
//! 1. A boolean level held back by the debounce is released first if its debounce has
//!    elapsed by this reading's timestamp (exactly what a tick at that time would do), so
//!    the outcome does not depend on when ticks happen to run.
//! 2. Valid range (numbers): a value outside `[min, max]` (or NaN) is counted
//!    `out_of_range`; with [`OutOfRange::Flag`] it goes on flagged `OUT_OF_RANGE` with its
//!    value untouched and is then treated like any other reading (so a sensor stuck at
//!    an impossible value is not repeated every sample), with [`OutOfRange::Drop`] it is
//!    dropped.
//! 3. The first reading of a source always passes.
//! 4. Change detection against the last *passed* reading. Numbers: a value within the
//!    absolute deadband **or** within the relative deadband is unchanged (either band is
//!    enough to call a change noise: a user who sets both wants the quieter of the two).
//!    Comparisons are strict (`|v - last| < band`), so a change of exactly the band passes.
//!    Without any deadband every number passes. Booleans and text: unchanged means equal.
//! 5. Debounce (booleans): a level change within `debounce` of the last passed change is
//!    held back (`debounced`); the latest differing level is kept (with the timestamp at
//!    which that level was first seen in its current run). Once the debounce has elapsed
//!    -- on a later reading of the source, on a tick or on close -- and the held level
//!    still differs from the last passed one, it passes **with its own timestamp** (when it
//!    was observed; `now` only decides that the debounce has elapsed). A reading back at
//!    the last passed level cancels it (a bounce).
//! 6. Heartbeat: an unchanged reading passes anyway, flagged `HEARTBEAT`, when the last
//!    passed reading is at least `heartbeat` old; otherwise it is dropped (`deadband`,
//!    which also counts unchanged booleans and text).
//! 7. `min_interval`: anything still passing within `min_interval` of the last passed
//!    reading is dropped (`min_interval`), heartbeats and changes alike.

use std::fmt;
use std::sync::Arc;

use log::debug;

use super::PerSource;
use crate::config::duration::Dur;
use crate::graph::counters::Counters;
use crate::graph::reading::flags;
use crate::graph::registry::{Registry, SourceInfo};
use crate::graph::shown::{Approx, WithUnit};
use crate::graph::stage::{Out, Stage};
use crate::graph::{Item, Micros, Reading, SourceId, Value};

/// What to do with a reading outside its valid range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutOfRange {
    /// Keep it, flagged `OUT_OF_RANGE` (the default: never silently lose a measurement).
    #[default]
    Flag,
    /// Drop it (still counted).
    Drop,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct FilterParams {
    /// Absolute deadband: a numeric reading within this of the last passed value is dropped.
    pub deadband: PerSource<f64>,
    /// Relative deadband in percent of the last passed value's magnitude.
    pub deadband_pct: PerSource<f64>,
    /// Valid range `[min, max]` (inclusive) for numeric readings.
    pub range: PerSource<(f64, f64)>,
    pub out_of_range: OutOfRange,
    /// Boolean sources: a change within this time of the last passed change is held back;
    /// if the level still differs from the last passed one once it has elapsed, it passes
    /// (on the next reading or tick).
    pub debounce: PerSource<Micros>,
    /// At most one reading per source per this interval (heartbeats and changes alike).
    pub min_interval: PerSource<Micros>,
    /// Let an unchanged value through (flagged `HEARTBEAT`) when nothing has passed for
    /// this long, so consumers know the source is alive.
    pub heartbeat: PerSource<Micros>,
}

/// Counter names, in index order.
const COUNTER_NAMES: &[&str] = &[
    "in",
    "passed",
    "deadband",
    "min_interval",
    "debounced",
    "out_of_range",
    "heartbeat",
    "forwarded",
];
const C_IN: usize = 0;
const C_PASSED: usize = 1;
const C_DEADBAND: usize = 2;
const C_MIN_INTERVAL: usize = 3;
const C_DEBOUNCED: usize = 4;
const C_OUT_OF_RANGE: usize = 5;
const C_HEARTBEAT: usize = 6;
const C_FORWARDED: usize = 7;

/// The shortest tick the filter asks for, however short a debounce is.
const MIN_TICK: Micros = 10_000;

/// Why a reading counts as unchanged.
#[derive(Clone, Copy)]
enum Quiet {
    /// Within the absolute deadband (band, last passed value).
    Band(f64, f64),
    /// Within the relative deadband (percent, last passed value).
    Pct(f64, f64),
    /// Equal to the last passed boolean or text.
    Same,
}

impl fmt::Display for Quiet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Quiet::Band(db, p) => write!(f, "within deadband {} of {}", Approx(db), Approx(p)),
            Quiet::Pct(pct, p) => write!(f, "within deadband {}% of {}", Approx(pct), Approx(p)),
            Quiet::Same => f.write_str("unchanged"),
        }
    }
}

/// A source's rules, resolved once when the source is first seen.
#[derive(Clone, Copy, Debug, Default)]
struct Rules {
    deadband: Option<f64>,
    deadband_pct: Option<f64>,
    range: Option<(f64, f64)>,
    debounce: Option<Micros>,
    min_interval: Option<Micros>,
    heartbeat: Option<Micros>,
}

struct SourceState {
    info: Option<Arc<SourceInfo>>,
    rules: Rules,
    /// The last reading that passed.
    last: Option<Reading>,
    /// Timestamp of the last passed change (what the debounce is measured from).
    last_change: Micros,
    /// A boolean level held back by the debounce.
    pending: Option<Reading>,
}

impl SourceState {
    fn new(params: &FilterParams, registry: &Registry, id: SourceId) -> SourceState {
        let info = registry.get(id);
        let rules = match &info {
            Some(i) => {
                let n: &str = &i.name;
                Rules {
                    deadband: params.deadband.for_name(n),
                    deadband_pct: params.deadband_pct.for_name(n),
                    range: params.range.for_name(n),
                    debounce: params.debounce.for_name(n).filter(|d| *d > 0),
                    min_interval: params.min_interval.for_name(n).filter(|d| *d > 0),
                    heartbeat: params.heartbeat.for_name(n).filter(|d| *d > 0),
                }
            }
            None => Rules {
                deadband: params.deadband.default,
                deadband_pct: params.deadband_pct.default,
                range: params.range.default,
                debounce: params.debounce.default.filter(|d| *d > 0),
                min_interval: params.min_interval.default.filter(|d| *d > 0),
                heartbeat: params.heartbeat.default.filter(|d| *d > 0),
            },
        };
        SourceState {
            info,
            rules,
            last: None,
            last_change: 0,
            pending: None,
        }
    }

    fn name(&self) -> &str {
        self.info.as_ref().map_or("?", |i| &i.name)
    }

    /// A value of this source for a log line: rounded, with the source's unit.
    fn shown(&self, v: Value) -> WithUnit<'_> {
        WithUnit(v, self.info.as_ref().map_or("", |i| &i.unit))
    }

    /// Let the held-back level through if its debounce has elapsed by `now`.
    fn release_due(&mut self, now: Micros, c: &Counters, label: &str, out: &mut Out) {
        let (Some(p), Some(db)) = (self.pending, self.rules.debounce) else {
            return;
        };
        if now < self.last_change.saturating_add(db) {
            return;
        }
        self.pending = None;
        if let (Some(mi), Some(last)) = (self.rules.min_interval, self.last)
            && p.ts - last.ts < mi
        {
            c.inc(C_MIN_INTERVAL);
            debug!(
                "{label}: {} {} settled but within min_interval {} of the last passed reading, dropped",
                self.name(),
                self.shown(p.value),
                Dur(mi)
            );
            return;
        }
        debug!(
            "{label}: {} {} settled after debounce {}, passed",
            self.name(),
            self.shown(p.value),
            Dur(db)
        );
        self.pass(p, true, c, out);
    }

    fn pass(&mut self, r: Reading, changed: bool, c: &Counters, out: &mut Out) {
        c.inc(C_PASSED);
        if changed {
            self.last_change = r.ts;
        }
        self.last = Some(r);
        self.pending = None;
        out.emit(Item::Reading(r));
    }

    fn on_reading(
        &mut self,
        mut r: Reading,
        mode: OutOfRange,
        c: &Counters,
        label: &str,
        out: &mut Out,
    ) {
        self.release_due(r.ts, c, label, out);

        if let (Value::Number(v), Some((lo, hi))) = (r.value, self.rules.range)
            && !(v >= lo && v <= hi)
        {
            c.inc(C_OUT_OF_RANGE);
            match mode {
                OutOfRange::Drop => {
                    debug!(
                        "{label}: {} {} outside range [{}, {}], dropped",
                        self.name(),
                        self.shown(Value::Number(v)),
                        Approx(lo),
                        Approx(hi)
                    );
                    return;
                }
                OutOfRange::Flag => {
                    debug!(
                        "{label}: {} {} outside range [{}, {}], flagged (kept as measured)",
                        self.name(),
                        self.shown(Value::Number(v)),
                        Approx(lo),
                        Approx(hi)
                    );
                    r.flags |= flags::OUT_OF_RANGE;
                }
            }
        }

        let Some(last) = self.last else {
            debug!(
                "{label}: {} {} first reading, passed",
                self.name(),
                self.shown(r.value)
            );
            self.pass(r, true, c, out);
            return;
        };

        let quiet = match (r.value, last.value) {
            (Value::Number(v), Value::Number(p)) => {
                let d = (v - p).abs();
                match (self.rules.deadband, self.rules.deadband_pct) {
                    (Some(db), _) if d < db => Some(Quiet::Band(db, p)),
                    (_, Some(pct)) if d < pct / 100.0 * p.abs() => Some(Quiet::Pct(pct, p)),
                    _ => None,
                }
            }
            (a, b) => (a == b).then_some(Quiet::Same),
        };
        let changed = quiet.is_none();

        if matches!(r.value, Value::Bool(_)) {
            if changed {
                if let Some(db) = self.rules.debounce
                    && r.ts - self.last_change < db
                {
                    // Keep the start of the current run of this level.
                    if self.pending.is_none_or(|p| p.value != r.value) {
                        self.pending = Some(r);
                    }
                    c.inc(C_DEBOUNCED);
                    debug!(
                        "{label}: {} {} within debounce {} of the last change, held back",
                        self.name(),
                        self.shown(r.value),
                        Dur(db)
                    );
                    return;
                }
            } else if self.pending.take().is_some() {
                debug!(
                    "{label}: {} back to {} within debounce, bounce ignored",
                    self.name(),
                    r.value
                );
            }
        }

        let age = r.ts - last.ts;
        let mut heartbeat = false;
        if !changed {
            match self.rules.heartbeat {
                Some(hb) if age >= hb => {
                    heartbeat = true;
                    r.flags |= flags::HEARTBEAT;
                }
                _ => {
                    c.inc(C_DEADBAND);
                    if let Some(q) = quiet {
                        debug!(
                            "{label}: {} {} {q}, dropped",
                            self.name(),
                            self.shown(r.value)
                        );
                    }
                    return;
                }
            }
        }

        if let Some(mi) = self.rules.min_interval
            && age < mi
        {
            c.inc(C_MIN_INTERVAL);
            debug!(
                "{label}: {} {} within min_interval {} of the last passed reading, dropped",
                self.name(),
                self.shown(r.value),
                Dur(mi)
            );
            return;
        }

        if heartbeat {
            c.inc(C_HEARTBEAT);
            if let Some(q) = quiet {
                debug!(
                    "{label}: {} {} {q} but nothing passed for {}, passed as heartbeat",
                    self.name(),
                    self.shown(r.value),
                    Dur(age)
                );
            }
        } else {
            debug!(
                "{label}: {} {} changed, passed",
                self.name(),
                self.shown(r.value)
            );
        }
        self.pass(r, changed, c, out);
    }
}

pub struct Filter {
    params: FilterParams,
    registry: Arc<Registry>,
    counters: Arc<Counters>,
    /// Log prefix: `filter` or `filter <name>`.
    label: String,
    sources: Vec<Option<SourceState>>,
}

impl Filter {
    pub fn new(params: FilterParams, registry: Arc<Registry>) -> Filter {
        Filter {
            params,
            registry,
            counters: Arc::new(Counters::new(COUNTER_NAMES)),
            label: "filter".into(),
            sources: Vec::new(),
        }
    }

    /// Name the stage in log lines (`filter quiet: ...`).
    pub fn with_name(mut self, name: &str) -> Filter {
        self.label = format!("filter {name}");
        self
    }
}

impl Stage for Filter {
    fn on_item(&mut self, item: Item, out: &mut Out) {
        let Item::Reading(r) = item else {
            self.counters.inc(C_FORWARDED);
            out.emit(item);
            return;
        };
        self.counters.inc(C_IN);
        let idx = r.source.index();
        if self.sources.len() <= idx {
            self.sources.resize_with(idx + 1, || None);
        }
        let st = self.sources[idx]
            .get_or_insert_with(|| SourceState::new(&self.params, &self.registry, r.source));
        st.on_reading(
            r,
            self.params.out_of_range,
            &self.counters,
            &self.label,
            out,
        );
    }

    /// Only when a debounce is configured: the smallest one, at least 10ms.
    /// The earliest moment a held-back level's debounce ends (`None` with nothing held).
    fn next_tick(&self) -> Option<Micros> {
        self.sources
            .iter()
            .flatten()
            .filter(|st| st.pending.is_some())
            .filter_map(|st| {
                st.rules
                    .debounce
                    .map(|db| st.last_change.saturating_add(db.max(MIN_TICK)))
            })
            .min()
    }

    fn on_tick(&mut self, now: Micros, out: &mut Out) {
        for st in self.sources.iter_mut().flatten() {
            st.release_due(now, &self.counters, &self.label, out);
        }
    }

    /// Held-back levels whose debounce has elapsed pass; a level still inside its
    /// debounce window is dropped (it may be a bounce).
    fn on_close(&mut self, now: Micros, out: &mut Out) {
        self.on_tick(now, out);
    }

    fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }
}

// ---------------------------------------------------------------------------------------
// The kind: parameters and setup.

use crate::config::StageSpec;
use crate::config::expect::Want;
use crate::config::spec::Spec;
use crate::plugins::Setup;
use crate::plugins::params::{Reader, describe, non_negative, positive_dur, range_pair};
use crate::plugins::{Flow, Kind, Make, Param, ParamsBox, Role, Unavailable, params_of};

pub const KIND: Kind = Kind {
    role: Role::Stage,
    name: "filter",
    version: env!("CARGO_PKG_VERSION"),
    doc: "drops what carries no information: deadband, range, debounce, min interval; heartbeat keeps it alive",
    params: &[
        Param::only(
            Flow::Number,
            Spec {
                doc: "drop a numeric reading within this of the last passed value (per source: a table)",
                ..Spec::new("deadband", Want::Number)
            },
        ),
        Param::only(
            Flow::Number,
            Spec {
                doc: "the same, in percent of the last passed value",
                ..Spec::new("deadband_pct", Want::Number)
            },
        ),
        Param::only(
            Flow::Number,
            Spec {
                doc: "valid [min, max] of numeric readings",
                ..Spec::new("range", Want::TextList)
            },
        )
        .taking("[min, max], e.g. [-40.0, 125.0]"),
        Param::new(Spec {
            default: "\"flag\"",
            doc: "what happens to a reading outside range: \"flag\" or \"drop\"",
            ..Spec::new("out_of_range", Want::Text)
        }),
        Param::only(
            Flow::Bool,
            Spec {
                doc: "hold back a boolean change within this of the last passed one",
                ..Spec::new("debounce", Want::Duration)
            },
        ),
        Param::new(Spec {
            doc: "at most one reading per source per this interval",
            ..Spec::new("min_interval", Want::Duration)
        }),
        Param::new(Spec {
            doc: "let an unchanged value through when nothing passed for this long",
            ..Spec::new("heartbeat", Want::Duration)
        }),
    ],
    make: Make::Stage { parse, setup },
};

fn parse(r: &mut Reader) -> ParamsBox {
    let mut f = FilterParams::default();
    for p in r.params() {
        match p.key.as_str() {
            "deadband" => f.deadband = r.per_source(p, non_negative).unwrap_or_default(),
            "deadband_pct" => f.deadband_pct = r.per_source(p, non_negative).unwrap_or_default(),
            "range" => f.range = r.per_source(p, range_pair).unwrap_or_default(),
            "debounce" => f.debounce = r.per_source(p, positive_dur).unwrap_or_default(),
            "min_interval" => f.min_interval = r.per_source(p, positive_dur).unwrap_or_default(),
            "heartbeat" => f.heartbeat = r.per_source(p, positive_dur).unwrap_or_default(),
            "out_of_range" => match &p.value {
                toml::Value::String(s) if s == "flag" => f.out_of_range = OutOfRange::Flag,
                toml::Value::String(s) if s == "drop" => f.out_of_range = OutOfRange::Drop,
                toml::Value::String(s) => r.bad(
                    p,
                    (
                        format!("unknown choice '{s}'"),
                        Some(crate::config::suggest::hint(
                            s,
                            "choices",
                            &["flag", "drop"],
                        )),
                    ),
                ),
                other => r.bad(
                    p,
                    (
                        format!("expected \"flag\" or \"drop\", found {}", describe(other)),
                        None,
                    ),
                ),
            },
            _ => {}
        }
    }
    if f.out_of_range == OutOfRange::Drop
        && !f.range.is_set()
        && let Some(p) = r.get("out_of_range")
    {
        r.bad(
            p,
            (
                "out_of_range = \"drop\" without a range does nothing".into(),
                Some("add range = [min, max] (or a table per source)".into()),
            ),
        );
    }
    Arc::new(f)
}

fn setup(spec: &StageSpec, s: &mut Setup) -> Result<Box<dyn Stage>, Unavailable> {
    let p = params_of::<FilterParams>(&spec.params)
        .ok_or_else(|| Unavailable::Failed("parameters of another kind".into()))?;
    Ok(Box::new(
        Filter::new(p.clone(), s.parts.registry.clone()).with_name(&spec.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Prune, PruneTarget, ShortText, ValueKind};

    const MS: Micros = 1_000;
    const S: Micros = 1_000_000;

    struct Ids {
        cpu: SourceId,
        load: SourceId,
        pin: SourceId,
        state: SourceId,
    }

    fn setup(params: FilterParams) -> (Filter, Ids) {
        let reg = Arc::new(Registry::new());
        let ids = Ids {
            cpu: reg
                .intern("system:cpu_temp", "celsius", ValueKind::Number)
                .id,
            load: reg.intern("system:load_avg", "load", ValueKind::Number).id,
            pin: reg.intern("gpio:17", "boolean", ValueKind::Bool).id,
            state: reg.intern("system:power", "", ValueKind::Text).id,
        };
        (Filter::new(params, reg).with_name("quiet"), ids)
    }

    fn feed(f: &mut Filter, source: SourceId, ts: Micros, value: Value) -> Vec<Item> {
        let mut out = Out::default();
        f.on_item(Item::Reading(Reading::new(source, ts, value)), &mut out);
        out.items
    }

    fn num(f: &mut Filter, source: SourceId, ts: Micros, v: f64) -> Vec<Item> {
        feed(f, source, ts, Value::Number(v))
    }

    fn bool_(f: &mut Filter, source: SourceId, ts: Micros, b: bool) -> Vec<Item> {
        feed(f, source, ts, Value::Bool(b))
    }

    fn tick(f: &mut Filter, now: Micros) -> Vec<Item> {
        let mut out = Out::default();
        f.on_tick(now, &mut out);
        out.items
    }

    fn reading(items: &[Item]) -> Reading {
        match items {
            [Item::Reading(r)] => *r,
            other => panic!("expected one reading, got {other:?}"),
        }
    }

    fn count(f: &Filter, name: &str) -> u64 {
        f.counters().by_name(name)
    }

    #[test]
    fn deadband_drops_small_changes_and_passes_a_larger_one() {
        let (mut f, ids) = setup(FilterParams {
            deadband: PerSource::all(0.5),
            ..Default::default()
        });
        assert_eq!(num(&mut f, ids.cpu, 0, 48.0).len(), 1);
        assert!(num(&mut f, ids.cpu, S, 48.2).is_empty());
        assert!(num(&mut f, ids.cpu, 2 * S, 47.6).is_empty());
        // Measured against the last *passed* value (48.0), so drift is not lost.
        let r = reading(&num(&mut f, ids.cpu, 3 * S, 48.6));
        assert_eq!(r.value, Value::Number(48.6));
        assert_eq!(r.flags, 0);
        assert!(num(&mut f, ids.cpu, 4 * S, 48.3).is_empty());
        assert_eq!(count(&f, "deadband"), 3);
        assert_eq!(count(&f, "passed"), 2);
        assert_eq!(count(&f, "in"), 5);
    }

    #[test]
    fn relative_deadband_scales_with_the_value() {
        let (mut f, ids) = setup(FilterParams {
            deadband_pct: PerSource::all(1.0),
            ..Default::default()
        });
        num(&mut f, ids.cpu, 0, 1000.0);
        assert!(num(&mut f, ids.cpu, S, 1009.0).is_empty(), "0.9% is noise");
        assert_eq!(
            num(&mut f, ids.cpu, 2 * S, 1011.0).len(),
            1,
            "1.1% is a change"
        );
        num(&mut f, ids.load, 0, 0.5);
        assert_eq!(
            num(&mut f, ids.load, S, 0.51).len(),
            1,
            "2% of a small value"
        );
    }

    #[test]
    fn either_deadband_is_enough_to_drop() {
        let (mut f, ids) = setup(FilterParams {
            deadband: PerSource::all(0.5),
            deadband_pct: PerSource::all(10.0),
            ..Default::default()
        });
        num(&mut f, ids.cpu, 0, 100.0);
        assert!(
            num(&mut f, ids.cpu, S, 105.0).is_empty(),
            "outside 0.5 but within 10%"
        );
        num(&mut f, ids.load, 0, 1.0);
        assert!(
            num(&mut f, ids.load, S, 1.3).is_empty(),
            "outside 10% but within 0.5"
        );
        assert_eq!(num(&mut f, ids.load, 2 * S, 1.6).len(), 1);
    }

    #[test]
    fn first_reading_always_passes() {
        let (mut f, ids) = setup(FilterParams {
            deadband: PerSource::all(1000.0),
            min_interval: PerSource::all(3600 * S),
            ..Default::default()
        });
        assert_eq!(
            reading(&num(&mut f, ids.cpu, 5, 0.0)).value,
            Value::Number(0.0)
        );
        assert_eq!(reading(&num(&mut f, ids.load, 5, 0.0)).source, ids.load);
    }

    #[test]
    fn out_of_range_is_flagged_not_clamped_and_counted() {
        let (mut f, ids) = setup(FilterParams {
            range: PerSource::all((-40.0, 125.0)),
            ..Default::default()
        });
        let r = reading(&num(&mut f, ids.cpu, 0, 130.5));
        assert_eq!(r.value, Value::Number(130.5));
        assert_eq!(r.flags & flags::OUT_OF_RANGE, flags::OUT_OF_RANGE);
        let ok = reading(&num(&mut f, ids.cpu, S, 125.0));
        assert_eq!(ok.flags, 0, "the bounds are inclusive");
        let nan = reading(&num(&mut f, ids.cpu, 2 * S, f64::NAN));
        assert_eq!(nan.flags, flags::OUT_OF_RANGE);
        assert_eq!(count(&f, "out_of_range"), 2);
    }

    #[test]
    fn drop_mode_drops_out_of_range() {
        let (mut f, ids) = setup(FilterParams {
            range: PerSource::all((0.0, 100.0)),
            out_of_range: OutOfRange::Drop,
            ..Default::default()
        });
        assert!(num(&mut f, ids.cpu, 0, -1.0).is_empty());
        assert!(num(&mut f, ids.cpu, S, 100.1).is_empty());
        assert_eq!(num(&mut f, ids.cpu, 2 * S, 50.0).len(), 1);
        assert_eq!(count(&f, "out_of_range"), 2);
        assert_eq!(count(&f, "passed"), 1);
    }

    #[test]
    fn min_interval_limits_the_rate() {
        let (mut f, ids) = setup(FilterParams {
            min_interval: PerSource::all(10 * S),
            ..Default::default()
        });
        assert_eq!(num(&mut f, ids.cpu, 0, 1.0).len(), 1);
        assert!(num(&mut f, ids.cpu, 5 * S, 2.0).is_empty());
        assert!(num(&mut f, ids.cpu, 9 * S, 3.0).is_empty());
        assert_eq!(
            reading(&num(&mut f, ids.cpu, 10 * S, 4.0)).value,
            Value::Number(4.0)
        );
        // Other sources have their own clock.
        assert_eq!(num(&mut f, ids.load, 11 * S, 1.0).len(), 1);
        assert_eq!(count(&f, "min_interval"), 2);
    }

    #[test]
    fn heartbeat_lets_an_unchanged_value_through_and_flags_it() {
        let (mut f, ids) = setup(FilterParams {
            deadband: PerSource::all(0.5),
            heartbeat: PerSource::all(300 * S),
            ..Default::default()
        });
        num(&mut f, ids.cpu, 0, 48.0);
        for t in 1..30 {
            assert!(num(&mut f, ids.cpu, t * 10 * S, 48.1).is_empty());
        }
        let hb = reading(&num(&mut f, ids.cpu, 300 * S, 48.1));
        assert_eq!(hb.flags, flags::HEARTBEAT);
        assert_eq!(hb.value, Value::Number(48.1));
        // The heartbeat restarts the clock.
        assert!(num(&mut f, ids.cpu, 310 * S, 48.1).is_empty());
        // A real change is not a heartbeat.
        assert_eq!(reading(&num(&mut f, ids.cpu, 320 * S, 49.0)).flags, 0);
        assert_eq!(count(&f, "heartbeat"), 1);
    }

    #[test]
    fn debounce_suppresses_a_bounce_and_the_tick_releases_a_settled_change() {
        let (mut f, ids) = setup(FilterParams {
            debounce: PerSource::all(50 * MS),
            ..Default::default()
        });
        assert_eq!(f.next_tick(), None, "nothing held, no wake-ups");
        assert_eq!(bool_(&mut f, ids.pin, 0, false).len(), 1);
        // A bounce: up and straight back down within the debounce.
        assert!(bool_(&mut f, ids.pin, 10 * MS, true).is_empty());
        assert_eq!(f.next_tick(), Some(50 * MS), "wake when the debounce ends");
        assert!(bool_(&mut f, ids.pin, 20 * MS, false).is_empty());
        assert!(
            tick(&mut f, 100 * MS).is_empty(),
            "the bounce never reaches the store"
        );
        // A real press: passes at once (the debounce since the last change has elapsed).
        assert_eq!(
            reading(&bool_(&mut f, ids.pin, 1000 * MS, true)).value,
            Value::Bool(true)
        );
        // Released at 1010ms, bouncing, settles low.
        assert!(bool_(&mut f, ids.pin, 1010 * MS, false).is_empty());
        assert!(bool_(&mut f, ids.pin, 1020 * MS, true).is_empty());
        assert!(bool_(&mut f, ids.pin, 1030 * MS, false).is_empty());
        assert_eq!(f.next_tick(), Some(1050 * MS));
        assert!(
            tick(&mut f, 1040 * MS).is_empty(),
            "debounce not elapsed yet"
        );
        let r = reading(&tick(&mut f, 1060 * MS));
        assert_eq!(r.value, Value::Bool(false));
        assert_eq!(r.ts, 1030 * MS, "released with the time the level was seen");
        assert!(tick(&mut f, 2000 * MS).is_empty());
        assert_eq!(f.next_tick(), None);
        assert_eq!(count(&f, "debounced"), 3);
        assert_eq!(count(&f, "passed"), 3);
    }

    #[test]
    fn debounce_releases_on_a_later_reading_without_ticks() {
        let (mut f, ids) = setup(FilterParams {
            debounce: PerSource::all(50 * MS),
            ..Default::default()
        });
        bool_(&mut f, ids.pin, 0, false);
        assert!(bool_(&mut f, ids.pin, 10 * MS, true).is_empty());
        // Still high 90ms later: the held level passes first, the repeat is unchanged.
        let items = bool_(&mut f, ids.pin, 100 * MS, true);
        let r = reading(&items);
        assert_eq!((r.ts, r.value), (10 * MS, Value::Bool(true)));
    }

    #[test]
    fn no_tick_without_a_held_level() {
        let (mut f, ids) = setup(FilterParams {
            deadband: PerSource::all(0.5),
            ..Default::default()
        });
        num(&mut f, ids.cpu, 0, 1.0);
        assert_eq!(f.next_tick(), None);
        let (mut f, ids) = setup(FilterParams {
            debounce: PerSource::all(MS),
            ..Default::default()
        });
        bool_(&mut f, ids.pin, 0, false);
        assert!(bool_(&mut f, ids.pin, MS / 2, true).is_empty());
        assert_eq!(
            f.next_tick(),
            Some(10 * MS),
            "ticks are never closer than 10ms"
        );
    }

    #[test]
    fn unchanged_bool_and_text_are_dropped() {
        let (mut f, ids) = setup(FilterParams::default());
        assert_eq!(bool_(&mut f, ids.pin, 0, true).len(), 1);
        assert!(bool_(&mut f, ids.pin, S, true).is_empty());
        assert_eq!(bool_(&mut f, ids.pin, 2 * S, false).len(), 1);
        let text = |s| Value::Text(ShortText::new(s));
        assert_eq!(feed(&mut f, ids.state, 0, text("charging")).len(), 1);
        assert!(feed(&mut f, ids.state, S, text("charging")).is_empty());
        assert_eq!(feed(&mut f, ids.state, 2 * S, text("full")).len(), 1);
        assert_eq!(count(&f, "deadband"), 2);
    }

    #[test]
    fn numbers_without_a_deadband_all_pass() {
        let (mut f, ids) = setup(FilterParams::default());
        for t in 0..3 {
            assert_eq!(num(&mut f, ids.cpu, t * S, 1.0).len(), 1);
        }
    }

    #[test]
    fn non_readings_are_forwarded_unchanged() {
        let (mut f, _) = setup(FilterParams {
            deadband: PerSource::all(100.0),
            ..Default::default()
        });
        let prune = Item::Prune(Prune {
            target: PruneTarget::Raw,
            older_than: 5,
            max: 10,
        });
        let mut out = Out::default();
        f.on_item(prune, &mut out);
        assert_eq!(out.items, vec![prune]);
        assert_eq!(count(&f, "forwarded"), 1);
        assert_eq!(count(&f, "in"), 0);
    }

    #[test]
    fn rules_apply_per_source() {
        let (mut f, ids) = setup(FilterParams {
            deadband: PerSource {
                default: None,
                rules: vec![("cpu_temp".into(), 0.5)],
            },
            ..Default::default()
        });
        num(&mut f, ids.cpu, 0, 48.0);
        num(&mut f, ids.load, 0, 0.40);
        assert!(num(&mut f, ids.cpu, S, 48.2).is_empty());
        assert_eq!(
            num(&mut f, ids.load, S, 0.42).len(),
            1,
            "no deadband for load_avg"
        );
    }

    #[test]
    fn durations_read_well_in_logs() {
        assert_eq!(Dur(50 * MS).to_string(), "50ms");
        assert_eq!(Dur(10 * S).to_string(), "10s");
        assert_eq!(Dur(300 * S).to_string(), "5m");
        assert_eq!(Dur(1500 * MS).to_string(), "1500ms");
    }
}
