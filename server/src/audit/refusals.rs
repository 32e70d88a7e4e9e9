//! Refusals of callers nobody could identify, summarised: anyone on the network can send them
//! without end, so the trail keeps the first refusal of each method from each client address in a
//! minute as it happens, and the rest of that minute as one entry with their count — the refusals stay
//! visible, and a loop of them cannot fill the disk.
use crate::domain::{Actor, AuditRecord};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// (client address, method) pairs tallied at most in one minute; beyond them, refusals of new pairs
/// are tallied under the method alone (with no address).
const MAX_PAIRS: usize = 10_000;

/// What one (client address, method) did in one minute after its first refusal.
struct Tally {
    minute: i64,
    /// The first refusal, whose entry was written: the summary's template.
    first: AuditRecord,
    more: u64,
    codes: BTreeMap<String, u64>,
}

/// The tallies of the current minutes.
#[derive(Default)]
pub struct RefusalTally {
    tallies: Mutex<HashMap<(String, String), Tally>>,
}

/// The summary entry of a tally that counted refusals beyond its first.
fn summary(t: Tally) -> Option<AuditRecord> {
    if t.more == 0 {
        return None;
    }
    let (code, _) = t.codes.iter().max_by_key(|(_, n)| **n)?;
    let from = chrono::DateTime::from_timestamp(t.minute * 60, 0).unwrap_or_default();
    let codes = t.codes.iter().map(|(c, n)| format!("{c}={n}")).collect::<Vec<_>>().join(",");
    let address = if t.first.client_address.is_empty() {
        "addresses beyond the tally".to_owned()
    } else {
        t.first.client_address.clone()
    };
    let mut entry = AuditRecord {
        actor: Actor::anonymous(""),
        user_agent: String::new(),
        request_id: String::new(),
        details: BTreeMap::new(),
        ..t.first
    }
    .ended(
        code,
        &format!(
            "{} more refused calls without a valid credential from {address} in the minute from {}",
            t.more,
            from.to_rfc3339()
        ),
    );
    entry.note("count", t.more.to_string());
    entry.note("codes", codes);
    entry.note("minute", from.to_rfc3339());
    Some(entry)
}

impl RefusalTally {
    /// Notes the refusal `entry` at `now`: answers the entries to write now — the refusal itself when
    /// it is the first of its address and method this minute (with the summary of the minute before,
    /// if one is due), nothing when it is only counted.
    pub fn note(&self, entry: AuditRecord, now: chrono::DateTime<chrono::Utc>) -> Vec<AuditRecord> {
        let minute = now.timestamp().div_euclid(60);
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (entry.client_address.clone(), entry.method.clone());
        if !tallies.contains_key(&key) && tallies.len() >= MAX_PAIRS {
            key.0 = String::new();
        }
        match tallies.get_mut(&key) {
            Some(t) if t.minute == minute => {
                t.more += 1;
                *t.codes.entry(entry.code).or_default() += 1;
                Vec::new()
            }
            _ => {
                let mut first = entry.clone();
                first.client_address = key.0.clone();
                let fresh = Tally { minute, first, more: 0, codes: BTreeMap::new() };
                let due = tallies.insert(key, fresh).and_then(summary);
                due.into_iter().chain(std::iter::once(entry)).collect()
            }
        }
    }

    /// Takes the summaries of the minutes before `now`'s (of every minute with `all`), forgetting
    /// their tallies.
    pub fn due(&self, now: chrono::DateTime<chrono::Utc>, all: bool) -> Vec<AuditRecord> {
        let minute = now.timestamp().div_euclid(60);
        let mut tallies = self.tallies.lock().unwrap_or_else(|e| e.into_inner());
        let ended: Vec<_> = tallies.iter().filter(|(_, t)| all || t.minute < minute).map(|(k, _)| k.clone()).collect();
        ended.into_iter().filter_map(|k| tallies.remove(&k)).filter_map(summary).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(address: &str, method: &str, code: &str) -> AuditRecord {
        let mut r = AuditRecord::system("am_i.who", "", "").ended(code, "missing bearer access token");
        r.actor = Actor::anonymous("");
        r.client_address = address.to_owned();
        r.method = method.to_owned();
        r.user_agent = "chosen by the caller".to_owned();
        r
    }

    #[test]
    fn the_first_refusal_is_kept_and_the_rest_of_the_minute_is_one_counted_entry() {
        let tally = RefusalTally::default();
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(tally.note(refused("192.0.2.1", "/m", "UNAUTHENTICATED"), t).len(), 1);
        for _ in 0..1999 {
            assert!(tally.note(refused("192.0.2.1", "/m", "UNAUTHENTICATED"), t).is_empty());
        }
        assert_eq!(tally.note(refused("192.0.2.2", "/m", "UNAUTHENTICATED"), t).len(), 1, "another address");
        assert!(tally.due(t, false).is_empty(), "the minute is not over");
        let due = tally.due(t + chrono::Duration::seconds(60), false);
        assert_eq!(due.len(), 1, "{due:#?}");
        assert_eq!(due[0].details.get("count").map(String::as_str), Some("1999"));
        assert_eq!(due[0].code, "UNAUTHENTICATED");
        assert_eq!(due[0].user_agent, "", "caller-chosen text is not repeated");
        assert!(tally.due(t + chrono::Duration::seconds(120), true).is_empty(), "summaries are taken once");
    }

    #[test]
    fn a_new_minute_writes_the_summary_of_the_last_one_with_its_first_refusal() {
        let tally = RefusalTally::default();
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        tally.note(refused("192.0.2.1", "/m", "UNAUTHENTICATED"), t);
        tally.note(refused("192.0.2.1", "/m", "RESOURCE_EXHAUSTED"), t);
        let next = tally.note(refused("192.0.2.1", "/m", "UNAUTHENTICATED"), t + chrono::Duration::seconds(61));
        assert_eq!(next.len(), 2);
        assert_eq!(next[0].details.get("codes").map(String::as_str), Some("RESOURCE_EXHAUSTED=1"));
        assert_eq!(next[1].user_agent, "chosen by the caller");
    }
}
