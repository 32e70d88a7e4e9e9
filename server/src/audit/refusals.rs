//! Refusals of callers nobody could identify, summarised: anyone on the network can send them
//! without end, so the trail keeps the first refusal from each client address (an IPv6 /64 counts
//! as one) in a minute as it happens, and the rest of that minute as one entry with their counts by
//! method and code — the refusals stay visible, and a loop of them cannot fill the disk. Beyond a
//! site-wide number of first refusals in a minute (many addresses at once), every further refusal
//! of that minute is counted into one entry for the whole site.
use crate::domain::{Actor, AuditRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// First refusals written as they happen, in one minute, for the whole site; past them, the
/// minute's refusals from new addresses are counted into one site-wide entry.
pub const MAX_FIRSTS_PER_MINUTE: usize = 500;

/// Methods named apart in one summary; the rest are counted as `other`.
const MAX_METHODS: usize = 32;

/// The key of the site-wide tally.
const SITE: &str = "";

/// What one client address did in one minute after its first refusal.
struct Tally {
    minute: i64,
    /// The first refusal, whose entry was written: the summary's template.
    first: AuditRecord,
    more: u64,
    codes: BTreeMap<String, u64>,
    methods: BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, entry: &AuditRecord) {
        self.more += 1;
        *self.codes.entry(entry.code.clone()).or_default() += 1;
        let method = if self.methods.len() < MAX_METHODS || self.methods.contains_key(&entry.method) {
            entry.method.clone()
        } else {
            "other".to_owned()
        };
        *self.methods.entry(method).or_default() += 1;
    }
}

/// The tallies of the current minutes.
#[derive(Default)]
pub struct RefusalTally {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tallies: HashMap<String, Tally>,
    /// (minute, first refusals written in it).
    firsts: (i64, usize),
}

/// Counts as `a=1,b=2`.
fn counts(c: &BTreeMap<String, u64>) -> String {
    c.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(",")
}

/// The summary entry of a tally that counted refusals beyond its first.
fn summary(key: &str, t: Tally) -> Option<AuditRecord> {
    if t.more == 0 {
        return None;
    }
    let (code, _) = t.codes.iter().max_by_key(|(_, n)| **n)?;
    let from = chrono::DateTime::from_timestamp(t.minute * 60, 0).unwrap_or_default();
    let address = if key == SITE { String::new() } else { t.first.client_address.clone() };
    let whom = if address.is_empty() { "addresses past the site's first refusals".to_owned() } else { address.clone() };
    let mut entry = AuditRecord {
        actor: Actor::anonymous(""),
        client_address: address,
        user_agent: String::new(),
        action: "calls.refused".to_owned(),
        method: String::new(),
        target_type: String::new(),
        target_id: String::new(),
        camera_id: String::new(),
        request_id: String::new(),
        details: BTreeMap::new(),
        ..t.first
    }
    .ended(
        code,
        &format!(
            "{} more refused calls without a valid credential from {whom} in the minute from {}",
            t.more,
            from.to_rfc3339()
        ),
    );
    entry.note("count", t.more.to_string());
    entry.note("codes", counts(&t.codes));
    entry.note("methods", counts(&t.methods));
    entry.note("minute", from.to_rfc3339());
    Some(entry)
}

impl RefusalTally {
    /// Notes the refusal `entry` from client `key` (its address, or its IPv6 /64) at `now`: answers
    /// the entries to write now — the refusal itself when it is the first of `key` this minute (with
    /// the summary of `key`'s minute before, if one is due), nothing when it is only counted.
    pub fn note(&self, key: &str, entry: AuditRecord, now: chrono::DateTime<chrono::Utc>) -> Vec<AuditRecord> {
        let minute = now.timestamp().div_euclid(60);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.firsts.0 != minute {
            inner.firsts = (minute, 0);
        }
        let fresh = inner.tallies.get(key).is_none_or(|t| t.minute != minute);
        let key = if fresh && inner.firsts.1 >= MAX_FIRSTS_PER_MINUTE { SITE } else { key };
        if let Some(t) = inner.tallies.get_mut(key)
            && t.minute == minute
        {
            t.count(&entry);
            return Vec::new();
        }
        inner.firsts.1 += 1;
        let tally = Tally { minute, first: entry.clone(), more: 0, codes: BTreeMap::new(), methods: BTreeMap::new() };
        let mut out: Vec<AuditRecord> =
            inner.tallies.insert(key.to_owned(), tally).and_then(|t| summary(key, t)).into_iter().collect();
        if key == SITE {
            // The site-wide tally's first refusal is counted, not written: it is past the bound.
            if let Some(t) = inner.tallies.get_mut(SITE) {
                t.count(&entry);
            }
        } else {
            out.push(entry);
        }
        out
    }

    /// Takes the summaries of the minutes before `now`'s (of every minute with `all`), forgetting
    /// their tallies.
    pub fn due(&self, now: chrono::DateTime<chrono::Utc>, all: bool) -> Vec<AuditRecord> {
        let minute = now.timestamp().div_euclid(60);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let ended: Vec<String> =
            inner.tallies.iter().filter(|(_, t)| all || t.minute < minute).map(|(k, _)| k.clone()).collect();
        ended.into_iter().filter_map(|k| inner.tallies.remove(&k).and_then(|t| summary(&k, t))).collect()
    }

    /// Puts back summaries that could not be written, to be written with the next ones.
    pub fn restore(&self, summaries: Vec<AuditRecord>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for s in summaries {
            let key = format!("\u{1}unwritten:{}", inner.tallies.len());
            let minute = chrono::DateTime::parse_from_rfc3339(s.details.get("minute").map_or("", String::as_str))
                .map(|t| t.timestamp().div_euclid(60))
                .unwrap_or(0);
            let more = s.details.get("count").and_then(|c| c.parse().ok()).unwrap_or(0);
            let parse = |k: &str| -> BTreeMap<String, u64> {
                s.details
                    .get(k)
                    .map(|v| {
                        v.split(',')
                            .filter_map(|p| p.split_once('='))
                            .map(|(a, n)| (a.to_owned(), n.parse().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (codes, methods) = (parse("codes"), parse("methods"));
            inner.tallies.insert(key, Tally { minute, first: s, more, codes, methods });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(address: &str, method: &str, code: &str) -> AuditRecord {
        let mut r = AuditRecord::system("session.whoami", "", "").ended(code, "missing bearer access token");
        r.actor = Actor::anonymous("");
        r.client_address = address.to_owned();
        r.method = method.to_owned();
        r.user_agent = "chosen by the caller".to_owned();
        r
    }

    fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_first_refusal_is_kept_and_the_rest_of_the_minute_is_one_counted_entry() {
        let tally = RefusalTally::default();
        assert_eq!(tally.note("192.0.2.1", refused("192.0.2.1", "/a", "UNAUTHENTICATED"), at(0)).len(), 1);
        for i in 0..1999 {
            let method = if i % 2 == 0 { "/a" } else { "/b" };
            assert!(tally.note("192.0.2.1", refused("192.0.2.1", method, "UNAUTHENTICATED"), at(0)).is_empty());
        }
        assert_eq!(tally.note("192.0.2.2", refused("192.0.2.2", "/a", "UNAUTHENTICATED"), at(0)).len(), 1);
        assert!(tally.due(at(0), false).is_empty(), "the minute is not over");
        let due = tally.due(at(60), false);
        assert_eq!(due.len(), 1, "{due:#?}");
        assert_eq!(due[0].details.get("count").map(String::as_str), Some("1999"));
        assert_eq!(due[0].details.get("methods").map(String::as_str), Some("/a=1000,/b=999"));
        assert_eq!((due[0].code.as_str(), due[0].user_agent.as_str()), ("UNAUTHENTICATED", ""));
        assert!(tally.due(at(120), true).is_empty(), "summaries are taken once");
    }

    #[test]
    fn a_new_minute_writes_the_summary_of_the_last_one_with_its_first_refusal() {
        let tally = RefusalTally::default();
        tally.note("192.0.2.1", refused("192.0.2.1", "/m", "UNAUTHENTICATED"), at(0));
        tally.note("192.0.2.1", refused("192.0.2.1", "/m", "RESOURCE_EXHAUSTED"), at(0));
        let next = tally.note("192.0.2.1", refused("192.0.2.1", "/m", "UNAUTHENTICATED"), at(61));
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].details.get("codes").map(String::as_str), Some("RESOURCE_EXHAUSTED=1"));
        assert_eq!(next[1].user_agent, "chosen by the caller");
    }

    #[test]
    fn past_the_sites_first_refusals_of_a_minute_the_rest_is_one_site_wide_entry() {
        let tally = RefusalTally::default();
        let mut written = 0;
        for i in 0..(MAX_FIRSTS_PER_MINUTE + 1000) {
            let address = format!("2001:db8:{i:x}::/64");
            written += tally.note(&address, refused(&address, "/m", "UNAUTHENTICATED"), at(0)).len();
        }
        assert_eq!(written, MAX_FIRSTS_PER_MINUTE);
        let due = tally.due(at(60), false);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].details.get("count").map(String::as_str), Some("1000"));
        assert_eq!(due[0].client_address, "");
    }

    #[test]
    fn summaries_that_could_not_be_written_are_written_later() {
        let tally = RefusalTally::default();
        tally.note("192.0.2.1", refused("192.0.2.1", "/m", "UNAUTHENTICATED"), at(0));
        tally.note("192.0.2.1", refused("192.0.2.1", "/m", "UNAUTHENTICATED"), at(0));
        let due = tally.due(at(60), false);
        tally.restore(due.clone());
        assert_eq!(tally.due(at(60), false), due);
    }
}
