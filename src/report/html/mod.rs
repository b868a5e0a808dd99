//! The HTML report: one self-contained file (inline CSS and a small script, nothing fetched) that
//! an admin opens in any browser or mails to a manager.
//!
//! Each source — a run's journal ([`run`]), a scan ([`scan`]), the runs of a period
//! ([`compliance`]) — is turned into one [`Page`]; [`render`] fills the template. Values that come
//! from outside (host names, bulletin titles, evidence) are escaped twice over: the template
//! escapes everything it prints (minijinja's HTML auto-escaping), and the per-host data travels as
//! one JSON blob with `<`, `>`, `&` and `'` escaped, which the script turns into DOM nodes with
//! `textContent` only. One blob rendered by a small script keeps a 10,000-host report small
//! (the script draws only the rows a filter shows, a page at a time).

pub mod compliance;
pub mod run;
pub mod scan;

use minijinja::{Environment, Value, context};
use serde::Serialize;
use thiserror::Error;

use crate::catalog::model::Catalog;

const TEMPLATE: &str = include_str!("page.html");
const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("script.js");

/// At most this many hosts are listed in "needs attention" at the top, so the rest of the page
/// stays in sight when a whole wave failed the same way; the host table below lists them all
/// (filter by verdict).
pub const ATTENTION_SHOWN: usize = 20;

#[derive(Debug, Error)]
pub enum HtmlError {
    #[error("the HTML report template: {0}")]
    Template(#[from] minijinja::Error),
}

/// What one report page shows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Page {
    /// `run`, `scan` or `compliance`.
    pub kind: &'static str,
    pub title: String,
    pub generated: String,
    /// The headline's facts, in order: (label, value).
    pub facts: Vec<(String, String)>,
    pub counts: Vec<Count>,
    /// Hosts that need someone to look, worst first (at most [`ATTENTION_SHOWN`]).
    pub attention: Vec<Attention>,
    /// How many more need attention than are listed.
    pub attention_more: usize,
    /// Caveats the reader must know (no catalog, a torn journal line...).
    pub notes: Vec<String>,
    /// Everything the script draws: waves, hosts, steps, the matrix.
    pub data: Data,
    pub compliance: Option<compliance::Trend>,
}

/// One number of the headline.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    pub label: String,
    pub n: usize,
    /// The colour class (`good`, `bad`, `warn`, `off`).
    pub class: &'static str,
}

/// One host that needs attention, with the reason in plain words.
#[derive(Debug, Clone, Serialize)]
pub struct Attention {
    pub host: String,
    pub verdict: String,
    pub class: &'static str,
    pub reason: String,
}

/// The data the script renders, with short keys: it is repeated per host.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Data {
    /// The time span of the timeline (ms since the epoch); 0 when there is none.
    pub t0: u64,
    pub t1: u64,
    pub waves: Vec<WaveData>,
    pub bulletins: Vec<BulletinData>,
    pub groups: Vec<String>,
    pub hosts: Vec<HostData>,
    /// Texts the steps and cells point to by index: a fleet repeats the same evidence on many
    /// hosts, so each text is written once.
    pub x: Vec<String>,
}

/// Hands out one index per distinct text, for [`Data::x`].
#[derive(Debug, Default)]
pub(crate) struct Texts {
    index: std::collections::HashMap<String, usize>,
    list: Vec<String>,
}

impl Texts {
    pub(crate) fn id(&mut self, text: String) -> usize {
        if let Some(&i) = self.index.get(&text) {
            return i;
        }
        self.list.push(text.clone());
        self.index.insert(text, self.list.len() - 1);
        self.list.len() - 1
    }

    pub(crate) fn into_list(self) -> Vec<String> {
        self.list
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WaveData {
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BulletinData {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub cves: Vec<String>,
}

/// One host: `n` name, `w` wave index, `g` group indexes, `v` verdict words, `c` its colour
/// class, `r` the reason, `o` OS and build, `s` steps, `m` matrix cells.
#[derive(Debug, Clone, Serialize)]
pub struct HostData {
    pub n: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub g: Vec<usize>,
    pub v: String,
    pub c: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub r: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub o: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub s: Vec<StepData>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub m: Vec<CellData>,
}

/// One step: (label, kind, start offset ms from `t0`, duration ms, `ok`/`bad`/`open`, detail);
/// label and detail are indexes into [`Data::x`].
pub type StepData = (usize, String, u64, u64, &'static str, usize);

/// One matrix cell: (bulletin index, cell class, evidence as an index into [`Data::x`]).
pub type CellData = (usize, &'static str, usize);

/// Fill the template.
pub fn render(page: &Page) -> Result<String, HtmlError> {
    let mut env = Environment::new();
    env.add_template("page.html", TEMPLATE)?;
    let tmpl = env.get_template("page.html")?;
    Ok(tmpl.render(context! {
        page => page,
        style => Value::from_safe_string(STYLE.to_string()),
        script => Value::from_safe_string(SCRIPT.to_string()),
    })?)
}

/// The page as HTML; should the template ever fail (a bug, not bad input), a plain page that
/// says why, so a scheduled report never ends up as an empty file.
pub fn to_html(page: &Page) -> String {
    render(page).unwrap_or_else(|e| {
        let why = e.to_string().replace('&', "&amp;").replace('<', "&lt;");
        format!(
            "<!doctype html><title>hive report</title><p>the report could not be made: {why}</p>\n"
        )
    })
}

/// The catalog's columns for bulletins, in the order given; an id the catalog does not know
/// keeps an empty title.
pub(crate) fn bulletin_columns(catalog: Option<&Catalog>, ids: &[String]) -> Vec<BulletinData> {
    ids.iter()
        .map(|id| {
            let b = catalog.and_then(|c| c.bulletin(id));
            BulletinData {
                id: id.clone(),
                title: b.map(|b| b.title.clone()).unwrap_or_default(),
                severity: b
                    .and_then(|b| b.severity)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                cves: b.map(|b| b.cves.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// `2026-12-05 01:02:03 UTC` from ms since the epoch.
pub(crate) fn utc_text(ms: u64) -> String {
    crate::time::utc_stamp(ms / 1000, crate::time::StampFormat::Text)
}

/// `1 h 02 min`, `3 min 05 s`, `12.5 s`.
pub(crate) fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{} h {:02} min", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_stamps_read_like_words() {
        assert_eq!(duration_text(12_500), "12.5 s");
        assert_eq!(duration_text(185_000), "3 min 05 s");
        assert_eq!(duration_text(3_720_000), "1 h 02 min");
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn every_value_is_escaped_in_the_markup_and_the_data() {
        let evil = "<script>alert(1)</script>";
        let page = Page {
            kind: "scan",
            title: evil.into(),
            facts: vec![("Plan".into(), evil.into())],
            attention: vec![Attention {
                host: evil.into(),
                verdict: "failed".into(),
                class: "bad",
                reason: "it's & <b>bold</b>".into(),
            }],
            data: Data {
                hosts: vec![HostData {
                    n: evil.into(),
                    w: None,
                    g: vec![],
                    v: "failed".into(),
                    c: "bad",
                    r: "</script><script>alert(2)</script>".into(),
                    o: String::new(),
                    s: vec![],
                    m: vec![],
                }],
                ..Data::default()
            },
            ..Page::default()
        };
        let html = render(&page).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>bold"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        // The script tags are the template's own: the data blob and the script.
        assert_eq!(html.matches("<script").count(), 2, "{html}");
        assert_eq!(html.matches("</script>").count(), 2, "{html}");
    }
}
