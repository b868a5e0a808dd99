//! The rollout plan: stages written as text, resolved against the inventory into waves of hosts.
//!
//! ```text
//! canary(group=canary, soak=5m) -> 10% -> 50%(max_failed=5%) -> 100%
//! ```
//!
//! A stage is either a *group stage* (`NAME(group=G, ...)`, or a bare `canary` meaning the group
//! `canary`) or a *percentage stage* (`P%`). Group stages take the inventory's hosts in that group;
//! percentage stages are cumulative over the hosts that no group stage took, so `10% -> 50% ->
//! 100%` patches 10 % of the remaining fleet, then up to half of it, then the rest. The parser is
//! pure: it sees only text and returns errors that quote the stage at fault.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A failure limit: an absolute count of hosts, or a percentage of the hosts it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Count(u32),
    Percent(u8),
}

impl Limit {
    /// How many hosts may fail out of `of` before the limit is exceeded. `5%` of 20 hosts allows
    /// 1 (rounded down: a budget errs on the side of stopping).
    pub fn allowed(self, of: usize) -> usize {
        match self {
            Limit::Count(n) => n as usize,
            Limit::Percent(p) => of * p as usize / 100,
        }
    }

    /// `2` or `5%` (at most 100%), as plans and the command line write budgets.
    pub fn parse(text: &str) -> Result<Limit, String> {
        if let Some(p) = text.strip_suffix('%') {
            let p: u8 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a percentage (0% to 100%)"))?;
            if p > 100 {
                return Err(format!("`{text}` is more than 100%"));
            }
            Ok(Limit::Percent(p))
        } else {
            let n: u32 = text
                .parse()
                .map_err(|_| format!("`{text}` is not a host count or a percentage"))?;
            Ok(Limit::Count(n))
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Which hosts a stage takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// Every inventory host in this group (not already taken by an earlier stage).
    Group(String),
    /// Cumulative percentage of the hosts no group stage took.
    Percent(u8),
}

/// One stage as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub selector: Selector,
    pub soak: Option<Duration>,
    pub max_failed: Option<Limit>,
    pub max_unreachable: Option<Limit>,
    /// `quarantine_after=N`: a patch that N hosts of this stage failed with is withheld from
    /// the rest of the run (see [`super::quarantine`]).
    pub quarantine_after: Option<u32>,
}

/// Why a plan text was refused. `stage` is the 1-based position and the text of the stage.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the rollout plan is empty: write stages like `canary -> 10% -> 100%`")]
    Empty,
    #[error("stage {index} `{text}`: {message}")]
    Stage {
        index: usize,
        text: String,
        message: String,
    },
    #[error("stage {index} `{text}`: {message}")]
    Order {
        index: usize,
        text: String,
        message: String,
    },
    #[error(
        "the last percentage stage is {last}%: hosts beyond it would never be patched; end the plan with 100%"
    )]
    Incomplete { last: u8 },
    #[error("group `{group}` (stage {index}) has no host left in the inventory")]
    EmptyGroup { index: usize, group: String },
}

/// Parse a plan. Stages are separated by `->` (or `→`).
pub fn parse_plan(text: &str) -> Result<Vec<Stage>, PlanError> {
    let normalized = text.replace('→', "->");
    if normalized.trim().is_empty() {
        return Err(PlanError::Empty);
    }
    let mut stages = Vec::new();
    let mut last_percent: Option<u8> = None;
    for (i, raw) in normalized.split("->").enumerate() {
        let index = i + 1;
        let part = raw.trim();
        let err = |message: String| PlanError::Stage {
            index,
            text: part.to_string(),
            message,
        };
        if part.is_empty() {
            return Err(err(
                "empty stage (two arrows in a row, or one at an end?)".into()
            ));
        }
        let stage = parse_stage(part).map_err(err)?;
        if let Selector::Percent(p) = stage.selector {
            if let Some(prev) = last_percent
                && p <= prev
            {
                return Err(PlanError::Order {
                    index,
                    text: part.to_string(),
                    message: format!(
                        "percentages are cumulative and must grow: {p}% follows {prev}%"
                    ),
                });
            }
            last_percent = Some(p);
        } else if last_percent.is_some() {
            return Err(PlanError::Order {
                index,
                text: part.to_string(),
                message: "group stages come before the percentage stages".into(),
            });
        }
        stages.push(stage);
    }
    if let Some(last) = last_percent
        && last != 100
    {
        return Err(PlanError::Incomplete { last });
    }
    Ok(stages)
}

fn parse_stage(part: &str) -> Result<Stage, String> {
    let (head, args) = match part.find('(') {
        Some(open) => {
            let close = part
                .rfind(')')
                .filter(|c| *c > open && part[c + 1..].trim().is_empty())
                .ok_or("`(` without a closing `)` at the end of the stage")?;
            (part[..open].trim(), Some(&part[open + 1..close]))
        }
        None if part.contains(')') => return Err("`)` without an opening `(`".into()),
        None => (part, None),
    };
    let mut stage = if let Some(p) = head.strip_suffix('%') {
        let p: u8 = p
            .trim()
            .parse()
            .map_err(|_| format!("`{head}` is not a percentage (1% to 100%)"))?;
        if p == 0 || p > 100 {
            return Err(format!("`{head}` must be between 1% and 100%"));
        }
        Stage {
            name: format!("{p}%"),
            selector: Selector::Percent(p),
            soak: None,
            max_failed: None,
            max_unreachable: None,
            quarantine_after: None,
        }
    } else {
        if head.is_empty()
            || !head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "`{head}` is neither a percentage nor a stage name (letters, digits, '-', '_')"
            ));
        }
        Stage {
            name: head.to_string(),
            selector: Selector::Group(head.to_string()),
            soak: None,
            max_failed: None,
            max_unreachable: None,
            quarantine_after: None,
        }
    };
    for arg in args.unwrap_or("").split(',') {
        let arg = arg.trim();
        if arg.is_empty() {
            continue;
        }
        let (key, value) = arg
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .ok_or_else(|| format!("`{arg}` is not key=value"))?;
        match key {
            "group" => {
                if matches!(stage.selector, Selector::Percent(_)) {
                    return Err("a percentage stage takes no group".into());
                }
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!("`{value}` is not a group name"));
                }
                stage.selector = Selector::Group(value.to_string());
            }
            "soak" => stage.soak = Some(parse_duration(value)?),
            "max_failed" => stage.max_failed = Some(Limit::parse(value)?),
            "max_unreachable" => stage.max_unreachable = Some(Limit::parse(value)?),
            "quarantine_after" => {
                let n: u32 = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("quarantine_after=`{value}` is not a host count (1 or more)")
                })?;
                stage.quarantine_after = Some(n);
            }
            other => {
                return Err(format!(
                    "unknown setting `{other}` (known: group, soak, max_failed, max_unreachable, quarantine_after)"
                ));
            }
        }
    }
    Ok(stage)
}

/// `90s`, `5m`, `1h30m`, `250ms`: what an admin types. A bare number is refused, because a soak
/// of "5" could mean seconds or minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration (e.g. 30s, 5m, 1h30m, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        total += match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
    }
    Ok(total)
}

/// `4m12s`, `1h02m`, `850ms`: how long a run took, for the recap.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{}.{}s", s, d.subsec_millis() / 100)
    }
}

/// A wave: the hosts patched together, then a gate before the next wave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// 0-based position in the run.
    pub index: usize,
    /// The stage's name (`canary`, `10%`).
    pub name: String,
    /// A group stage named in the plan before the percentages: any failure stops the run.
    pub canary: bool,
    pub hosts: Vec<String>,
    /// How long to wait after the gate passes before the next wave starts.
    pub soak_ms: u64,
    pub max_failed: Option<Limit>,
    pub max_unreachable: Option<Limit>,
    /// Hosts of this wave failing with a patch that quarantine it (`quarantine_after=N`);
    /// absent in journals from before quarantines existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine_after: Option<u32>,
}

#[cfg(test)]
impl Wave {
    /// The run of one wave of `hosts`, without canary, soak or budget: what the tests of the
    /// engine's surroundings (hooks, windows) run.
    pub(crate) fn one(hosts: &[&str]) -> Vec<Wave> {
        vec![Wave {
            index: 0,
            name: "all".into(),
            canary: false,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            soak_ms: 0,
            quarantine_after: None,
            max_failed: None,
            max_unreachable: None,
        }]
    }
}

/// Resolve stages against the inventory's hosts (name and groups, in inventory order).
///
/// Group stages default to a budget of zero failures (they are canaries: a failure there is the
/// signal to stop); percentage stages default to `default_max_failed`.
pub fn resolve(
    stages: &[Stage],
    hosts: &[(String, Vec<String>)],
    default_max_failed: Option<Limit>,
    default_max_unreachable: Option<Limit>,
) -> Result<Vec<Wave>, PlanError> {
    let mut taken = vec![false; hosts.len()];
    let mut waves = Vec::new();
    for (i, stage) in stages.iter().enumerate() {
        if let Selector::Group(group) = &stage.selector {
            let indices: Vec<usize> = hosts
                .iter()
                .enumerate()
                .filter(|(j, (_, groups))| !taken[*j] && groups.iter().any(|g| g == group))
                .map(|(j, _)| j)
                .collect();
            let picked: Vec<String> = indices
                .into_iter()
                .map(|j| {
                    taken[j] = true;
                    hosts[j].0.clone()
                })
                .collect();
            if picked.is_empty() {
                return Err(PlanError::EmptyGroup {
                    index: i + 1,
                    group: group.clone(),
                });
            }
            waves.push(Wave {
                index: waves.len(),
                name: stage.name.clone(),
                canary: true,
                hosts: picked,
                soak_ms: stage.soak.map_or(0, |d| d.as_millis() as u64),
                max_failed: Some(stage.max_failed.unwrap_or(Limit::Count(0))),
                max_unreachable: Some(stage.max_unreachable.unwrap_or(Limit::Count(0))),
                quarantine_after: stage.quarantine_after,
            });
        }
    }
    let rest: Vec<&String> = hosts
        .iter()
        .enumerate()
        .filter(|(j, _)| !taken[*j])
        .map(|(_, (name, _))| name)
        .collect();
    let n = rest.len();
    let mut done = 0usize;
    for stage in stages {
        let Selector::Percent(p) = stage.selector else {
            continue;
        };
        let upto = (n * p as usize).div_ceil(100).min(n);
        if upto <= done {
            continue;
        }
        waves.push(Wave {
            index: waves.len(),
            name: stage.name.clone(),
            canary: false,
            hosts: rest[done..upto].iter().map(|s| s.to_string()).collect(),
            soak_ms: stage.soak.map_or(0, |d| d.as_millis() as u64),
            max_failed: stage.max_failed.or(default_max_failed),
            max_unreachable: stage.max_unreachable.or(default_max_unreachable),
            quarantine_after: stage.quarantine_after,
        });
        done = upto;
    }
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_plan_parses() {
        let s = parse_plan("canary(group=canary, soak=5m) -> 10% -> 50% -> 100%").unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].selector, Selector::Group("canary".into()));
        assert_eq!(s[0].soak, Some(Duration::from_secs(300)));
        assert_eq!(s[2].selector, Selector::Percent(50));
        let arrows = parse_plan("canary → 100%(max_failed=5%, max_unreachable=3)").unwrap();
        assert_eq!(arrows[1].max_failed, Some(Limit::Percent(5)));
        assert_eq!(arrows[1].max_unreachable, Some(Limit::Count(3)));
        let q = parse_plan("canary(quarantine_after=2) -> 100%").unwrap();
        assert_eq!(q[0].quarantine_after, Some(2));
        let waves = resolve(&q, &fleet(4, 2), None, None).unwrap();
        assert_eq!(waves[0].quarantine_after, Some(2));
        assert_eq!(waves[1].quarantine_after, None);
    }

    #[test]
    fn errors_name_the_stage() {
        let cases = [
            ("", "empty"),
            ("10% -> -> 100%", "stage 2"),
            ("50% -> 10% -> 100%", "must grow"),
            ("10% -> 50%", "end the plan with 100%"),
            ("canary(soak=5)", "not a duration"),
            ("canary(colour=red)", "unknown setting `colour`"),
            ("150%", "between 1% and 100%"),
            ("canary(group=a", "closing"),
            ("10%(group=x) -> 100%", "takes no group"),
            ("100% -> canary", "group stages come before"),
            ("can ary", "neither a percentage"),
            ("canary(quarantine_after=0)", "1 or more"),
            ("canary(quarantine_after=x)", "not a host count"),
        ];
        for (text, want) in cases {
            let e = parse_plan(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(format_duration(Duration::from_secs(252)), "4m12s");
    }

    fn fleet(n: usize, canaries: usize) -> Vec<(String, Vec<String>)> {
        (0..n)
            .map(|i| {
                let groups = if i < canaries {
                    vec!["canary".to_string()]
                } else {
                    vec![]
                };
                (format!("h{i:03}"), groups)
            })
            .collect()
    }

    #[test]
    fn waves_are_cumulative_over_the_rest() {
        let stages = parse_plan("canary -> 10% -> 50% -> 100%").unwrap();
        let waves = resolve(&stages, &fleet(200, 2), None, None).unwrap();
        let sizes: Vec<usize> = waves.iter().map(|w| w.hosts.len()).collect();
        assert_eq!(sizes, vec![2, 20, 79, 99]);
        assert!(waves[0].canary && !waves[1].canary);
        assert_eq!(waves[0].max_failed, Some(Limit::Count(0)));
        let mut all: Vec<&String> = waves.iter().flat_map(|w| &w.hosts).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 200, "every host in exactly one wave");
    }

    #[test]
    fn tiny_fleets_skip_empty_waves_and_missing_groups_are_named() {
        let stages = parse_plan("10% -> 50% -> 100%").unwrap();
        let waves = resolve(&stages, &fleet(3, 0), None, None).unwrap();
        let sizes: Vec<usize> = waves.iter().map(|w| w.hosts.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        let stages = parse_plan("canary(group=pilot) -> 100%").unwrap();
        let e = resolve(&stages, &fleet(3, 0), None, None).unwrap_err();
        assert!(e.to_string().contains("group `pilot`"), "{e}");
    }

    #[test]
    fn limits() {
        assert_eq!(Limit::Percent(5).allowed(20), 1);
        assert_eq!(Limit::Percent(5).allowed(19), 0);
        assert_eq!(Limit::Count(3).allowed(1), 3);
    }
}
