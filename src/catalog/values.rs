//! The small value types of the catalog — KB numbers, dotted versions, dates — with the parsing
//! both sources need and a serialized form that is stable text (`KB5035849`, `10.0.17763.5576`,
//! `2024-03-12`), so the cache stays readable and byte-for-byte stable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A KB (Knowledge Base) article number. Q numbers of the 1990s are the same number space
/// (`Q300972` is `KB300972`), so both parse to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kb(pub u32);

impl Kb {
    /// The old `Q300972` spelling, as hfnetchk printed it.
    pub fn q_number(&self) -> String {
        format!("Q{}", self.0)
    }
}

impl fmt::Display for Kb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KB{}", self.0)
    }
}

/// A text that is not a KB number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a KB or Q number")]
pub struct BadKb(pub String);

impl FromStr for Kb {
    type Err = BadKb;

    /// Accepts `KB5035849`, `kb5035849`, `Q300972 `, `q279328` and a bare `5035849`.
    fn from_str(s: &str) -> Result<Kb, BadKb> {
        let t = s.trim();
        let digits = if t.len() > 2 && t[..2].eq_ignore_ascii_case("kb") {
            &t[2..]
        } else if t.len() > 1 && t[..1].eq_ignore_ascii_case("q") {
            &t[1..]
        } else {
            t
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadKb(s.to_string()));
        }
        digits.parse().map(Kb).map_err(|_| BadKb(s.to_string()))
    }
}

impl Serialize for Kb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Kb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Kb, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A dotted numeric version (`5.0.2195.3645`, `10.0.17763.5576`). Missing trailing parts compare
/// as zero, so `5.0` equals `5.0.0.0`.
#[derive(Debug, Clone, Eq)]
pub struct Version(pub Vec<u32>);

/// A text that is not a dotted numeric version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a dotted numeric version")]
pub struct BadVersion(pub String);

impl Version {
    /// The parts with trailing zeros removed: the canonical form for comparing and hashing.
    fn significant(&self) -> &[u32] {
        let end = self.0.iter().rposition(|&p| p != 0).map_or(0, |i| i + 1);
        &self.0[..end]
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.significant() == other.significant()
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.significant().hash(h);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> std::cmp::Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl FromStr for Version {
    type Err = BadVersion;

    fn from_str(s: &str) -> Result<Version, BadVersion> {
        let t = s.trim();
        if t.is_empty() {
            return Err(BadVersion(s.to_string()));
        }
        t.split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(BadVersion(s.to_string()));
                }
                p.parse::<u32>().map_err(|_| BadVersion(s.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A calendar date (`YYYY-MM-DD`). The sources write `1998/06/01` or `2024-03-12T07:00:00`;
/// only the day matters for patching, so that is all the model keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CatalogDate {
    /// Year.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
}

/// A text that is not a date the catalogs use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (expected YYYY-MM-DD or YYYY/MM/DD)")]
pub struct BadDate(pub String);

impl FromStr for CatalogDate {
    type Err = BadDate;

    /// Accepts `1998/06/01`, `2024-03-12`, `2024-03-12T07:00:00(Z)`.
    fn from_str(s: &str) -> Result<CatalogDate, BadDate> {
        let bad = || BadDate(s.to_string());
        let day_part = s.trim().split('T').next().ok_or_else(bad)?;
        let mut it = day_part.split(['-', '/']);
        let mut num = |max: u32| -> Result<u32, BadDate> {
            let p = it.next().ok_or_else(bad)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: u32 = p.parse().map_err(|_| bad())?;
            if n > max { Err(bad()) } else { Ok(n) }
        };
        let year = num(9999)?;
        let month = num(12)?;
        let day = num(31)?;
        if it.next().is_some() || month == 0 || day == 0 {
            return Err(bad());
        }
        Ok(CatalogDate {
            year: year as u16,
            month: month as u8,
            day: day as u8,
        })
    }
}

impl fmt::Display for CatalogDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for CatalogDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CatalogDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CatalogDate, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kb_parses_every_spelling() {
        assert_eq!("KB5035849".parse::<Kb>().unwrap(), Kb(5035849));
        assert_eq!("Q300972 ".parse::<Kb>().unwrap(), Kb(300972));
        assert_eq!("q279328".parse::<Kb>().unwrap(), Kb(279328));
        assert_eq!("5002559".parse::<Kb>().unwrap(), Kb(5002559));
        assert!("CBL-Mariner Releases".parse::<Kb>().is_err());
        assert!("KB".parse::<Kb>().is_err());
        assert_eq!(Kb(300972).q_number(), "Q300972");
        assert_eq!(Kb(5035849).to_string(), "KB5035849");
    }

    #[test]
    fn versions_compare_numerically_with_zero_padding() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("10.0.17763.5576") > v("10.0.17763.999"));
        assert_eq!(v("5.0"), v("5.0.0.0"));
        assert!(v("5.0.2195.3645") < v("5.0.2195.3646"));
        assert!("10.11.6-3".parse::<Version>().is_err());
        assert!("-".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
        assert!("1..2".parse::<Version>().is_err());
    }

    #[test]
    fn dates_accept_both_source_spellings() {
        let d: CatalogDate = "1998/06/01".parse().unwrap();
        assert_eq!(d.to_string(), "1998-06-01");
        let d: CatalogDate = "2024-03-12T07:00:00Z".parse().unwrap();
        assert_eq!(d.to_string(), "2024-03-12");
        assert!("".parse::<CatalogDate>().is_err());
        assert!("2024/13/01".parse::<CatalogDate>().is_err());
    }
}
