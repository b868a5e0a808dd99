//! Scan: find which catalog patches each host lacks, with evidence.
//!
//! `facts` is what one probe round trip learns about a host; `evaluate` is the pure function that
//! turns catalog × facts into verdicts.

pub mod evaluate;
pub mod facts;
