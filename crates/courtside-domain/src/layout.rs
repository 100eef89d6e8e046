//! Where a tournament lives in the stream store: one place that names every channel the sports
//! service reads and writes, and how long each keeps its history.
//!
//! Public channels (seed 000's names; clients subscribe to them, the namespace options decide
//! who may):
//! - `tournament:{t}:scores` — keyed by match id: every match's current score (a snapshot is the
//!   scoreboard as of an offset).
//! - `match:{t}:{m}` — one match: key `score` (current score), key `claim` (who keeps it).
//! - `division:{t}:{d}`, `court:{t}:{c}` — score changes of the division's or court's matches.
//! - `tournament:{t}:schedule` (keyed by match id), `tournament:{t}:brackets`,
//!   `tournament:{t}:announcements`.
//!
//! Internal channels (namespaces starting with `_`: no client can subscribe or publish):
//! - `_events:all` — keyed by tournament id: the tournament records.
//! - `_registry:{t}` — keyed `division/{id}`, `team/{id}`, `court/{id}`, `match/{id}`.
//! - `_match:{t}:{m}` — keyed `record` (the match) and `score`: the match's truth. Its position
//!   is what a score write expects, so two writes never interleave.
//! - `_claim:{t}:{m}` — keyed `state`: the claim and the highest fencing token issued. A score
//!   write expects its position too: a claim taken or released meanwhile stops the write.
//! - `_claims:{t}` — keyed by match id: live claims, for listing.
//! - `_history:{t}:{m}` — every accepted score change, never trimmed.
//! - `_conflicts:{t}` — every crossing of edits, never trimmed.
//! - `_coverage:{t}` — keyed by user: coverage plans.

use courtside_core::channel::ChannelName;
use courtside_core::store::Retention;

/// Internal channels keep everything: they are the tournament's records.
pub const KEEP_ALL: Retention = Retention { history_size: u64::MAX, history_ttl_secs: 0, keyed: true };

fn name(text: String) -> ChannelName {
    // Ids are checked (`model::check_id`: letters, digits, `_`, `-`, at most 64 bytes), so the
    // names are valid; a bug here must not become a client-visible panic.
    ChannelName::parse(&text).unwrap_or_else(|error| {
        tracing::error!(%error, text, "sports channel name invalid; using a quarantine channel");
        ChannelName::parse("_invalid:name").expect("a literal valid name")
    })
}

pub fn events() -> ChannelName {
    name("_events:all".into())
}

pub fn registry(t: &str) -> ChannelName {
    name(format!("_registry:{t}"))
}

pub fn match_state(t: &str, m: &str) -> ChannelName {
    name(format!("_match:{t}:{m}"))
}

pub fn claim(t: &str, m: &str) -> ChannelName {
    name(format!("_claim:{t}:{m}"))
}

pub fn claims(t: &str) -> ChannelName {
    name(format!("_claims:{t}"))
}

pub fn score_history(t: &str, m: &str) -> ChannelName {
    name(format!("_history:{t}:{m}"))
}

pub fn conflicts(t: &str) -> ChannelName {
    name(format!("_conflicts:{t}"))
}

pub fn coverage(t: &str) -> ChannelName {
    name(format!("_coverage:{t}"))
}

pub fn scores(t: &str) -> ChannelName {
    name(format!("tournament:{t}:scores"))
}

pub fn match_channel(t: &str, m: &str) -> ChannelName {
    name(format!("match:{t}:{m}"))
}

pub fn division(t: &str, d: &str) -> ChannelName {
    name(format!("division:{t}:{d}"))
}

pub fn court(t: &str, c: &str) -> ChannelName {
    name(format!("court:{t}:{c}"))
}

pub fn schedule(t: &str) -> ChannelName {
    name(format!("tournament:{t}:schedule"))
}

pub fn brackets(t: &str) -> ChannelName {
    name(format!("tournament:{t}:brackets"))
}

pub fn announcements(t: &str) -> ChannelName {
    name(format!("tournament:{t}:announcements"))
}

/// Is `channel` one the sports service keeps (a match, division or court of a tournament, or a
/// tournament's scores, schedule or brackets)? Clients may read these as their namespace
/// allows, but only the service writes them: a score published past it would skip the claim,
/// the format and the history. Announcements stay open to staff (seed 000 broadcasts them).
pub fn is_sports_owned(channel: &ChannelName) -> bool {
    let segments: Vec<&str> = channel.as_str().split(':').collect();
    matches!(
        segments.as_slice(),
        ["match" | "division" | "court", _, _] | ["tournament", _, "scores" | "schedule" | "brackets"]
    )
}

/// Does `publication` overtake what a connection has queued? Critical announcements (seed 000:
/// emergencies, weather, evacuation) do: a publication on `tournament:{t}:announcements` whose
/// JSON has `"priority": "critical"`, at the top or in its `announcement` (as the sports service
/// publishes them).
pub fn is_urgent(publication: &courtside_core::stream::Publication) -> bool {
    let channel = publication.channel.as_str();
    if !(channel.starts_with("tournament:") && channel.ends_with(":announcements")) {
        return false;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&publication.data) else { return false };
    let critical = |v: &serde_json::Value| v.get("priority").and_then(|p| p.as_str()) == Some("critical");
    critical(&value) || value.get("announcement").is_some_and(critical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_announcements_are_urgent() {
        let publication = |channel: &str, data: &str| courtside_core::stream::Publication {
            channel: ChannelName::parse(channel).expect("name"),
            epoch: courtside_core::stream::Epoch::from_text("e"),
            offset: 1,
            key: None,
            removed: false,
            event: None,
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            time_ms: 0,
        };
        assert!(is_urgent(&publication("tournament:cup:announcements", r#"{"type":"announcement","announcement":{"priority":"critical","title":"Storm"}}"#)));
        assert!(is_urgent(&publication("tournament:cup:announcements", r#"{ "priority" : "critical" }"#)));
        assert!(!is_urgent(&publication("tournament:cup:announcements", r#"{"priority":"high"}"#)));
        assert!(!is_urgent(&publication("tournament:cup:announcements", "not json")));
        assert!(!is_urgent(&publication("match:cup:m1", r#"{"priority":"critical"}"#)));
    }

    #[test]
    fn sports_channels_are_recognised() {
        for owned in ["match:cup:m1", "court:cup:c1", "division:cup:u18", "tournament:cup:scores", "tournament:cup:brackets"] {
            assert!(is_sports_owned(&ChannelName::parse(owned).expect("name")), "{owned}");
        }
        for free in ["match:42", "tournament:cup", "tournament:cup:announcements", "court:7", "team:cup:red"] {
            assert!(!is_sports_owned(&ChannelName::parse(free).expect("name")), "{free}");
        }
    }

    #[test]
    fn the_longest_ids_still_make_valid_names() {
        let long = "x".repeat(crate::model::ID_LEN_MAX);
        for channel in [match_state(&long, &long), score_history(&long, &long), scores(&long), match_channel(&long, &long)] {
            assert_ne!(channel.as_str(), "_invalid:name");
        }
        assert_eq!(match_channel("cup-2026", "m7").as_str(), "match:cup-2026:m7");
    }
}
