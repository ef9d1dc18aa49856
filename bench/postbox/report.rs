//! The one table `make bench` prints: workload, ours, mio, the C server,
//! the ratios ours / mio and ours / C, share of the raw limit, and whether
//! the target (against mio) is met.

use std::fmt::Write;

use crate::Plan;

/// What a figure measures, and how to print it.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    PerSecond(&'static str),
    /// A count per message or line, such as system calls.
    PerItem(&'static str),
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Kib,
    Bytes,
    Ticks,
}

impl Unit {
    fn format(self, value: f64) -> String {
        match self {
            Unit::PerSecond(what) => format!("{} {what}/s", thousands(value)),
            Unit::PerItem(what) => format!("{} per {what}", three_digits(value)),
            Unit::Nanoseconds => format!("{value:.0} ns"),
            Unit::Microseconds => format!("{value:.1} µs"),
            Unit::Milliseconds => format!("{value:.2} ms"),
            Unit::Kib => format!("{} KiB", thousands(value)),
            Unit::Bytes => format!("{value:.0} B"),
            Unit::Ticks => format!("{value:.0} ticks"),
        }
    }
}

/// The target for a row.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// No target: the row is context (the raw limits).
    None,
    /// ours / mio ≥ 1.0 (more is better).
    AtLeastMio,
    /// ours / mio ≥ 1.0 and at least this share of the raw limit.
    AtLeastMioAndRaw(f64),
    /// ours / mio ≤ this ratio (less is better).
    AtMostMioTimes(f64),
    /// ours ≤ mio (less is better).
    AtMostMio,
    /// ours is exactly zero.
    Zero,
    /// ours below this many milliseconds.
    UnderMs(f64),
}

impl Target {
    /// Whether a ratio of `ratio` would meet this target (for the spread).
    fn ratio_meets(self, ratio: f64) -> bool {
        match self {
            Target::AtLeastMio | Target::AtLeastMioAndRaw(_) => ratio >= 1.0,
            Target::AtMostMioTimes(limit) => ratio <= limit,
            Target::AtMostMio => ratio <= 1.0,
            Target::None | Target::Zero | Target::UnderMs(_) => false,
        }
    }

    fn verdict(self, ours: f64, mio: Option<f64>, raw_share: Option<f64>) -> String {
        let ratio = mio.map(|mio| ours / mio);
        let met = match (self, ratio) {
            (Target::None, _) => return String::new(),
            (Target::AtLeastMio, Some(r)) => r >= 1.0,
            (Target::AtLeastMioAndRaw(share), Some(r)) => r >= 1.0 && raw_share.is_some_and(|s| s >= share),
            (Target::AtMostMioTimes(limit), Some(r)) => r <= limit,
            (Target::AtMostMio, Some(r)) => r <= 1.0,
            (Target::Zero, _) => ours == 0.0,
            (Target::UnderMs(limit), _) => ours < limit,
            (_, None) => return "?".to_string(),
        };
        let goal = match self {
            Target::None => unreachable!("returned above"),
            Target::AtLeastMio => "≥ 1.0 × mio".to_string(),
            Target::AtLeastMioAndRaw(share) => format!("≥ 1.0 × mio, ≥ {share:.0} % raw"),
            Target::AtMostMioTimes(limit) => format!("≤ {limit:.1} × mio"),
            Target::AtMostMio => "≤ mio".to_string(),
            Target::Zero => "0".to_string(),
            Target::UnderMs(limit) => format!("< {limit:.0} ms"),
        };
        format!("{}: {goal}", if met { "met" } else { "MISSED" })
    }
}

/// The C server's figure for a row.
#[derive(Debug, Clone, Copy)]
pub enum CFigure {
    /// The row is not one the C server runs (raw limits, dispatch, variants of ours).
    NotRun,
    /// The row is one it runs, but it could not be built: `n/a`.
    Unavailable,
    Value(f64),
}

impl CFigure {
    /// From the C server's runs of a row it takes part in.
    fn of_runs(runs: &[f64]) -> CFigure {
        if runs.is_empty() {
            CFigure::Unavailable
        } else {
            CFigure::Value(median(runs))
        }
    }

    fn value(self) -> Option<f64> {
        match self {
            CFigure::Value(value) => Some(value),
            CFigure::NotRun | CFigure::Unavailable => None,
        }
    }
}

const COLUMNS: usize = 8;
const RATIO_MIO: usize = 4;
const RATIO_C: usize = 5;
const VERDICT: usize = 7;

struct Row {
    cells: [String; COLUMNS],
}

/// The rows gathered so far, and the conditions of the run.
pub struct Table {
    plan: Plan,
    rows: Vec<Row>,
}

const HEADER: [&str; COLUMNS] =
    ["workload", "ours", "mio", "C", "ours / mio", "ours / C", "% of raw limit (ours / mio / C)", "target"];

impl Table {
    pub fn new(plan: Plan) -> Table {
        Table { plan, rows: Vec::new() }
    }

    /// Adds a row; `raw_limit` (same unit as ours) gives the percentage column.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        workload: impl Into<String>,
        unit: Unit,
        ours: f64,
        mio: Option<f64>,
        c: CFigure,
        raw_limit: Option<f64>,
        target: Target,
    ) {
        let share = |value: f64| raw_limit.map(|limit| 100.0 * value / limit);
        let shares: Vec<String> = [Some(ours), mio, c.value()]
            .into_iter()
            .flatten()
            .filter_map(share)
            .map(|s| format!("{s:.0} %"))
            .collect();
        let ratio = |other: Option<f64>| {
            other.filter(|&o| o != 0.0).map_or_else(String::new, |o| format!("{:.2}", ours / o))
        };
        let (c_cell, c_ratio) = match c {
            CFigure::NotRun => (String::new(), String::new()),
            CFigure::Unavailable => ("n/a".to_string(), "n/a".to_string()),
            CFigure::Value(value) => (unit.format(value), ratio(Some(value))),
        };
        let cells = [
            workload.into(),
            unit.format(ours),
            mio.map_or_else(String::new, |m| unit.format(m)),
            c_cell,
            ratio(mio),
            c_ratio,
            shares.join(" / "),
            target.verdict(ours, mio, share(ours)),
        ];
        self.rows.push(Row { cells });
    }

    /// Adds a row from runs made side by side (`ours[i]` beside `mio[i]`
    /// and `c[i]`): the medians, and in the ratio columns the range of the
    /// pairs' ratios, which shows how far the noise of the machine reaches.
    /// A target missed by the medians but met by some pairs is marked as
    /// within that spread. `c`: `None` if the C server does not run this
    /// row, empty if it could not be built.
    #[allow(clippy::too_many_arguments)]
    pub fn add_paired(
        &mut self,
        workload: impl Into<String>,
        unit: Unit,
        ours: &[f64],
        mio: &[f64],
        c: Option<&[f64]>,
        raw_limit: Option<f64>,
        target: Target,
    ) {
        let c_figure = c.map_or(CFigure::NotRun, CFigure::of_runs);
        self.add(workload, unit, median(ours), Some(median(mio)), c_figure, raw_limit, target);
        let row = self.rows.last_mut().expect("a row was just added");
        let Some((low, high)) = spread(ours, mio) else { return };
        let _ = write!(row.cells[RATIO_MIO], " ({low:.2}–{high:.2})");
        if let Some((c_low, c_high)) = c.and_then(|c| spread(ours, c)) {
            let _ = write!(row.cells[RATIO_C], " ({c_low:.2}–{c_high:.2})");
        }
        let verdict = &mut row.cells[VERDICT];
        if verdict.starts_with("MISSED") && (target.ratio_meets(low) || target.ratio_meets(high)) {
            verdict.push_str(", within the spread");
        }
    }

    /// The table in Markdown, under a line that says where and when it ran.
    pub fn render(&self) -> String {
        let c_note = if crate::c_server::binary().is_some() {
            ""
        } else {
            "\nThe C server could not be built (no C compiler?): its column says n/a.\n"
        };
        let mut widths = HEADER.map(|h| h.chars().count());
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(&row.cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let _ = writeln!(out, "\n{}\n", self.conditions());
        push_line(&mut out, &HEADER.map(String::from), &widths);
        push_line(&mut out, &widths.map(|w| "-".repeat(w)), &widths);
        for row in &self.rows {
            push_line(&mut out, &row.cells, &widths);
        }
        out.push_str(c_note);
        out
    }

    fn conditions(&self) -> String {
        let nproc = crate::placement::online_cpus();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let runs = if self.plan.quick {
            "QUICK=1: one run each, a tenth of the work (a smoke test, not a measurement)".to_string()
        } else {
            format!(
                "median of {} runs each (tcp: {}, dispatch: {}), ours, mio and C interleaved; \
                 on one CPU unless marked unpinned",
                self.plan.repeats, self.plan.tcp_repeats, self.plan.dispatch_repeats
            )
        };
        format!("nproc {nproc}, Linux {}, {} UTC; {runs}", kernel.trim(), utc_now())
    }
}

fn push_line(out: &mut String, cells: &[String; COLUMNS], widths: &[usize; COLUMNS]) {
    out.push('|');
    for (cell, &width) in cells.iter().zip(widths) {
        let pad = width - cell.chars().count();
        let _ = write!(out, " {cell}{} |", " ".repeat(pad));
    }
    out.push('\n');
}

/// The lowest and highest of the ratios `ours[i] / other[i]`, if there are
/// at least two (a pair whose `other` is zero has none).
fn spread(ours: &[f64], other: &[f64]) -> Option<(f64, f64)> {
    let ratios: Vec<f64> = ours.iter().zip(other).filter(|(_, &m)| m != 0.0).map(|(o, m)| o / m).collect();
    (ratios.len() >= 2).then(|| ratios.iter().fold((f64::MAX, f64::MIN), |(l, h), &r| (l.min(r), h.max(r))))
}

/// The median of some runs (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// A count per item with three decimals, or three significant digits
/// below 0.1 (0.00123), so that rare calls do not read as none.
fn three_digits(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let decimals = if value > 0.0 && value < 0.1 { (2.0 - value.log10().floor()) as usize } else { 3 };
    format!("{value:.decimals$}")
}

/// 1234567.8 as "1 234 568".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(digit);
    }
    out
}

fn utc_now() -> String {
    // SAFETY: `time` accepts a null pointer; `tm` is a plain C struct that
    // `gmtime_r` fills in.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::gmtime_r(&now, &mut tm);
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}
