//! Scorekeeper claims: who may write a match's score, until when, and the fencing token that
//! refuses writes from anyone who lost the claim — as pure transitions over a [`Claim`].
//!
//! A claim is live while `now_ms < expires_at_ms`; an expired claim is free for anyone. Every new
//! holder — another user, or the same user after the claim expired or was released — gets a new
//! fencing token, one above the highest ever issued for the match, so a write carrying an older
//! token (a device that slept through losing the claim) is refused even when it comes from the
//! same user. A live holder claiming again renews: the expiry moves, the token and
//! `claimed_at_ms` stay, so the holder's other devices keep writing.
//!
//! The caller keeps the highest token ever issued for the match (`last_token`) even after a
//! release, and passes it to [`claim`]; tokens must never repeat.

use serde::{Deserialize, Serialize};

/// A scorekeeper's claim on a match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Claim {
    /// The user holding the claim (the authenticated principal's id).
    pub holder: String,
    /// Writes must carry this token.
    pub fencing_token: u64,
    pub claimed_at_ms: i64,
    /// The claim is live strictly before this instant.
    pub expires_at_ms: i64,
}

impl Claim {
    pub fn is_live_at(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }
}

/// How long claims last: `ttl_default_ms` when the client asks for no expiry, and a client may
/// ask for at most `ttl_max_ms` from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimPolicy {
    ttl_default_ms: u32,
    ttl_max_ms: u32,
}

/// Why a claim policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimPolicyError {
    #[error("the default claim TTL is 0: a claim would expire as it is made")]
    ZeroDefaultTtl,
    #[error("the default claim TTL ({ttl_default_ms} ms) is above the maximum ({ttl_max_ms} ms)")]
    DefaultAboveMax {
        ttl_default_ms: u32,
        ttl_max_ms: u32,
    },
}

impl ClaimPolicy {
    pub fn new(ttl_default_ms: u32, ttl_max_ms: u32) -> Result<Self, ClaimPolicyError> {
        if ttl_default_ms == 0 {
            return Err(ClaimPolicyError::ZeroDefaultTtl);
        }
        if ttl_default_ms > ttl_max_ms {
            return Err(ClaimPolicyError::DefaultAboveMax {
                ttl_default_ms,
                ttl_max_ms,
            });
        }
        Ok(Self {
            ttl_default_ms,
            ttl_max_ms,
        })
    }

    pub fn ttl_default_ms(&self) -> u32 {
        self.ttl_default_ms
    }

    pub fn ttl_max_ms(&self) -> u32 {
        self.ttl_max_ms
    }
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the match is claimed by {holder} until {expires_at_ms}")]
    Held { holder: String, expires_at_ms: i64 },
    #[error("the requested expiry {requested_ms} is not after now ({now_ms})")]
    ExpiryNotInFuture { requested_ms: i64, now_ms: i64 },
    #[error("the requested expiry {requested_ms} is past the latest allowed, {latest_ms}")]
    ExpiryTooFar { requested_ms: i64, latest_ms: i64 },
    #[error("no fencing token is left to issue for this match")]
    TokensExhausted,
}

/// Claims the match for `user` at `now_ms`, until `requested_expiry_ms` or for the policy's
/// default TTL. `last_token` is the highest fencing token ever issued for the match.
///
/// Refused while someone else holds a live claim, and for an expiry not after now or more than
/// the policy's maximum TTL from now. A new holder gets one above the highest token issued
/// (`last_token`, or the stored claim's if the caller lost count); a live holder renews
/// (same token, same `claimed_at_ms`, new expiry — which may also be earlier than before).
pub fn claim(
    existing: Option<&Claim>,
    last_token: u64,
    user: &str,
    now_ms: i64,
    requested_expiry_ms: Option<i64>,
    policy: &ClaimPolicy,
) -> Result<Claim, ClaimError> {
    let live = existing.filter(|claim| claim.is_live_at(now_ms));
    if let Some(held) = live.filter(|claim| claim.holder != user) {
        return Err(ClaimError::Held {
            holder: held.holder.clone(),
            expires_at_ms: held.expires_at_ms,
        });
    }
    let latest_ms = now_ms.saturating_add(i64::from(policy.ttl_max_ms));
    let expires_at_ms = match requested_expiry_ms {
        None => now_ms.saturating_add(i64::from(policy.ttl_default_ms)),
        Some(requested_ms) if requested_ms <= now_ms => {
            return Err(ClaimError::ExpiryNotInFuture {
                requested_ms,
                now_ms,
            });
        }
        Some(requested_ms) if requested_ms > latest_ms => {
            return Err(ClaimError::ExpiryTooFar {
                requested_ms,
                latest_ms,
            });
        }
        Some(requested_ms) => requested_ms,
    };
    if let Some(renewed) = live {
        return Ok(Claim {
            expires_at_ms,
            ..renewed.clone()
        });
    }
    let highest_issued = existing.map_or(last_token, |claim| claim.fencing_token.max(last_token));
    let fencing_token = highest_issued
        .checked_add(1)
        .ok_or(ClaimError::TokensExhausted)?;
    Ok(Claim {
        holder: user.to_owned(),
        fencing_token,
        claimed_at_ms: now_ms,
        expires_at_ms,
    })
}

/// What a release did. The caller deletes the stored claim in every case (an expired one is
/// dead weight) and keeps `last_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Release {
    /// The holder released their claim.
    Released,
    /// A director released someone else's live claim; worth an audit entry.
    ForceReleased { holder: String },
    /// There was no live claim (none, or expired): nothing to release, which is not an error.
    NotHeld,
}

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("claimed by {holder} until {expires_at_ms}; only they or a director may release it")]
    NotHolder { holder: String, expires_at_ms: i64 },
}

/// Releases the claim at `now_ms` on behalf of `user`: the holder may, a director may force it.
pub fn release(
    existing: Option<&Claim>,
    user: &str,
    is_director: bool,
    now_ms: i64,
) -> Result<Release, ReleaseError> {
    match existing.filter(|claim| claim.is_live_at(now_ms)) {
        None => Ok(Release::NotHeld),
        Some(claim) if claim.holder == user => Ok(Release::Released),
        Some(claim) if is_director => Ok(Release::ForceReleased {
            holder: claim.holder.clone(),
        }),
        Some(claim) => Err(ReleaseError::NotHolder {
            holder: claim.holder.clone(),
            expires_at_ms: claim.expires_at_ms,
        }),
    }
}

/// Why a score write was refused by the claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    #[error("the match is not claimed; claim it before writing its score")]
    NotClaimed,
    #[error("the claim by {holder} expired at {expired_at_ms}; claim the match again")]
    Expired { holder: String, expired_at_ms: i64 },
    #[error("the match is claimed by {holder}")]
    HeldByOther { holder: String },
    #[error("fencing token {presented} is stale: the claim's token is {current}")]
    StaleToken { presented: u64, current: u64 },
    #[error("fencing token {presented} was never issued for this claim (its token is {current})")]
    UnknownToken { presented: u64, current: u64 },
}

/// Lets `user` write the score at `now_ms` with `fencing_token` only if they hold the live
/// claim and the token is the claim's own: an older token (even the same user's, from before the
/// claim was lost and taken again) is stale — checked before the holder, so a replaced holder's
/// device is told its token is stale — and a newer one was never issued.
pub fn authorize_write(
    existing: Option<&Claim>,
    user: &str,
    fencing_token: u64,
    now_ms: i64,
) -> Result<(), FenceError> {
    let Some(claim) = existing else {
        return Err(FenceError::NotClaimed);
    };
    if !claim.is_live_at(now_ms) {
        return Err(FenceError::Expired {
            holder: claim.holder.clone(),
            expired_at_ms: claim.expires_at_ms,
        });
    }
    // An older token first, whoever holds the claim now: the device of a replaced holder learns
    // the precise reason (its claim was superseded), not merely that someone else holds it.
    if fencing_token < claim.fencing_token {
        return Err(FenceError::StaleToken {
            presented: fencing_token,
            current: claim.fencing_token,
        });
    }
    if claim.holder != user {
        return Err(FenceError::HeldByOther {
            holder: claim.holder.clone(),
        });
    }
    if fencing_token > claim.fencing_token {
        return Err(FenceError::UnknownToken {
            presented: fencing_token,
            current: claim.fencing_token,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;
    const MINUTE_MS: u32 = 60_000;

    fn policy() -> ClaimPolicy {
        ClaimPolicy::new(30 * MINUTE_MS, 240 * MINUTE_MS).expect("valid policy")
    }

    fn held_by(holder: &str, fencing_token: u64, expires_at_ms: i64) -> Claim {
        Claim {
            holder: holder.to_owned(),
            fencing_token,
            claimed_at_ms: NOW - 1_000,
            expires_at_ms,
        }
    }

    #[test]
    fn policy_is_validated() {
        assert_eq!(
            ClaimPolicy::new(0, 10),
            Err(ClaimPolicyError::ZeroDefaultTtl)
        );
        assert_eq!(
            ClaimPolicy::new(11, 10),
            Err(ClaimPolicyError::DefaultAboveMax {
                ttl_default_ms: 11,
                ttl_max_ms: 10
            })
        );
        let policy = ClaimPolicy::new(10, 10).expect("equal is fine");
        assert_eq!((policy.ttl_default_ms(), policy.ttl_max_ms()), (10, 10));
    }

    #[test]
    fn free_match_is_claimed_with_the_next_token() {
        let claim = claim(None, 6, "ann", NOW, None, &policy()).expect("free");
        assert_eq!(
            claim,
            Claim {
                holder: "ann".into(),
                fencing_token: 7,
                claimed_at_ms: NOW,
                expires_at_ms: NOW + i64::from(30 * MINUTE_MS),
            }
        );
    }

    #[test]
    fn requested_expiry_is_used_within_bounds() {
        let until = NOW + 5_000;
        let claimed = claim(None, 0, "ann", NOW, Some(until), &policy()).expect("in bounds");
        assert_eq!(claimed.expires_at_ms, until);
        let latest = NOW + i64::from(240 * MINUTE_MS);
        let claimed = claim(None, 0, "ann", NOW, Some(latest), &policy()).expect("the max");
        assert_eq!(claimed.expires_at_ms, latest);
    }

    #[test]
    fn expiry_not_in_the_future_is_refused() {
        for requested_ms in [NOW, NOW - 1, i64::MIN] {
            assert_eq!(
                claim(None, 0, "ann", NOW, Some(requested_ms), &policy()),
                Err(ClaimError::ExpiryNotInFuture {
                    requested_ms,
                    now_ms: NOW
                })
            );
        }
    }

    #[test]
    fn expiry_beyond_the_max_is_refused() {
        let latest_ms = NOW + i64::from(240 * MINUTE_MS);
        for requested_ms in [latest_ms + 1, i64::MAX] {
            assert_eq!(
                claim(None, 0, "ann", NOW, Some(requested_ms), &policy()),
                Err(ClaimError::ExpiryTooFar {
                    requested_ms,
                    latest_ms
                })
            );
        }
    }

    #[test]
    fn live_claim_of_someone_else_is_held() {
        let existing = held_by("bob", 3, NOW + 1);
        assert_eq!(
            claim(Some(&existing), 3, "ann", NOW, None, &policy()),
            Err(ClaimError::Held {
                holder: "bob".into(),
                expires_at_ms: NOW + 1
            })
        );
        // Held is reported before anything wrong with the request itself.
        assert!(matches!(
            claim(Some(&existing), 3, "ann", NOW, Some(NOW - 1), &policy()),
            Err(ClaimError::Held { .. })
        ));
    }

    #[test]
    fn expired_claim_is_free_and_gets_a_new_token() {
        let existing = held_by("bob", 3, NOW);
        let claimed = claim(Some(&existing), 3, "ann", NOW, None, &policy()).expect("expired");
        assert_eq!((claimed.holder.as_str(), claimed.fencing_token), ("ann", 4));
        // The same user after expiry is a new holder too: old writes are fenced off.
        let again = claim(Some(&existing), 3, "bob", NOW, None, &policy()).expect("expired");
        assert_eq!((again.fencing_token, again.claimed_at_ms), (4, NOW));
        assert!(matches!(
            authorize_write(Some(&again), "bob", 3, NOW),
            Err(FenceError::StaleToken {
                presented: 3,
                current: 4
            })
        ));
    }

    #[test]
    fn live_holder_renews_keeping_token_and_start() {
        let existing = held_by("ann", 3, NOW + 10);
        let renewed = claim(Some(&existing), 9, "ann", NOW, None, &policy()).expect("renew");
        assert_eq!(
            renewed,
            Claim {
                expires_at_ms: NOW + i64::from(30 * MINUTE_MS),
                ..existing.clone()
            }
        );
        let shortened = claim(Some(&existing), 9, "ann", NOW, Some(NOW + 5), &policy());
        assert_eq!(shortened.map(|c| c.expires_at_ms), Ok(NOW + 5));
    }

    #[test]
    fn tokens_never_repeat_even_if_the_caller_lost_count() {
        let existing = held_by("bob", 12, NOW - 1);
        let claimed = claim(Some(&existing), 5, "ann", NOW, None, &policy()).expect("expired");
        assert_eq!(claimed.fencing_token, 13);
        assert_eq!(
            claim(None, u64::MAX, "ann", NOW, None, &policy()),
            Err(ClaimError::TokensExhausted)
        );
    }

    #[test]
    fn release_paths() {
        let live = held_by("ann", 3, NOW + 10);
        assert_eq!(
            release(Some(&live), "ann", false, NOW),
            Ok(Release::Released)
        );
        assert_eq!(
            release(Some(&live), "ann", true, NOW),
            Ok(Release::Released)
        );
        assert_eq!(
            release(Some(&live), "dir", true, NOW),
            Ok(Release::ForceReleased {
                holder: "ann".into()
            })
        );
        assert_eq!(
            release(Some(&live), "bob", false, NOW),
            Err(ReleaseError::NotHolder {
                holder: "ann".into(),
                expires_at_ms: NOW + 10
            })
        );
        assert_eq!(release(None, "bob", false, NOW), Ok(Release::NotHeld));
        let expired = held_by("ann", 3, NOW);
        assert_eq!(
            release(Some(&expired), "bob", false, NOW),
            Ok(Release::NotHeld)
        );
    }

    #[test]
    fn write_paths() {
        let live = held_by("ann", 3, NOW + 10);
        assert_eq!(authorize_write(Some(&live), "ann", 3, NOW), Ok(()));
        assert_eq!(
            authorize_write(None, "ann", 3, NOW),
            Err(FenceError::NotClaimed)
        );
        assert_eq!(
            authorize_write(Some(&live), "ann", 3, NOW + 10),
            Err(FenceError::Expired {
                holder: "ann".into(),
                expired_at_ms: NOW + 10
            })
        );
        assert_eq!(
            authorize_write(Some(&live), "bob", 3, NOW),
            Err(FenceError::HeldByOther {
                holder: "ann".into()
            })
        );
        assert_eq!(
            authorize_write(Some(&live), "bob", 2, NOW),
            Err(FenceError::StaleToken {
                presented: 2,
                current: 3
            }),
            "a replaced holder's older token is stale, whoever holds the claim now"
        );
        assert_eq!(
            authorize_write(Some(&live), "ann", 2, NOW),
            Err(FenceError::StaleToken {
                presented: 2,
                current: 3
            })
        );
        assert_eq!(
            authorize_write(Some(&live), "ann", 4, NOW),
            Err(FenceError::UnknownToken {
                presented: 4,
                current: 3
            })
        );
    }

    #[test]
    fn claim_json_is_camel_case() {
        let json = serde_json::to_value(held_by("ann", 3, 9)).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"holder": "ann", "fencingToken": 3,
                               "claimedAtMs": NOW - 1_000, "expiresAtMs": 9})
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        Claim { user: usize, ttl_ms: Option<i64> },
        Release { user: usize, is_director: bool },
        Write { user: usize, token_back: u64 },
    }

    fn any_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize, proptest::option::of(-10i64..20_000))
                .prop_map(|(user, ttl_ms)| Step::Claim { user, ttl_ms }),
            (0..3usize, any::<bool>())
                .prop_map(|(user, is_director)| Step::Release { user, is_director }),
            (0..3usize, 0..3u64).prop_map(|(user, token_back)| Step::Write { user, token_back }),
        ]
    }

    proptest! {
        /// Driven by any sequence of claims, releases and writes from three users while time
        /// moves on: at most one user can write at a time, only with the claim's token, and every
        /// change of holder issues a token above all earlier ones.
        #[test]
        fn one_writer_at_a_time_with_ever_newer_tokens(
            steps in proptest::collection::vec((any_step(), 0i64..5_000), 1..60),
        ) {
            let users = ["ann", "bob", "cy"];
            let policy = ClaimPolicy::new(10_000, 15_000).expect("policy");
            let mut stored: Option<Claim> = None;
            let mut last_token = 0u64;
            let mut now = NOW;
            for (step, advance_ms) in steps {
                now += advance_ms;
                match step {
                    Step::Claim { user, ttl_ms } => {
                        let before = stored.clone().filter(|c| c.is_live_at(now));
                        let requested = ttl_ms.map(|ttl| now + ttl);
                        let user = users[user];
                        let result =
                            claim(stored.as_ref(), last_token, user, now, requested, &policy);
                        match (&before, result) {
                            (Some(held), Err(ClaimError::Held { holder, .. })) => {
                                prop_assert_ne!(held.holder.as_str(), user);
                                prop_assert_eq!(holder, held.holder.clone());
                            }
                            (
                                _,
                                Err(ClaimError::ExpiryNotInFuture { .. }
                                    | ClaimError::ExpiryTooFar { .. }),
                            ) => {}
                            (Some(held), Ok(renewed)) => {
                                prop_assert_eq!(&renewed.holder, &held.holder);
                                prop_assert_eq!(renewed.fencing_token, held.fencing_token);
                                stored = Some(renewed);
                            }
                            (None, Ok(new)) => {
                                prop_assert_eq!(new.fencing_token, last_token + 1);
                                last_token = new.fencing_token;
                                stored = Some(new);
                            }
                            (_, Err(other)) => prop_assert!(false, "unexpected {:?}", other),
                        }
                    }
                    Step::Release { user, is_director } => {
                        if release(stored.as_ref(), users[user], is_director, now).is_ok() {
                            stored = None;
                        }
                    }
                    Step::Write { user, token_back } => {
                        let token = last_token.saturating_sub(token_back);
                        let allowed =
                            authorize_write(stored.as_ref(), users[user], token, now).is_ok();
                        let expected = stored.as_ref().is_some_and(|c| {
                            c.is_live_at(now) && c.holder == users[user] && c.fencing_token == token
                        });
                        prop_assert_eq!(allowed, expected);
                    }
                }
                let writers = users
                    .iter()
                    .filter(|user| authorize_write(stored.as_ref(), user, last_token, now).is_ok())
                    .count();
                prop_assert!(writers <= 1);
            }
        }
    }
}
