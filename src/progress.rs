//! Live progress of a rollout: bars on a terminal, NDJSON when piped.
//!
//! Rolling deploys run for hours; an operator wants "N of M hosts done", the failures as they
//! happen, and what each in-flight host is doing *now* (copying at what speed, which KB of how
//! many, which reboot phase). On a terminal that is an indicatif MultiProgress: a fleet bar, a bar
//! per wave, a line per in-flight host. A log collector or `jq` wants one JSON object per line
//! instead, so when stdout is not a terminal the same events are printed as NDJSON, in the
//! journal's record format. Both end with a summary table and a one-line recap.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::events::{Event, EventSink, Step, StepState};
use crate::journal::{Record, RunHeader};
use crate::rollout::{
    HostOutcome, HostVerdict, RunWatcher, SoakStatus, Summary, Wave, format_duration,
};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Ndjson,
}

impl Mode {
    /// Bars when stdout is a terminal, NDJSON otherwise.
    pub fn detect() -> Mode {
        if std::io::stdout().is_terminal() {
            Mode::Bars
        } else {
            Mode::Ndjson
        }
    }
}

/// The progress display: a [`RunWatcher`] (and so an [`EventSink`]) to hand to a rollout.
pub struct Progress {
    mode: Mode,
    out: Mutex<Box<dyn Write + Send>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    mp: Option<MultiProgress>,
    fleet: Option<ProgressBar>,
    waves: HashMap<usize, ProgressBar>,
    hosts: HashMap<String, HostLine>,
    failures: usize,
    unreachable: usize,
    /// The soak countdown line, while a wave soaks.
    soak: Option<ProgressBar>,
    /// Last NDJSON progress line per host, to print at most a few per second.
    last_progress: HashMap<String, Instant>,
}

struct HostLine {
    bar: Option<ProgressBar>,
    copy_started: Option<Instant>,
}

const PROGRESS_EVERY: Duration = Duration::from_millis(250);
/// In-flight host lines shown at once under the bars.
const MAX_HOST_LINES: usize = 16;

impl Progress {
    /// Bars on stdout if it is a terminal, NDJSON on stdout otherwise.
    pub fn stdout() -> Progress {
        match Mode::detect() {
            Mode::Bars => Progress::bars(ProgressDrawTarget::stdout()),
            Mode::Ndjson => Progress::ndjson(Box::new(std::io::stdout())),
        }
    }

    /// Bars drawn on `target`; the final summary goes to stdout.
    pub fn bars(target: ProgressDrawTarget) -> Progress {
        let state = State {
            mp: Some(MultiProgress::with_draw_target(target)),
            ..State::default()
        };
        Progress {
            mode: Mode::Bars,
            out: Mutex::new(Box::new(std::io::stdout())),
            state: Mutex::new(state),
        }
    }

    /// One JSON object per line on `out`.
    pub fn ndjson(out: Box<dyn Write + Send>) -> Progress {
        Progress {
            mode: Mode::Ndjson,
            out: Mutex::new(out),
            state: Mutex::new(State::default()),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn line<T: Serialize>(&self, value: &T) {
        if let (Ok(text), Ok(mut out)) = (serde_json::to_string(value), self.out.lock()) {
            // A closed pipe (`| head`) must not stop a rollout: progress is best effort.
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// What an in-flight host line says for an event, or `None` to leave it.
pub fn host_message(event: &Event, copy_started: Option<Instant>) -> Option<String> {
    use StepState::*;
    let msg = match (&event.step, &event.state) {
        (Step::Scan, Started) => "scanning".to_string(),
        (Step::Stage { patch, .. }, Started) => format!("copy {patch}"),
        (Step::Stage { patch, .. }, Progress { done, total }) => {
            let pct = if *total > 0 { done * 100 / total } else { 100 };
            let rate = copy_started
                .map(|t| t.elapsed().as_secs_f64())
                .filter(|s| *s > 0.0)
                .map(|s| copy_rate(*done, *total, s))
                .unwrap_or_default();
            format!("copy {patch} {pct}%{rate}")
        }
        (Step::VerifyHash { patch }, Started) => format!("hash {patch}"),
        (
            Step::Install {
                patch,
                index,
                total,
            },
            Started,
        ) => {
            format!("{patch} {index} of {total}")
        }
        (
            Step::Uninstall {
                patch,
                index,
                total,
            },
            Started,
        ) => {
            format!("uninstall {patch} {index} of {total}")
        }
        (Step::Qchain, Started) => "qchain".to_string(),
        (Step::Reboot { phase }, Started | Progress { .. }) => format!("rebooting ({phase})"),
        (Step::Verify, Started) => "verifying".to_string(),
        (Step::Verify, Finished { ok: true, .. }) => "verified".to_string(),
        (Step::Health, Started) => "health check".to_string(),
        (Step::Cleanup, Started) => "cleanup".to_string(),
        (Step::Hook { hook }, Started) => format!("hook {hook}"),
        (
            step,
            Finished {
                ok: false, outcome, ..
            },
        ) => {
            format!("{} {outcome}", step_word(step))
        }
        _ => return None,
    };
    Some(msg)
}

fn step_word(step: &Step) -> &'static str {
    match step {
        Step::Scan => "scan",
        Step::Stage { .. } => "copy",
        Step::VerifyHash { .. } => "hash",
        Step::Install { .. } => "install",
        Step::Uninstall { .. } => "uninstall",
        Step::Qchain => "qchain",
        Step::Reboot { .. } => "reboot",
        Step::Verify => "verify",
        Step::Cleanup => "cleanup",
        Step::Health => "health",
        Step::Baseline { .. } => "baseline",
        Step::Hook { .. } => "hook",
    }
}

impl EventSink for Progress {
    fn emit(&self, event: &Event) -> Result<(), String> {
        match self.mode {
            Mode::Ndjson => {
                if matches!(event.state, StepState::Progress { done, total } if done < total) {
                    let mut skip = false;
                    self.with_state(|s| {
                        let now = Instant::now();
                        match s.last_progress.get(&event.host) {
                            Some(t) if now.duration_since(*t) < PROGRESS_EVERY => skip = true,
                            _ => {
                                s.last_progress.insert(event.host.clone(), now);
                            }
                        }
                    });
                    if skip {
                        return Ok(());
                    }
                }
                self.line(&Record::Step(event.clone()));
            }
            Mode::Bars => self.with_state(|s| {
                let Some(line) = s.hosts.get_mut(&event.host) else {
                    return;
                };
                if matches!(
                    (&event.step, &event.state),
                    (Step::Stage { .. }, StepState::Started)
                ) {
                    line.copy_started = Some(Instant::now());
                }
                if let (Some(msg), Some(bar)) = (host_message(event, line.copy_started), &line.bar)
                {
                    bar.set_message(msg);
                }
            }),
        }
        // Progress never refuses an event: only the journal's durability can stop a step.
        Ok(())
    }
}

#[derive(Serialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Line<'a> {
    RunStarted {
        run: &'a str,
        hosts: usize,
        waves: usize,
        done_before: usize,
    },
    WaveStarted {
        wave: usize,
        name: &'a str,
        hosts: usize,
    },
    WaveFinished {
        wave: usize,
        name: &'a str,
        gate: &'a str,
    },
    Paused {
        run: &'a str,
    },
    Waiting {
        what: &'a str,
    },
    /// A soak poll: the time left and each host's health.
    Soak {
        #[serde(flatten)]
        status: &'a SoakStatus,
    },
    Summary {
        #[serde(flatten)]
        summary: &'a Summary,
        recap: String,
    },
}

impl RunWatcher for Progress {
    fn run_started(&self, header: &RunHeader, done_before: usize) {
        let total: usize = header.waves.iter().map(|w| w.hosts.len()).sum();
        match self.mode {
            Mode::Ndjson => self.line(&Line::RunStarted {
                run: &header.run,
                hosts: total,
                waves: header.waves.len(),
                done_before,
            }),
            Mode::Bars => self.with_state(|s| {
                let Some(mp) = &s.mp else { return };
                let bar = mp.add(ProgressBar::new(total as u64));
                bar.set_style(style(
                    "{prefix:.bold} [{bar:30}] {pos}/{len} hosts {msg} · {elapsed} · ETA {eta}",
                ));
                bar.set_prefix(format!("run {}", header.run));
                bar.set_position(done_before as u64);
                bar.set_message("0 failed");
                bar.enable_steady_tick(Duration::from_millis(250));
                s.fleet = Some(bar);
            }),
        }
    }

    fn wave_started(&self, wave: &Wave) {
        match self.mode {
            Mode::Ndjson => self.line(&Line::WaveStarted {
                wave: wave.index,
                name: &wave.name,
                hosts: wave.hosts.len(),
            }),
            Mode::Bars => self.with_state(|s| {
                let Some(mp) = &s.mp else { return };
                let bar = mp.add(ProgressBar::new(wave.hosts.len() as u64));
                bar.set_style(style("  wave {prefix:10} [{bar:20}] {pos}/{len} {msg}"));
                bar.set_prefix(wave.name.clone());
                s.waves.insert(wave.index, bar);
            }),
        }
    }

    fn host_started(&self, host: &str, _wave: usize) {
        if self.mode != Mode::Bars {
            return;
        }
        self.with_state(|s| {
            // With hundreds of hosts in flight, a line each would scroll the bars away: show the
            // first few; the fleet bar counts the rest.
            let shown = s.hosts.values().filter(|h| h.bar.is_some()).count();
            let room = shown < MAX_HOST_LINES;
            let bar = s.mp.as_ref().filter(|_| room).map(|mp| {
                let bar = mp.add(ProgressBar::new_spinner());
                bar.set_style(style("    {spinner} {prefix:24} {msg}"));
                bar.set_prefix(host.to_string());
                bar.set_message("starting");
                bar
            });
            s.hosts.insert(
                host.to_string(),
                HostLine {
                    bar,
                    copy_started: None,
                },
            );
        });
    }

    fn host_finished(&self, host: &str, wave: usize, outcome: &HostOutcome) {
        match self.mode {
            Mode::Ndjson => self.line(&Record::Host {
                host: host.to_string(),
                wave,
                verdict: outcome.verdict,
                detail: outcome.detail.clone(),
                at_ms: crate::time::now_ms(),
                evidence: None,
            }),
            Mode::Bars => self.with_state(|s| {
                if let Some(line) = s.hosts.remove(host)
                    && let Some(bar) = line.bar
                {
                    bar.finish_and_clear();
                    if let Some(mp) = &s.mp {
                        mp.remove(&bar);
                    }
                }
                match outcome.verdict {
                    HostVerdict::Failed | HostVerdict::Unhealthy => s.failures += 1,
                    HostVerdict::Unreachable => s.unreachable += 1,
                    _ => {}
                }
                if !outcome.verdict.good()
                    && let Some(mp) = &s.mp
                {
                    let _ = mp.println(format!(
                        "  {host}: {} — {}",
                        outcome.verdict.word(),
                        outcome.detail
                    ));
                }
                if let Some(w) = s.waves.get(&wave) {
                    w.inc(1);
                }
                if let Some(f) = &s.fleet {
                    f.inc(1);
                    f.set_message(format!(
                        "{} failed, {} unreachable, {} in flight",
                        s.failures,
                        s.unreachable,
                        s.hosts.len()
                    ));
                }
            }),
        }
    }

    fn wave_finished(&self, wave: &Wave, gate: &str) {
        match self.mode {
            Mode::Ndjson => self.line(&Line::WaveFinished {
                wave: wave.index,
                name: &wave.name,
                gate,
            }),
            Mode::Bars => self.with_state(|s| {
                if let Some(bar) = s.waves.get(&wave.index) {
                    bar.set_message(format!("gate {gate}"));
                    bar.abandon();
                }
            }),
        }
    }

    fn soak(&self, status: &SoakStatus) {
        match self.mode {
            // One line per poll, not per clock tick: a 30-minute soak stays readable in a log.
            Mode::Ndjson if status.polled => self.line(&Line::Soak { status }),
            Mode::Ndjson => {}
            Mode::Bars => self.with_state(|s| {
                let Some(mp) = &s.mp else { return };
                let bar = s.soak.get_or_insert_with(|| {
                    let bar = mp.add(ProgressBar::new_spinner());
                    bar.set_style(style("  {spinner} {msg}"));
                    bar
                });
                bar.set_message(soak_line(status));
                bar.tick();
                if status.left_ms == 0 || status.hosts.values().any(|h| h.healthy == Some(false)) {
                    bar.finish_and_clear();
                    mp.remove(bar);
                    s.soak = None;
                }
            }),
        }
    }

    fn paused(&self, run: &str) {
        match self.mode {
            Mode::Ndjson => self.line(&Line::Paused { run }),
            Mode::Bars => self.with_state(|s| {
                if let Some(mp) = &s.mp {
                    let _ = mp.println(format!(
                        "paused after the canaries: `hive rollout promote {run}` releases the run"
                    ));
                }
            }),
        }
    }

    fn waiting(&self, what: &str) {
        match self.mode {
            Mode::Ndjson => self.line(&Line::Waiting { what }),
            Mode::Bars => self.with_state(|s| {
                if let Some(mp) = &s.mp {
                    let _ = mp.println(format!("waiting: {what}"));
                }
            }),
        }
    }

    fn run_finished(&self, summary: &Summary) {
        match self.mode {
            Mode::Ndjson => self.line(&Line::Summary {
                summary,
                recap: summary.recap(),
            }),
            Mode::Bars => {
                self.with_state(|s| {
                    for (_, line) in s.hosts.drain() {
                        if let Some(bar) = line.bar {
                            bar.finish_and_clear();
                        }
                    }
                    if let Some(f) = &s.fleet {
                        f.abandon();
                    }
                });
                if let Ok(mut out) = self.out.lock() {
                    let _ = write!(out, "\n{}", render_summary(summary));
                    let _ = out.flush();
                }
            }
        }
    }
}

/// ` 12.5 MB/s, 0:42 left` after `secs` seconds with `done` of `total` bytes on the host.
fn copy_rate(done: u64, total: u64, secs: f64) -> String {
    let per_sec = done as f64 / secs;
    let rate = format!(" {:.1} MB/s", per_sec / 1e6);
    if per_sec < 1.0 || done >= total {
        return rate;
    }
    let left = ((total - done) as f64 / per_sec).ceil() as u64;
    format!("{rate}, {}:{:02} left", left / 60, left % 60)
}

/// `soak canary: 4m12s left — 2 healthy, 1 not polled yet; web01 ok, web02 ok`: the countdown,
/// then each host's health (the first few by name; unhealthy ones always).
pub fn soak_line(status: &SoakStatus) -> String {
    const NAMED: usize = 8;
    let count = |want: Option<bool>| status.hosts.values().filter(|h| h.healthy == want).count();
    let mut s = format!(
        "soak {}: {} left — {} healthy",
        status.wave,
        format_duration(Duration::from_millis(status.left_ms)),
        count(Some(true))
    );
    let bad = count(Some(false));
    if bad > 0 {
        s.push_str(&format!(", {bad} UNHEALTHY"));
    }
    let unpolled = count(None);
    if unpolled > 0 {
        s.push_str(&format!(", {unpolled} not polled yet"));
    }
    let mut named: Vec<String> = status
        .hosts
        .iter()
        .filter(|(_, h)| h.healthy == Some(false))
        .map(|(n, h)| format!("{n} UNHEALTHY ({})", h.evidence))
        .collect();
    named.extend(
        status
            .hosts
            .iter()
            .filter(|(_, h)| h.healthy == Some(true))
            .take(NAMED.saturating_sub(named.len()))
            .map(|(n, _)| format!("{n} ok")),
    );
    if !named.is_empty() {
        s.push_str("; ");
        s.push_str(&named.join(", "));
    }
    s
}

/// The final table: one line per wave, then every host that did not end well, then the recap.
pub fn render_summary(summary: &Summary) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<12} {:>6} {:>8} {:>8} {:>7} {:>9} {:>12} {:>8} {:>12}  gate\n",
        "wave",
        "hosts",
        "patched",
        "up2date",
        "failed",
        "unhealthy",
        "unreachable",
        "skipped",
        "not started"
    ));
    for w in &summary.waves {
        let c = &w.counts;
        s.push_str(&format!(
            "{:<12} {:>6} {:>8} {:>8} {:>7} {:>9} {:>12} {:>8} {:>12}  {}\n",
            w.name,
            c.total(),
            c.patched,
            c.nothing_to_do,
            c.failed,
            c.unhealthy,
            c.unreachable,
            c.skipped,
            c.not_started + c.interrupted,
            w.gate
        ));
    }
    let problems: Vec<_> = summary
        .hosts
        .iter()
        .filter(|h| h.verdict.is_some_and(|v| !v.good()))
        .collect();
    if !problems.is_empty() {
        s.push_str("\nhosts that need attention:\n");
        for h in problems {
            let v = h.verdict.map_or("not started", HostVerdict::word);
            s.push_str(&format!(
                "  {:<24} {:<12} {} ({})\n",
                h.host,
                v,
                h.detail,
                format_duration(Duration::from_millis(h.ms))
            ));
        }
    }
    let withheld = summary.withheld_lines();
    if !withheld.is_empty() {
        s.push_str("\npatches withheld (`hive promote RUN --patch KB` releases one):\n");
        for line in withheld {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s.push('\n');
    s.push_str(&summary.recap());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lines_follow_the_steps() {
        let ev = |step, state| Event::new("r", "h", step, state);
        let install = Step::Install {
            patch: "KB2".into(),
            index: 2,
            total: 3,
        };
        assert_eq!(
            host_message(&ev(install, StepState::Started), None).unwrap(),
            "KB2 2 of 3"
        );
        let stage = Step::Stage {
            patch: "KB1".into(),
            file: "a.exe".into(),
            bytes: 10,
        };
        let msg = host_message(
            &ev(stage, StepState::Progress { done: 5, total: 10 }),
            Some(Instant::now() - Duration::from_secs(1)),
        )
        .unwrap();
        assert!(msg.starts_with("copy KB1 50% 0.0 MB/s"), "{msg}");
        let big = Step::Stage {
            patch: "KB9".into(),
            file: "big.msu".into(),
            bytes: 600_000_000,
        };
        let msg = host_message(
            &ev(
                big,
                StepState::Progress {
                    done: 100_000_000,
                    total: 600_000_000,
                },
            ),
            Some(Instant::now() - Duration::from_secs(10)),
        )
        .unwrap();
        // 100 MB in 10 s: 10 MB/s, 500 MB to go, 50 s (a little more as the clock moved on).
        assert!(msg.starts_with("copy KB9 16% 10.0 MB/s, 0:5"), "{msg}");
        assert!(msg.ends_with(" left"), "{msg}");
        let reboot = Step::Reboot {
            phase: crate::events::RebootPhase::Down,
        };
        assert_eq!(
            host_message(&ev(reboot, StepState::Started), None).unwrap(),
            "rebooting (down)"
        );
        let fin = StepState::Finished {
            ok: true,
            outcome: crate::events::StepOutcome::Ok,
            detail: String::new(),
            boot_time: None,
        };
        assert_eq!(
            host_message(&ev(Step::Verify, fin), None).unwrap(),
            "verified"
        );
    }

    #[test]
    fn the_soak_line_counts_down_and_names_each_hosts_health() {
        use crate::rollout::HostHealth;
        let h = |healthy, evidence: &str| HostHealth {
            healthy,
            evidence: evidence.into(),
            polls: 1,
        };
        let status = SoakStatus {
            wave: "canary".into(),
            left_ms: 252_000,
            polled: true,
            hosts: [
                ("web01".to_string(), h(Some(true), "fine")),
                (
                    "web02".to_string(),
                    h(Some(false), "service W3SVC: stopped"),
                ),
                ("web03".to_string(), h(None, "")),
            ]
            .into(),
        };
        assert_eq!(
            soak_line(&status),
            "soak canary: 4m12s left — 1 healthy, 1 UNHEALTHY, 1 not polled yet; \
             web02 UNHEALTHY (service W3SVC: stopped), web01 ok"
        );
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let p = Progress::ndjson(Box::new(out.clone()));
        p.soak(&status);
        p.soak(&SoakStatus {
            polled: false,
            ..status.clone()
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "one line per poll: {text}");
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["record"], "soak", "{text}");
        assert_eq!(v["left_ms"], 252_000);
        assert_eq!(v["hosts"]["web02"]["healthy"], false);
    }
}
