//! The rule for concurrent and offline score edits — "latest timestamp wins, the server wins
//! ties" — as one decision per incoming edit: what to store, what to answer, and which conflict
//! to record for the director.
//!
//! An edit made on a known version (`base_version`) is judged by version alone: it applies to
//! that version or it is stale. An edit without a base version was made without seeing the stored
//! score (typically queued while offline), so it is judged by time: its client time (never later
//! than the server's now, so a fast clock cannot win the future) against the stored score's
//! `updated_at_ms`. Ties keep the server's score. Whenever an edit replaces or loses to a stored
//! score it never saw, the decision carries a [`ConflictRecord`] for the director to review.
//!
//! Version 0 means "no score stored yet": stored scores start at version 1 and every stored edit
//! adds exactly 1. `updated_at_ms` never decreases.

use serde::{Deserialize, Serialize};

/// The revision of a stored score: its version and the time it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredRevision {
    /// 1 for the first stored score, +1 for each stored edit.
    pub version: u64,
    /// The time of the edit the stored score comes from, in ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// What an incoming score edit says about the score it was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreEdit {
    /// The version the edit was made on (0: made knowing there was no score yet). `None`: made
    /// without seeing the stored score, e.g. queued while offline.
    pub base_version: Option<u64>,
    /// When the client made the edit, by its own clock, in ms since the Unix epoch. `None`: now.
    pub client_time_ms: Option<i64>,
}

/// What to do with an incoming score edit. Each variant says what to store, what the API
/// answers, and whether a [`ConflictRecord`] is kept ([`Decision::conflict_record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The edit was made on the stored score (or is the first score): store it as `stored`
    /// and answer success with it. Nothing to record.
    Apply { stored: StoredRevision },
    /// An edit made without seeing the stored score, and later than it: store it as `stored`,
    /// answer success, and record an [`ConflictKind::OfflineEditOverwrote`] conflict so the
    /// director can review the `replaced` score.
    ApplyOverwriting {
        stored: StoredRevision,
        replaced: StoredRevision,
    },
    /// The edit was made on `base_version` but the store holds `current_version` (0: none): store
    /// nothing and answer conflict (409) with the current score; the client re-applies its change
    /// on top of it. Nothing to record: the editor is told at once and loses nothing silently.
    Stale {
        base_version: u64,
        current_version: u64,
    },
    /// An edit made without seeing the stored score, and not later than it (the server wins
    /// ties): store nothing, answer conflict (409) with the current score so the client drops
    /// its queued edit, and record the discarded edit for the director.
    KeepServer {
        current: StoredRevision,
        edit_time_ms: i64,
        reason: KeepServerReason,
    },
}

/// Why an edit made without seeing the stored score lost to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeepServerReason {
    /// The stored score is later than the edit.
    ServerNewer,
    /// Same time: the server wins ties.
    Tie,
}

/// What kind of conflict the director is asked to review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// An edit made without seeing the stored score replaced it, being later.
    OfflineEditOverwrote,
    /// An edit made without seeing the stored score was discarded, being earlier.
    OfflineEditDiscardedOlder,
    /// An edit made without seeing the stored score was discarded, having the same time.
    OfflineEditDiscardedTie,
}

/// A conflict kept for the director: which stored revision was involved and the edit's time. The
/// caller adds what the domain does not know (match, users, both scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictRecord {
    pub kind: ConflictKind,
    /// The stored revision the edit replaced (overwrote) or lost to (discarded).
    pub server: StoredRevision,
    /// The edit's time as judged: its client time, or the server's now if that was earlier.
    pub edit_time_ms: i64,
}

impl Decision {
    /// The edit is stored (answer success with the new score); otherwise nothing is stored and
    /// the answer is a conflict carrying the current score.
    pub fn stores_edit(&self) -> bool {
        matches!(
            self,
            Decision::Apply { .. } | Decision::ApplyOverwriting { .. }
        )
    }

    /// The revision to store, if the edit is stored.
    pub fn stored(&self) -> Option<StoredRevision> {
        match *self {
            Decision::Apply { stored } | Decision::ApplyOverwriting { stored, .. } => Some(stored),
            Decision::Stale { .. } | Decision::KeepServer { .. } => None,
        }
    }

    /// The conflict to keep for the director, if this decision produces one.
    pub fn conflict_record(&self) -> Option<ConflictRecord> {
        match *self {
            Decision::Apply { .. } | Decision::Stale { .. } => None,
            Decision::ApplyOverwriting { stored, replaced } => Some(ConflictRecord {
                kind: ConflictKind::OfflineEditOverwrote,
                server: replaced,
                edit_time_ms: stored.updated_at_ms,
            }),
            Decision::KeepServer {
                current,
                edit_time_ms,
                reason,
            } => Some(ConflictRecord {
                kind: match reason {
                    KeepServerReason::ServerNewer => ConflictKind::OfflineEditDiscardedOlder,
                    KeepServerReason::Tie => ConflictKind::OfflineEditDiscardedTie,
                },
                server: current,
                edit_time_ms,
            }),
        }
    }
}

/// Decides what happens to `edit`, given the stored score's revision (`None`: no score yet) and
/// the server's `now_ms`.
pub fn decide(current: Option<&StoredRevision>, edit: &ScoreEdit, now_ms: i64) -> Decision {
    let current_version = current.map_or(0, |stored| stored.version);
    if let Some(base_version) = edit.base_version {
        if base_version != current_version {
            return Decision::Stale {
                base_version,
                current_version,
            };
        }
        // Made on what is stored: it happens now, and time never runs backwards for a score.
        let updated_at_ms = current.map_or(now_ms, |stored| stored.updated_at_ms.max(now_ms));
        return Decision::Apply {
            stored: next_revision(current_version, updated_at_ms),
        };
    }

    // Made without seeing the stored score: the later one wins, the server wins ties.
    let edit_time_ms = edit
        .client_time_ms
        .map_or(now_ms, |client| client.min(now_ms));
    let Some(&stored) = current else {
        return Decision::Apply {
            stored: next_revision(0, edit_time_ms),
        };
    };
    match edit_time_ms.cmp(&stored.updated_at_ms) {
        std::cmp::Ordering::Greater => Decision::ApplyOverwriting {
            stored: next_revision(stored.version, edit_time_ms),
            replaced: stored,
        },
        std::cmp::Ordering::Equal => Decision::KeepServer {
            current: stored,
            edit_time_ms,
            reason: KeepServerReason::Tie,
        },
        std::cmp::Ordering::Less => Decision::KeepServer {
            current: stored,
            edit_time_ms,
            reason: KeepServerReason::ServerNewer,
        },
    }
}

fn next_revision(version: u64, updated_at_ms: i64) -> StoredRevision {
    StoredRevision {
        // Stored versions fit a signed 64-bit column, so this never saturates.
        version: version.saturating_add(1),
        updated_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;

    fn stored(version: u64, updated_at_ms: i64) -> StoredRevision {
        StoredRevision {
            version,
            updated_at_ms,
        }
    }

    fn online(base_version: u64) -> ScoreEdit {
        ScoreEdit {
            base_version: Some(base_version),
            client_time_ms: None,
        }
    }

    fn offline(client_time_ms: i64) -> ScoreEdit {
        ScoreEdit {
            base_version: None,
            client_time_ms: Some(client_time_ms),
        }
    }

    #[test]
    fn first_score_is_version_1() {
        for edit in [online(0), offline(NOW - 5), ScoreEdit::default()] {
            let decision = decide(None, &edit, NOW);
            assert!(matches!(decision, Decision::Apply { stored } if stored.version == 1));
            assert_eq!(decision.conflict_record(), None);
        }
    }

    #[test]
    fn edit_on_the_stored_version_applies_now() {
        let decision = decide(Some(&stored(4, NOW - 100)), &online(4), NOW);
        assert_eq!(
            decision,
            Decision::Apply {
                stored: stored(5, NOW)
            }
        );
        assert!(decision.stores_edit());
        assert_eq!(decision.conflict_record(), None);
        // A stored time ahead of this node's clock is kept: time never runs backwards.
        let ahead = decide(Some(&stored(4, NOW + 7)), &online(4), NOW);
        assert_eq!(ahead.stored(), Some(stored(5, NOW + 7)));
    }

    #[test]
    fn edit_on_another_version_is_stale() {
        for base in [3, 5, 0] {
            let decision = decide(Some(&stored(4, NOW)), &online(base), NOW);
            assert_eq!(
                decision,
                Decision::Stale {
                    base_version: base,
                    current_version: 4
                }
            );
            assert!(!decision.stores_edit());
            assert_eq!(decision.conflict_record(), None);
        }
        // Made on a version that no longer exists (no score stored).
        assert_eq!(
            decide(None, &online(2), NOW),
            Decision::Stale {
                base_version: 2,
                current_version: 0
            }
        );
        // A client time does not rescue an edit on an old version.
        let with_time = ScoreEdit {
            base_version: Some(3),
            client_time_ms: Some(NOW),
        };
        assert!(matches!(
            decide(Some(&stored(4, 0)), &with_time, NOW),
            Decision::Stale { .. }
        ));
    }

    #[test]
    fn later_offline_edit_overwrites_and_is_recorded() {
        let server = stored(4, NOW - 100);
        let decision = decide(Some(&server), &offline(NOW - 50), NOW);
        assert_eq!(
            decision,
            Decision::ApplyOverwriting {
                stored: stored(5, NOW - 50),
                replaced: server,
            }
        );
        assert_eq!(
            decision.conflict_record(),
            Some(ConflictRecord {
                kind: ConflictKind::OfflineEditOverwrote,
                server,
                edit_time_ms: NOW - 50,
            })
        );
    }

    #[test]
    fn earlier_offline_edit_is_discarded_and_recorded() {
        let server = stored(4, NOW - 100);
        let decision = decide(Some(&server), &offline(NOW - 150), NOW);
        assert_eq!(
            decision,
            Decision::KeepServer {
                current: server,
                edit_time_ms: NOW - 150,
                reason: KeepServerReason::ServerNewer,
            }
        );
        assert_eq!(
            decision.conflict_record().map(|record| record.kind),
            Some(ConflictKind::OfflineEditDiscardedOlder)
        );
    }

    #[test]
    fn the_server_wins_a_tie() {
        let server = stored(4, NOW - 100);
        let decision = decide(Some(&server), &offline(NOW - 100), NOW);
        assert_eq!(
            decision,
            Decision::KeepServer {
                current: server,
                edit_time_ms: NOW - 100,
                reason: KeepServerReason::Tie,
            }
        );
        assert_eq!(
            decision.conflict_record().map(|record| record.kind),
            Some(ConflictKind::OfflineEditDiscardedTie)
        );
    }

    #[test]
    fn a_client_clock_ahead_counts_as_now() {
        // Stored at NOW by an earlier request: an edit "from the future" ties and loses.
        let decision = decide(Some(&stored(4, NOW)), &offline(NOW + 60_000), NOW);
        assert!(matches!(
            decision,
            Decision::KeepServer {
                edit_time_ms: NOW,
                reason: KeepServerReason::Tie,
                ..
            }
        ));
        // Without a client time, the edit is made now.
        let decision = decide(Some(&stored(4, NOW - 1)), &ScoreEdit::default(), NOW);
        assert_eq!(decision.stored(), Some(stored(5, NOW)));
    }

    #[test]
    fn record_json() {
        let record = decide(Some(&stored(4, 10)), &offline(10), NOW)
            .conflict_record()
            .expect("record");
        assert_eq!(
            serde_json::to_value(record).expect("serialize"),
            serde_json::json!({
                "kind": "offline_edit_discarded_tie",
                "server": {"version": 4, "updatedAtMs": 10},
                "editTimeMs": 10,
            })
        );
    }

    fn any_revision() -> impl Strategy<Value = Option<StoredRevision>> {
        proptest::option::of((1u64..1_000, NOW - 1_000..NOW + 10).prop_map(|(v, t)| stored(v, t)))
    }

    fn any_edit() -> impl Strategy<Value = ScoreEdit> {
        (
            proptest::option::of(0u64..1_000),
            proptest::option::of(NOW - 1_000..NOW + 1_000),
        )
            .prop_map(|(base_version, client_time_ms)| ScoreEdit {
                base_version,
                client_time_ms,
            })
    }

    fn kind(decision: &Decision) -> &'static str {
        match decision {
            Decision::Apply { .. } => "apply",
            Decision::ApplyOverwriting { .. } => "apply_overwriting",
            Decision::Stale { .. } => "stale",
            Decision::KeepServer { .. } => "keep_server",
        }
    }

    proptest! {
        /// The decision depends on its inputs only, and follows the rule: a base version is
        /// judged by version, anything else by time with ties to the server; a stored edit is
        /// the next version and never moves time backwards; exactly the edits that met a score
        /// they had not seen leave a record.
        #[test]
        fn decisions_follow_the_rule(
            current in any_revision(),
            edit in any_edit(),
            now in NOW - 10..NOW + 10,
        ) {
            let decision = decide(current.as_ref(), &edit, now);
            prop_assert_eq!(decision, decide(current.as_ref(), &edit, now));
            let current_version = current.map_or(0, |c| c.version);
            if let Some(stored) = decision.stored() {
                prop_assert_eq!(stored.version, current_version + 1);
                if let Some(c) = current {
                    prop_assert!(stored.updated_at_ms >= c.updated_at_ms);
                }
            }
            let expected = match (edit.base_version, current) {
                (Some(base), _) if base != current_version => "stale",
                (Some(_), _) | (None, None) => "apply",
                (None, Some(c)) => {
                    let edit_time = edit.client_time_ms.unwrap_or(now).min(now);
                    if edit_time > c.updated_at_ms { "apply_overwriting" } else { "keep_server" }
                }
            };
            prop_assert_eq!(kind(&decision), expected);
            if let Decision::KeepServer { current: kept, .. } = decision {
                prop_assert_eq!(Some(kept), current);
            }
            let recorded = decision.conflict_record().is_some();
            let unseen = matches!(kind(&decision), "apply_overwriting" | "keep_server");
            prop_assert_eq!(recorded, unseen);
        }

        /// Whatever the stored revision, an offline edit with the same time never replaces it.
        #[test]
        fn the_server_wins_every_tie(
            version in 1u64..u64::MAX / 2,
            at in i64::MIN / 2..i64::MAX / 2,
            ahead in 0i64..1_000_000,
        ) {
            let server = stored(version, at);
            let decision = decide(Some(&server), &offline(at), at + ahead);
            prop_assert_eq!(
                decision,
                Decision::KeepServer {
                    current: server,
                    edit_time_ms: at,
                    reason: KeepServerReason::Tie,
                }
            );
            prop_assert!(!decision.stores_edit());
        }

        /// Offline edits arriving in any order converge: the store ends at the latest time, and
        /// when that time is held by one edit alone (and beats the first stored score), that edit
        /// is the one stored whatever the order.
        #[test]
        fn offline_edits_converge_in_any_order(
            initial in any_revision(),
            times in proptest::collection::vec(NOW - 50..NOW, 1..8),
            order_seed in proptest::collection::vec(any::<proptest::sample::Index>(), 8),
        ) {
            let run = |order: &[usize]| {
                let mut store: Option<(StoredRevision, Option<usize>)> = initial.map(|r| (r, None));
                for &edit_id in order {
                    let current = store.map(|(revision, _)| revision);
                    let decision = decide(current.as_ref(), &offline(times[edit_id]), NOW);
                    if let Some(stored) = decision.stored() {
                        store = Some((stored, Some(edit_id)));
                    }
                }
                store
            };
            let in_order: Vec<usize> = (0..times.len()).collect();
            let mut shuffled = in_order.clone();
            for (i, index) in order_seed.iter().enumerate().take(times.len()) {
                shuffled.swap(i, index.index(times.len()));
            }
            let (a, b) = (run(&in_order), run(&shuffled));
            let latest_edit = times.iter().copied().max().unwrap_or(i64::MIN);
            let latest = initial.map_or(latest_edit, |r| r.updated_at_ms.max(latest_edit));
            let a_time = a.map(|(r, _)| r.updated_at_ms);
            prop_assert_eq!(a_time, Some(latest));
            prop_assert_eq!(a_time, b.map(|(r, _)| r.updated_at_ms));
            let unique_latest = times.iter().filter(|&&t| t == latest_edit).count() == 1;
            if unique_latest && initial.is_none_or(|r| latest_edit > r.updated_at_ms) {
                let winner = times.iter().position(|&t| t == latest_edit);
                prop_assert_eq!(a.and_then(|(_, id)| id), winner);
                prop_assert_eq!(b.and_then(|(_, id)| id), winner);
            }
        }
    }
}
