//! Match scoring: the formats a match is played under (sets to win, points per set, win-by, cap),
//! the one judgement of a score a client sent — where the match stands, or every rule the score
//! breaks — and the check of the status a client claims for it.
//!
//! A set is over as soon as one side has reached the set's target with a lead of at least
//! `win_by`, or has reached the cap. A score that goes on past that point (28-25 in a set to 25
//! won by 2) is an *overrun*: no sequence of rallies produces it. The deciding set — the last one
//! a match can need, e.g. the third of a best of three — plays to `final_set_points` when the
//! format has one.
//!
//! Scores arrive as the client sent them (`i64` points), so a negative number is reported as a
//! broken rule with its path, like every other mistake, rather than as a parse failure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a match is won: first to `sets_to_win` sets; a set goes to `set_points` (the deciding set
/// to `final_set_points` when given), must be won by `win_by`, and ends at `cap` points if the
/// format has one (the cap applies to every set).
///
/// JSON (camelCase) gives the fields only; whoever takes a format from a client checks it with
/// [`ScoringFormat::validate`] (the service does, answering which rule it breaks), and
/// [`evaluate`] refuses to judge a score under an invalid format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringFormat {
    #[schema(minimum = 1, maximum = 255)]
    pub sets_to_win: u8,
    #[schema(minimum = 1, maximum = 65535)]
    pub set_points: u16,
    /// Only with a deciding set (`setsToWin` ≥ 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 65535)]
    pub final_set_points: Option<u16>,
    #[schema(minimum = 1, maximum = 65535)]
    pub win_by: u16,
    /// At least the set target (`setPoints`, and `finalSetPoints` when given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 65535)]
    pub cap: Option<u16>,
}

/// Why a scoring format was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("setsToWin is 0: a match needs at least one set to win")]
    NoSetsToWin,
    #[error("setPoints is 0: a set needs at least one point")]
    NoSetPoints,
    #[error("finalSetPoints is 0: the deciding set needs at least one point")]
    NoFinalSetPoints,
    #[error("finalSetPoints is given but setsToWin is 1: a one-set match has no deciding set")]
    FinalSetWithoutDecider,
    #[error("winBy is 0: a set must be won by at least one point")]
    NoWinBy,
    #[error("cap {cap} is below the set target {target}: a cap can only end a set at or past it")]
    CapBelowTarget { cap: u16, target: u16 },
}

impl ScoringFormat {
    /// Best of 3 sets to 25, deciding set to 15, win by 2, no cap (indoor volleyball, 3 sets).
    pub const fn best_of_3_to_25() -> Self {
        Self {
            sets_to_win: 2,
            set_points: 25,
            final_set_points: Some(15),
            win_by: 2,
            cap: None,
        }
    }

    /// Best of 5 sets to 25, deciding set to 15, win by 2, no cap (indoor volleyball, 5 sets).
    pub const fn best_of_5_to_25() -> Self {
        Self {
            sets_to_win: 3,
            set_points: 25,
            final_set_points: Some(15),
            win_by: 2,
            cap: None,
        }
    }

    /// One set to 21, win by 2, capped at 23 (beach / pool play).
    pub const fn one_set_to_21_cap_23() -> Self {
        Self {
            sets_to_win: 1,
            set_points: 21,
            final_set_points: None,
            win_by: 2,
            cap: Some(23),
        }
    }

    /// Best of 3 sets to 21, deciding set to 15, win by 2, no cap.
    pub const fn best_of_3_to_21() -> Self {
        Self {
            sets_to_win: 2,
            set_points: 21,
            final_set_points: Some(15),
            win_by: 2,
            cap: None,
        }
    }

    /// Refuses formats no match can be played under.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.sets_to_win == 0 {
            return Err(FormatError::NoSetsToWin);
        }
        if self.set_points == 0 {
            return Err(FormatError::NoSetPoints);
        }
        match self.final_set_points {
            Some(0) => return Err(FormatError::NoFinalSetPoints),
            Some(_) if self.sets_to_win == 1 => return Err(FormatError::FinalSetWithoutDecider),
            _ => {}
        }
        if self.win_by == 0 {
            return Err(FormatError::NoWinBy);
        }
        if let Some(cap) = self.cap {
            let target = self.set_points.max(self.final_set_points.unwrap_or(0));
            if cap < target {
                return Err(FormatError::CapBelowTarget { cap, target });
            }
        }
        Ok(())
    }

    /// The most sets a match can take: `2 * sets_to_win - 1`.
    pub fn max_sets(&self) -> usize {
        (2 * usize::from(self.sets_to_win)).saturating_sub(1)
    }

    /// Whether the set at `index` (from 0) is the deciding set, the last one a match can need.
    pub fn is_deciding_set(&self, index: usize) -> bool {
        index + 1 == self.max_sets()
    }

    /// The points the set at `index` (from 0) is played to.
    pub fn target_points(&self, index: usize) -> u16 {
        match self.final_set_points {
            Some(points) if self.is_deciding_set(index) => points,
            _ => self.set_points,
        }
    }

    fn set_rules(&self, index: usize) -> SetRules {
        SetRules {
            target: i64::from(self.target_points(index)),
            win_by: i64::from(self.win_by),
            cap: self.cap.map(i64::from),
        }
    }
}

/// The named scoring formats, for configuration and for choosing a format by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ScoringPreset {
    #[serde(rename = "best_of_3_to_25")]
    BestOf3To25,
    #[serde(rename = "best_of_5_to_25")]
    BestOf5To25,
    #[serde(rename = "one_set_to_21_cap_23")]
    OneSetTo21Cap23,
    #[serde(rename = "best_of_3_to_21")]
    BestOf3To21,
}

impl ScoringPreset {
    pub const ALL: [ScoringPreset; 4] = [
        ScoringPreset::BestOf3To25,
        ScoringPreset::BestOf5To25,
        ScoringPreset::OneSetTo21Cap23,
        ScoringPreset::BestOf3To21,
    ];

    /// The preset's stable name, as written in configuration and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ScoringPreset::BestOf3To25 => "best_of_3_to_25",
            ScoringPreset::BestOf5To25 => "best_of_5_to_25",
            ScoringPreset::OneSetTo21Cap23 => "one_set_to_21_cap_23",
            ScoringPreset::BestOf3To21 => "best_of_3_to_21",
        }
    }

    /// The preset named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|preset| preset.name() == name)
    }

    pub fn format(self) -> ScoringFormat {
        match self {
            ScoringPreset::BestOf3To25 => ScoringFormat::best_of_3_to_25(),
            ScoringPreset::BestOf5To25 => ScoringFormat::best_of_5_to_25(),
            ScoringPreset::OneSetTo21Cap23 => ScoringFormat::one_set_to_21_cap_23(),
            ScoringPreset::BestOf3To21 => ScoringFormat::best_of_3_to_21(),
        }
    }
}

impl fmt::Display for ScoringPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One of the two teams of a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Home,
    Away,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Home => "home",
            Side::Away => "away",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The points of one set, exactly as the client sent them: in JSON an object with exactly
/// `home` and `away` (an array such as `[25, 20]`, or any other field, is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)] // for the schema (`additionalProperties: false`); read by hand below
pub struct SetScore {
    pub home: i64,
    pub away: i64,
}

impl<'de> Deserialize<'de> for SetScore {
    // Written by hand: serde's derive also reads a struct from a sequence (`[25, 20]`), which
    // would let a client's positional mix-up pass as a set.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Home,
            Away,
        }

        struct SetVisitor;

        impl<'de> serde::de::Visitor<'de> for SetVisitor {
            type Value = SetScore;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a set as an object {\"home\": points, \"away\": points}")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SetScore, A::Error> {
                use serde::de::Error;
                let (mut home, mut away) = (None, None);
                while let Some(field) = map.next_key::<Field>()? {
                    let (slot, name) = match field {
                        Field::Home => (&mut home, "home"),
                        Field::Away => (&mut away, "away"),
                    };
                    if slot.is_some() {
                        return Err(A::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(SetScore {
                    home: home.ok_or_else(|| A::Error::missing_field("home"))?,
                    away: away.ok_or_else(|| A::Error::missing_field("away"))?,
                })
            }
        }

        deserializer.deserialize_struct("SetScore", &["home", "away"], SetVisitor)
    }
}

impl SetScore {
    pub const fn new(home: i64, away: i64) -> Self {
        Self { home, away }
    }

    fn has_points(&self) -> bool {
        self.home != 0 || self.away != 0
    }
}

impl fmt::Display for SetScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.home, self.away)
    }
}

/// Where a valid score leaves the match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreState {
    #[schema(maximum = 255)]
    pub sets_won_home: u8,
    #[schema(maximum = 255)]
    pub sets_won_away: u8,
    pub winner: Option<Side>,
    /// The match has a winner (`winner.is_some()`).
    pub completed: bool,
    /// The index (from 0) of the set being played: the last set while it is unfinished, the next
    /// one (not yet in the score) between sets and before the first; `None` once completed.
    pub current_set: Option<usize>,
}

/// Which rule a score (or a claimed status) breaks. Stable, serialized in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// A field breaks a rule of its own (an id, a name, an operation id, the body's id against
    /// the path's); the message says which.
    Invalid,
    /// The scoring format itself is invalid; the score cannot be judged.
    InvalidFormat,
    /// A set gives a side fewer than 0 points.
    NegativePoints,
    /// More sets than the format allows (`2 * sets_to_win - 1`).
    TooManySets,
    /// A set other than the last one is not finished.
    UnfinishedSet,
    /// A set's score goes on past the point where the set was already over.
    SetOverrun,
    /// A set comes after the match was already won.
    SetAfterMatchWon,
    /// The status says completed, but no side has won.
    CompletedWithoutWinner,
    /// The status says scheduled, but points have been scored.
    ScheduledWithPoints,
}

impl ViolationCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::Invalid => "invalid",
            ViolationCode::InvalidFormat => "invalid_format",
            ViolationCode::NegativePoints => "negative_points",
            ViolationCode::TooManySets => "too_many_sets",
            ViolationCode::UnfinishedSet => "unfinished_set",
            ViolationCode::SetOverrun => "set_overrun",
            ViolationCode::SetAfterMatchWon => "set_after_match_won",
            ViolationCode::CompletedWithoutWinner => "completed_without_winner",
            ViolationCode::ScheduledWithPoints => "scheduled_with_points",
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule: where (`path` into the request, e.g. `sets[2].away`, `sets`, `status`), which
/// rule (`code`), and a sentence with the numbers saying why (sets counted from 1 in messages,
/// from 0 in paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreViolation {
    pub path: String,
    pub code: ViolationCode,
    pub message: String,
}

impl ScoreViolation {
    /// A field that breaks a rule of its own ([`ViolationCode::Invalid`]).
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(path, ViolationCode::Invalid, message.into())
    }

    fn new(path: impl Into<String>, code: ViolationCode, message: String) -> Self {
        Self {
            path: path.into(),
            code,
            message,
        }
    }
}

impl fmt::Display for ScoreViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.path, self.code, self.message)
    }
}

/// The rules of one set, in the points' own type.
struct SetRules {
    target: i64,
    win_by: i64,
    cap: Option<i64>,
}

/// Where one set's score stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetProgress {
    /// Not over yet, and reachable by rallies.
    InProgress,
    /// Over, and the last point was the one that ended it.
    Won(Side),
    /// Goes on past the point where the set was already over (or could never be reached).
    Overrun,
}

impl SetRules {
    /// One side has what ends a set: the target and a lead of `win_by`, or the cap.
    /// Points must be non-negative.
    fn is_over(&self, home: i64, away: i64) -> bool {
        let (high, low) = (home.max(away), home.min(away));
        (high >= self.target && high - low >= self.win_by)
            || self.cap.is_some_and(|cap| high >= cap)
    }

    /// Not over, and reachable by rallies none of which ended the set. Every state that is not
    /// over is reachable (one of the two states before it is not over either), except a tie at
    /// or past the target when the lead needed is 1: both states before it are over.
    fn is_live(&self, home: i64, away: i64) -> bool {
        let unreachable_tie = self.win_by == 1 && home == away && home >= self.target;
        !(self.is_over(home, away) || unreachable_tie)
    }

    fn progress(&self, score: SetScore) -> SetProgress {
        let SetScore { home, away } = score;
        if self.is_live(home, away) {
            SetProgress::InProgress
        } else if home > away && self.is_over(home, away) && self.is_live(home - 1, away) {
            SetProgress::Won(Side::Home)
        } else if away > home && self.is_over(home, away) && self.is_live(home, away - 1) {
            SetProgress::Won(Side::Away)
        } else {
            SetProgress::Overrun
        }
    }

    /// "a set to 25 ends as soon as a side has 25 points and leads by 2 (or has 27, the cap)".
    fn describe(&self) -> String {
        let mut rule = format!(
            "a set to {target} ends as soon as a side has {target} points and leads by {win_by}",
            target = self.target,
            win_by = self.win_by,
        );
        if let Some(cap) = self.cap {
            rule.push_str(&format!(" (or has {cap}, the cap)"));
        }
        rule
    }
}

/// Judges a score under `format`: where the match stands, or every rule the score breaks.
///
/// Rules: points are never negative; every set but the last is finished; no set comes after the
/// match is won; at most `2 * sets_to_win - 1` sets; no set goes on past its end. An empty score
/// is a match not started. Sets after the match was won, or past the most a match can have, are
/// reported once (the first of them) and not judged further.
pub fn evaluate(
    format: &ScoringFormat,
    sets: &[SetScore],
) -> Result<ScoreState, Vec<ScoreViolation>> {
    if let Err(error) = format.validate() {
        return Err(vec![ScoreViolation::new(
            "format",
            ViolationCode::InvalidFormat,
            format!("the match's scoring format is invalid, so no score can be judged: {error}"),
        )]);
    }
    let sets_to_win = format.sets_to_win;
    let max_sets = format.max_sets();
    let mut violations = Vec::new();
    let mut won = SetsWon::default();
    let mut match_won_in: Option<(Side, usize)> = None;
    let mut last_set_in_progress = false;

    for (index, &set) in sets.iter().enumerate() {
        let set_number = index + 1;
        if let Some((winner, won_in)) = match_won_in {
            violations.push(ScoreViolation::new(
                format!("sets[{index}]"),
                ViolationCode::SetAfterMatchWon,
                format!(
                    "set {set_number} comes after the match was over: {winner} won it {} in set {}",
                    won.for_winner(winner),
                    won_in + 1,
                ),
            ));
            break;
        }
        if index >= max_sets {
            violations.push(ScoreViolation::new(
                "sets",
                ViolationCode::TooManySets,
                format!(
                    "a best-of-{max_sets} match has at most {}, but the score has {}",
                    count_of_sets(max_sets),
                    sets.len(),
                ),
            ));
            break;
        }
        let mut negative = false;
        for (side, points) in [(Side::Home, set.home), (Side::Away, set.away)] {
            if points < 0 {
                negative = true;
                violations.push(ScoreViolation::new(
                    format!("sets[{index}].{side}"),
                    ViolationCode::NegativePoints,
                    format!(
                        "set {set_number} gives {side} {points} points; points cannot be negative"
                    ),
                ));
            }
        }
        if negative {
            continue;
        }
        let rules = format.set_rules(index);
        match rules.progress(set) {
            SetProgress::InProgress if index + 1 == sets.len() => last_set_in_progress = true,
            SetProgress::InProgress => violations.push(ScoreViolation::new(
                format!("sets[{index}]"),
                ViolationCode::UnfinishedSet,
                format!(
                    "set {set_number} is unfinished at {set}, but set {} follows it: {}",
                    set_number + 1,
                    rules.describe(),
                ),
            )),
            SetProgress::Won(side) => {
                if won.add(side) == sets_to_win {
                    match_won_in = Some((side, index));
                }
            }
            SetProgress::Overrun => violations.push(ScoreViolation::new(
                format!("sets[{index}]"),
                ViolationCode::SetOverrun,
                format!(
                    "set {set_number} at {set} goes past the end of the set: {}",
                    rules.describe(),
                ),
            )),
        }
    }

    if !violations.is_empty() {
        return Err(violations);
    }
    let winner = match_won_in.map(|(side, _)| side);
    let current_set = match (winner, last_set_in_progress) {
        (Some(_), _) => None,
        (None, true) => Some(sets.len() - 1),
        (None, false) => Some(sets.len()),
    };
    Ok(ScoreState {
        sets_won_home: won.home,
        sets_won_away: won.away,
        winner,
        completed: winner.is_some(),
        current_set,
    })
}

/// "1 set", "3 sets".
fn count_of_sets(count: usize) -> String {
    if count == 1 {
        "1 set".to_owned()
    } else {
        format!("{count} sets")
    }
}

/// Sets won so far by each side.
#[derive(Default)]
struct SetsWon {
    home: u8,
    away: u8,
}

impl SetsWon {
    /// Counts a set for `side`; returns that side's sets won.
    fn add(&mut self, side: Side) -> u8 {
        let count = match side {
            Side::Home => &mut self.home,
            Side::Away => &mut self.away,
        };
        *count = count.saturating_add(1);
        *count
    }

    /// "2-1", the winner's count first.
    fn for_winner(&self, winner: Side) -> String {
        match winner {
            Side::Home => format!("{}-{}", self.home, self.away),
            Side::Away => format!("{}-{}", self.away, self.home),
        }
    }
}

/// A match's status as a client reports it. Serialized in snake_case (`in_progress`); the
/// CourtSync spelling `in-progress` is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchStatus {
    Scheduled,
    #[serde(alias = "in-progress")]
    InProgress,
    Completed,
    Cancelled,
}

impl MatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchStatus::Scheduled => "scheduled",
            MatchStatus::InProgress => "in_progress",
            MatchStatus::Completed => "completed",
            MatchStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for MatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A score and status that passed [`check_status`]: where the match stands and the status to
/// store (which may differ from the one claimed, see [`check_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedScore {
    pub state: ScoreState,
    pub status: MatchStatus,
}

/// Judges a score and the status the client claims for it, and gives the status to store.
///
/// The score is judged first ([`evaluate`]); if it breaks rules, those are the answer. Then:
/// `completed` for a match nobody has won is refused (a winner who has not won); `scheduled`
/// with points on the board is refused; a won match reported `in_progress` is stored as
/// `completed`; `cancelled` is the director's call and is kept with any valid score.
pub fn check_status(
    format: &ScoringFormat,
    sets: &[SetScore],
    claimed: MatchStatus,
) -> Result<AcceptedScore, Vec<ScoreViolation>> {
    let state = evaluate(format, sets)?;
    let status = match claimed {
        MatchStatus::Completed if !state.completed => {
            return Err(vec![ScoreViolation::new(
                "status",
                ViolationCode::CompletedWithoutWinner,
                format!(
                    "status is completed, but no side has won: sets stand {}-{} (home-away) and \
                     a side needs {} to win",
                    state.sets_won_home, state.sets_won_away, format.sets_to_win,
                ),
            )]);
        }
        MatchStatus::Scheduled => {
            if let Some((index, set)) = sets.iter().enumerate().find(|(_, set)| set.has_points()) {
                return Err(vec![ScoreViolation::new(
                    "status",
                    ViolationCode::ScheduledWithPoints,
                    format!(
                        "status is scheduled, but set {} already stands {set}",
                        index + 1
                    ),
                )]);
            }
            MatchStatus::Scheduled
        }
        MatchStatus::InProgress if state.completed => MatchStatus::Completed,
        other => other,
    };
    Ok(AcceptedScore { state, status })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_set_is_read_only_from_an_object_with_home_and_away() {
        let read = |text: &str| serde_json::from_str::<SetScore>(text);
        assert_eq!(read(r#"{"away":20,"home":25}"#).expect("a set"), SetScore::new(25, 20));
        for refused in [
            "[25,20]",
            r#"{"home":3,"away":1,"serve":"home"}"#,
            r#"{"home":3}"#,
            r#"{"home":3,"home":4,"away":1}"#,
            r#"{"home":"3","away":1}"#,
            "25",
        ] {
            assert!(read(refused).is_err(), "{refused} must be refused");
        }
    }

    fn sets(scores: &[(i64, i64)]) -> Vec<SetScore> {
        scores
            .iter()
            .map(|&(home, away)| SetScore::new(home, away))
            .collect()
    }

    /// The one violation `score` breaks under `format`.
    fn only_violation(format: &ScoringFormat, scores: &[(i64, i64)]) -> ScoreViolation {
        let violations = evaluate(format, &sets(scores)).expect_err("score must be refused");
        assert_eq!(violations.len(), 1, "{violations:#?}");
        violations.into_iter().next().expect("one violation")
    }

    fn check(violation: &ScoreViolation, path: &str, code: ViolationCode, message: &str) {
        assert_eq!(
            (
                violation.path.as_str(),
                violation.code,
                violation.message.as_str()
            ),
            (path, code, message)
        );
    }

    fn progress(format: &ScoringFormat, index: usize, home: i64, away: i64) -> SetProgress {
        format.set_rules(index).progress(SetScore::new(home, away))
    }

    // ---- formats ----

    #[test]
    fn presets_are_valid_and_named() {
        for preset in ScoringPreset::ALL {
            assert_eq!(preset.format().validate(), Ok(()), "{preset}");
            assert_eq!(ScoringPreset::from_name(preset.name()), Some(preset));
            let json = serde_json::to_string(&preset).expect("serialize");
            assert_eq!(json, format!("\"{}\"", preset.name()));
        }
        assert_eq!(ScoringPreset::from_name("best_of_7"), None);
        assert_eq!(ScoringFormat::best_of_5_to_25().max_sets(), 5);
        assert_eq!(ScoringFormat::best_of_5_to_25().target_points(4), 15);
        assert_eq!(ScoringFormat::best_of_5_to_25().target_points(3), 25);
        assert_eq!(ScoringFormat::one_set_to_21_cap_23().target_points(0), 21);
    }

    #[test]
    fn nonsense_formats_are_refused() {
        let good = ScoringFormat::best_of_3_to_25();
        let cases = [
            (
                ScoringFormat {
                    sets_to_win: 0,
                    ..good
                },
                FormatError::NoSetsToWin,
            ),
            (
                ScoringFormat {
                    set_points: 0,
                    ..good
                },
                FormatError::NoSetPoints,
            ),
            (
                ScoringFormat {
                    final_set_points: Some(0),
                    ..good
                },
                FormatError::NoFinalSetPoints,
            ),
            (
                ScoringFormat {
                    sets_to_win: 1,
                    ..good
                },
                FormatError::FinalSetWithoutDecider,
            ),
            (ScoringFormat { win_by: 0, ..good }, FormatError::NoWinBy),
            (
                ScoringFormat {
                    cap: Some(24),
                    ..good
                },
                FormatError::CapBelowTarget {
                    cap: 24,
                    target: 25,
                },
            ),
            (
                ScoringFormat {
                    set_points: 15,
                    final_set_points: Some(25),
                    cap: Some(20),
                    ..good
                },
                FormatError::CapBelowTarget {
                    cap: 20,
                    target: 25,
                },
            ),
        ];
        for (format, error) in cases {
            assert_eq!(format.validate(), Err(error), "{format:?}");
        }
        // A cap equal to the target is a set to that many points, no win-by.
        assert_eq!(
            ScoringFormat {
                cap: Some(25),
                ..good
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn format_json_is_camel_case_read_whole_and_validated_apart() {
        let json = serde_json::to_value(ScoringFormat::one_set_to_21_cap_23()).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"setsToWin": 1, "setPoints": 21, "winBy": 2, "cap": 23})
        );
        let parsed: ScoringFormat = serde_json::from_value(serde_json::json!(
            {"setsToWin": 2, "setPoints": 25, "finalSetPoints": 15, "winBy": 2}
        ))
        .expect("valid format");
        assert_eq!(parsed, ScoringFormat::best_of_3_to_25());
        // Read as sent, so the service can answer which rule it breaks (422, not a parse error).
        let invalid: ScoringFormat = serde_json::from_value(serde_json::json!(
            {"setsToWin": 2, "setPoints": 25, "winBy": 0}
        ))
        .expect("the fields are well-formed");
        assert_eq!(invalid.validate(), Err(FormatError::NoWinBy));
        let unknown = serde_json::from_value::<ScoringFormat>(serde_json::json!(
            {"setsToWin": 2, "setPoints": 25, "winBy": 2, "setPoint": 3}
        ));
        assert!(unknown.is_err());
    }

    // ---- single sets ----

    #[test]
    fn set_to_25_win_by_2() {
        let format = ScoringFormat::best_of_3_to_25();
        assert_eq!(progress(&format, 0, 25, 23), SetProgress::Won(Side::Home));
        assert_eq!(progress(&format, 0, 27, 25), SetProgress::Won(Side::Home));
        assert_eq!(progress(&format, 0, 25, 27), SetProgress::Won(Side::Away));
        assert_eq!(progress(&format, 0, 25, 24), SetProgress::InProgress);
        assert_eq!(progress(&format, 0, 30, 30), SetProgress::InProgress);
        assert_eq!(progress(&format, 0, 28, 25), SetProgress::Overrun);
        assert_eq!(progress(&format, 0, 26, 20), SetProgress::Overrun);
        assert_eq!(progress(&format, 0, 0, 26), SetProgress::Overrun);
        // The deciding set goes to 15.
        assert_eq!(progress(&format, 2, 15, 13), SetProgress::Won(Side::Home));
        assert_eq!(progress(&format, 2, 16, 13), SetProgress::Overrun);
    }

    #[test]
    fn set_to_21_capped_at_23() {
        let format = ScoringFormat::one_set_to_21_cap_23();
        assert_eq!(progress(&format, 0, 21, 19), SetProgress::Won(Side::Home));
        assert_eq!(progress(&format, 0, 22, 22), SetProgress::InProgress);
        assert_eq!(progress(&format, 0, 23, 22), SetProgress::Won(Side::Home));
        assert_eq!(progress(&format, 0, 21, 23), SetProgress::Won(Side::Away));
        assert_eq!(progress(&format, 0, 24, 22), SetProgress::Overrun);
        assert_eq!(progress(&format, 0, 23, 23), SetProgress::Overrun);
    }

    #[test]
    fn win_by_1_never_ties_at_the_target() {
        let format = ScoringFormat {
            sets_to_win: 1,
            set_points: 11,
            final_set_points: None,
            win_by: 1,
            cap: None,
        };
        assert_eq!(progress(&format, 0, 11, 10), SetProgress::Won(Side::Home));
        assert_eq!(progress(&format, 0, 10, 10), SetProgress::InProgress);
        assert_eq!(progress(&format, 0, 11, 11), SetProgress::Overrun);
        assert_eq!(progress(&format, 0, 12, 11), SetProgress::Overrun);
    }

    // ---- whole scores: one test per violation code, exact paths and messages ----

    #[test]
    fn empty_score_is_a_match_not_started() {
        let state = evaluate(&ScoringFormat::best_of_3_to_25(), &[]).expect("valid");
        assert_eq!(
            state,
            ScoreState {
                sets_won_home: 0,
                sets_won_away: 0,
                winner: None,
                completed: false,
                current_set: Some(0),
            }
        );
    }

    #[test]
    fn states_of_a_valid_match() {
        let format = ScoringFormat::best_of_3_to_25();
        let in_second = evaluate(&format, &sets(&[(25, 20), (3, 4)])).expect("valid");
        assert_eq!(
            (in_second.sets_won_home, in_second.current_set),
            (1, Some(1))
        );
        let between = evaluate(&format, &sets(&[(25, 20), (20, 25)])).expect("valid");
        assert_eq!((between.sets_won_away, between.current_set), (1, Some(2)));
        let won = evaluate(&format, &sets(&[(25, 20), (20, 25), (13, 15)])).expect("valid");
        assert_eq!(
            won,
            ScoreState {
                sets_won_home: 1,
                sets_won_away: 2,
                winner: Some(Side::Away),
                completed: true,
                current_set: None,
            }
        );
    }

    #[test]
    fn negative_points() {
        let violation = only_violation(&ScoringFormat::best_of_3_to_25(), &[(25, 20), (4, -3)]);
        check(
            &violation,
            "sets[1].away",
            ViolationCode::NegativePoints,
            "set 2 gives away -3 points; points cannot be negative",
        );
        let both =
            evaluate(&ScoringFormat::best_of_3_to_25(), &sets(&[(-1, -2)])).expect_err("negative");
        let paths: Vec<_> = both.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["sets[0].home", "sets[0].away"]);
    }

    #[test]
    fn unfinished_set() {
        let violation = only_violation(
            &ScoringFormat::best_of_3_to_25(),
            &[(24, 20), (25, 10), (3, 0)],
        );
        check(
            &violation,
            "sets[0]",
            ViolationCode::UnfinishedSet,
            "set 1 is unfinished at 24-20, but set 2 follows it: a set to 25 ends as soon as a \
             side has 25 points and leads by 2",
        );
    }

    #[test]
    fn set_overrun() {
        let violation = only_violation(&ScoringFormat::best_of_3_to_25(), &[(28, 25)]);
        check(
            &violation,
            "sets[0]",
            ViolationCode::SetOverrun,
            "set 1 at 28-25 goes past the end of the set: a set to 25 ends as soon as a side has \
             25 points and leads by 2",
        );
        let capped = only_violation(&ScoringFormat::one_set_to_21_cap_23(), &[(24, 22)]);
        check(
            &capped,
            "sets[0]",
            ViolationCode::SetOverrun,
            "set 1 at 24-22 goes past the end of the set: a set to 21 ends as soon as a side has \
             21 points and leads by 2 (or has 23, the cap)",
        );
        let deciding = only_violation(
            &ScoringFormat::best_of_3_to_25(),
            &[(25, 20), (20, 25), (17, 14)],
        );
        check(
            &deciding,
            "sets[2]",
            ViolationCode::SetOverrun,
            "set 3 at 17-14 goes past the end of the set: a set to 15 ends as soon as a side has \
             15 points and leads by 2",
        );
    }

    #[test]
    fn set_after_match_won() {
        let violation = only_violation(
            &ScoringFormat::best_of_3_to_25(),
            &[(25, 20), (25, 22), (0, 0)],
        );
        check(
            &violation,
            "sets[2]",
            ViolationCode::SetAfterMatchWon,
            "set 3 comes after the match was over: home won it 2-0 in set 2",
        );
        // Reported once, at the first set after the win, even past the most sets allowed.
        let violation = only_violation(
            &ScoringFormat::best_of_3_to_25(),
            &[(25, 20), (20, 25), (10, 15), (1, 0), (2, 0)],
        );
        check(
            &violation,
            "sets[3]",
            ViolationCode::SetAfterMatchWon,
            "set 4 comes after the match was over: away won it 2-1 in set 3",
        );
    }

    #[test]
    fn too_many_sets() {
        // Three unfinished sets never win the match, so the fourth is one too many.
        let violations = evaluate(
            &ScoringFormat::best_of_3_to_25(),
            &sets(&[(1, 0), (1, 0), (1, 0), (1, 0)]),
        )
        .expect_err("too many");
        let last = violations.last().expect("violations");
        check(
            last,
            "sets",
            ViolationCode::TooManySets,
            "a best-of-3 match has at most 3 sets, but the score has 4",
        );
        let codes: Vec<_> = violations.iter().map(|v| v.code).collect();
        assert_eq!(
            codes,
            [
                ViolationCode::UnfinishedSet,
                ViolationCode::UnfinishedSet,
                ViolationCode::UnfinishedSet,
                ViolationCode::TooManySets
            ]
        );
        let one_set = evaluate(
            &ScoringFormat::one_set_to_21_cap_23(),
            &sets(&[(3, 1), (0, 0)]),
        )
        .expect_err("too many");
        check(
            &one_set[1],
            "sets",
            ViolationCode::TooManySets,
            "a best-of-1 match has at most 1 set, but the score has 2",
        );
    }

    #[test]
    fn invalid_format() {
        let format = ScoringFormat {
            sets_to_win: 0,
            ..ScoringFormat::best_of_3_to_25()
        };
        let violation = only_violation(&format, &[]);
        check(
            &violation,
            "format",
            ViolationCode::InvalidFormat,
            "the match's scoring format is invalid, so no score can be judged: setsToWin is 0: a \
             match needs at least one set to win",
        );
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let violations = evaluate(
            &ScoringFormat::best_of_5_to_25(),
            &sets(&[(-1, 25), (20, 24), (30, 10), (2, 2)]),
        )
        .expect_err("broken");
        let found: Vec<_> = violations
            .iter()
            .map(|v| (v.path.as_str(), v.code))
            .collect();
        assert_eq!(
            found,
            [
                ("sets[0].home", ViolationCode::NegativePoints),
                ("sets[1]", ViolationCode::UnfinishedSet),
                ("sets[2]", ViolationCode::SetOverrun),
            ]
        );
    }

    #[test]
    fn huge_points_are_judged_without_overflow() {
        let format = ScoringFormat::best_of_3_to_25();
        // Without a cap, a deuce can go on for ever: this is a set still being played.
        let state = evaluate(&format, &sets(&[(i64::MAX, i64::MAX - 1)])).expect("in play");
        assert_eq!(state.current_set, Some(0));
        let state = evaluate(&format, &sets(&[(i64::MAX - 2, i64::MAX)])).expect("won");
        assert_eq!((state.sets_won_away, state.current_set), (1, Some(1)));
        let violation = only_violation(&format, &[(i64::MAX, 0)]);
        assert_eq!(violation.code, ViolationCode::SetOverrun);
        let capped = ScoringFormat::one_set_to_21_cap_23();
        let violation = only_violation(&capped, &[(i64::MAX, i64::MAX - 1)]);
        assert_eq!(violation.code, ViolationCode::SetOverrun);
        let violation = only_violation(&format, &[(i64::MIN, 0)]);
        assert_eq!(violation.code, ViolationCode::NegativePoints);
    }

    #[test]
    fn json_of_scores_states_and_violations() {
        let parsed: Vec<SetScore> =
            serde_json::from_str(r#"[{"home":25,"away":-3}]"#).expect("parse");
        assert_eq!(parsed, sets(&[(25, -3)]));
        let violation = only_violation(&ScoringFormat::best_of_3_to_25(), &[(28, 25)]);
        let json = serde_json::to_value(&violation).expect("serialize");
        assert_eq!(json["code"], "set_overrun");
        assert_eq!(json["path"], "sets[0]");
        let state = evaluate(&ScoringFormat::best_of_3_to_25(), &[]).expect("valid");
        let json = serde_json::to_value(state).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"setsWonHome": 0, "setsWonAway": 0, "winner": null,
                               "completed": false, "currentSet": 0})
        );
    }

    // ---- status ----

    #[test]
    fn completed_without_winner() {
        let violations = check_status(
            &ScoringFormat::best_of_3_to_25(),
            &sets(&[(25, 20), (20, 25)]),
            MatchStatus::Completed,
        )
        .expect_err("nobody has won");
        assert_eq!(violations.len(), 1);
        check(
            &violations[0],
            "status",
            ViolationCode::CompletedWithoutWinner,
            "status is completed, but no side has won: sets stand 1-1 (home-away) and a side \
             needs 2 to win",
        );
    }

    #[test]
    fn scheduled_with_points() {
        let violations = check_status(
            &ScoringFormat::best_of_3_to_25(),
            &sets(&[(0, 0), (3, 2)]),
            MatchStatus::Scheduled,
        );
        // 0-0 is unfinished, so the score itself is refused first.
        assert_eq!(
            violations.expect_err("refused")[0].code,
            ViolationCode::UnfinishedSet
        );
        let violations = check_status(
            &ScoringFormat::best_of_3_to_25(),
            &sets(&[(3, 2)]),
            MatchStatus::Scheduled,
        )
        .expect_err("points on the board");
        check(
            &violations[0],
            "status",
            ViolationCode::ScheduledWithPoints,
            "status is scheduled, but set 1 already stands 3-2",
        );
    }

    #[test]
    fn effective_status() {
        let format = ScoringFormat::best_of_3_to_25();
        let won = sets(&[(25, 20), (25, 22)]);
        let status = |sets: &[SetScore], claimed| {
            check_status(&format, sets, claimed).map(|accepted| accepted.status)
        };
        assert_eq!(
            status(&won, MatchStatus::InProgress),
            Ok(MatchStatus::Completed)
        );
        assert_eq!(
            status(&won, MatchStatus::Completed),
            Ok(MatchStatus::Completed)
        );
        assert_eq!(
            status(&won, MatchStatus::Cancelled),
            Ok(MatchStatus::Cancelled)
        );
        assert_eq!(
            status(&won[..1], MatchStatus::InProgress),
            Ok(MatchStatus::InProgress)
        );
        assert_eq!(
            status(&won[..1], MatchStatus::Cancelled),
            Ok(MatchStatus::Cancelled)
        );
        assert_eq!(
            status(&[], MatchStatus::Scheduled),
            Ok(MatchStatus::Scheduled)
        );
        assert_eq!(
            status(&sets(&[(0, 0)]), MatchStatus::Scheduled),
            Ok(MatchStatus::Scheduled)
        );
        assert_eq!(
            status(&[], MatchStatus::InProgress),
            Ok(MatchStatus::InProgress)
        );
    }

    #[test]
    fn status_json() {
        let parse = |text: &str| serde_json::from_str::<MatchStatus>(text).expect("status");
        assert_eq!(parse("\"in_progress\""), MatchStatus::InProgress);
        assert_eq!(parse("\"in-progress\""), MatchStatus::InProgress);
        assert_eq!(
            serde_json::to_string(&MatchStatus::InProgress).expect("serialize"),
            "\"in_progress\""
        );
    }

    // ---- properties ----

    /// The rally-by-rally model a score is checked against: the rule for ending a set, applied
    /// after every point, with no notion of overrun.
    struct Rallies {
        format: ScoringFormat,
        sets: Vec<SetScore>,
        set_over: bool,
        won_home: u8,
        won_away: u8,
        winner: Option<Side>,
    }

    impl Rallies {
        fn new(format: ScoringFormat) -> Self {
            Self {
                format,
                sets: Vec::new(),
                set_over: false,
                won_home: 0,
                won_away: 0,
                winner: None,
            }
        }

        /// Plays one rally won by `side`; the match must not be over.
        fn play(&mut self, side: Side) {
            if self.sets.is_empty() || self.set_over {
                self.sets.push(SetScore::default());
                self.set_over = false;
            }
            let index = self.sets.len() - 1;
            let target = i64::from(self.format.target_points(index));
            let set = &mut self.sets[index];
            let (mine, theirs) = match side {
                Side::Home => (&mut set.home, set.away),
                Side::Away => (&mut set.away, set.home),
            };
            *mine += 1;
            let by_lead = *mine >= target && *mine - theirs >= i64::from(self.format.win_by);
            let by_cap = self.format.cap.is_some_and(|cap| *mine >= i64::from(cap));
            if by_lead || by_cap {
                self.set_over = true;
                let won = match side {
                    Side::Home => &mut self.won_home,
                    Side::Away => &mut self.won_away,
                };
                *won += 1;
                if *won == self.format.sets_to_win {
                    self.winner = Some(side);
                }
            }
        }

        fn expected_state(&self) -> ScoreState {
            let current_set = match (self.winner, self.set_over || self.sets.is_empty()) {
                (Some(_), _) => None,
                (None, true) => Some(self.sets.len()),
                (None, false) => Some(self.sets.len() - 1),
            };
            ScoreState {
                sets_won_home: self.won_home,
                sets_won_away: self.won_away,
                winner: self.winner,
                completed: self.winner.is_some(),
                current_set,
            }
        }

        /// The winner of each set that is over.
        fn set_winners(&self) -> Vec<(usize, Side)> {
            let finished = if self.set_over {
                self.sets.len()
            } else {
                self.sets.len().saturating_sub(1)
            };
            self.sets[..finished]
                .iter()
                .enumerate()
                .map(|(index, set)| {
                    (
                        index,
                        if set.home > set.away {
                            Side::Home
                        } else {
                            Side::Away
                        },
                    )
                })
                .collect()
        }
    }

    fn any_valid_format() -> impl Strategy<Value = ScoringFormat> {
        let preset =
            proptest::sample::select(ScoringPreset::ALL.to_vec()).prop_map(ScoringPreset::format);
        let random = (
            1u8..=4,
            1u16..=30,
            proptest::option::of(1u16..=30),
            1u16..=4,
            proptest::option::of(0u16..=5),
        )
            .prop_map(
                |(sets_to_win, set_points, final_set_points, win_by, cap_past_target)| {
                    let final_set_points = final_set_points.filter(|_| sets_to_win > 1);
                    let target = set_points.max(final_set_points.unwrap_or(0));
                    ScoringFormat {
                        sets_to_win,
                        set_points,
                        final_set_points,
                        win_by,
                        cap: cap_past_target.map(|past| target + past),
                    }
                },
            );
        prop_oneof![preset, random]
    }

    fn rally_winners() -> impl Strategy<Value = Vec<Side>> {
        // Biased streaks as well as even rallies, so both blowouts and long deuces occur.
        (0.2f64..0.8, 0..600usize).prop_flat_map(|(home_share, len)| {
            proptest::collection::vec(
                proptest::bool::weighted(home_share)
                    .prop_map(|home| if home { Side::Home } else { Side::Away }),
                len,
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every score a rally-by-rally match passes through is valid and says exactly where the
        /// match stands; opening the next set at 0-0 between sets is valid too.
        #[test]
        fn every_score_of_a_played_match_is_valid(
            format in any_valid_format(),
            rallies in rally_winners(),
        ) {
            prop_assert_eq!(format.validate(), Ok(()));
            let mut game = Rallies::new(format);
            prop_assert_eq!(evaluate(&format, &game.sets), Ok(game.expected_state()));
            for side in rallies {
                if game.winner.is_some() {
                    break;
                }
                game.play(side);
                prop_assert_eq!(evaluate(&format, &game.sets), Ok(game.expected_state()));
                if game.set_over && game.winner.is_none() {
                    let mut opened = game.sets.clone();
                    opened.push(SetScore::default());
                    let state = evaluate(&format, &opened);
                    prop_assert_eq!(state.map(|s| s.current_set), Ok(Some(game.sets.len())));
                }
            }
        }

        /// One more point for the winner of a finished set is an overrun of that set, and a set
        /// after a won match is refused at its path.
        #[test]
        fn going_past_the_end_is_refused(
            format in any_valid_format(),
            rallies in rally_winners(),
            pick in any::<proptest::sample::Index>(),
            extra in (0i64..30, 0i64..30),
        ) {
            let mut game = Rallies::new(format);
            for side in rallies {
                if game.winner.is_some() {
                    break;
                }
                game.play(side);
            }
            let finished = game.set_winners();
            if !finished.is_empty() {
                let (index, winner) = finished[pick.index(finished.len())];
                let mut overrun = game.sets.clone();
                match winner {
                    Side::Home => overrun[index].home += 1,
                    Side::Away => overrun[index].away += 1,
                }
                let violations = evaluate(&format, &overrun).expect_err("overrun");
                let found: Vec<_> = violations.iter().map(|v| (v.path.clone(), v.code)).collect();
                prop_assert_eq!(found, vec![(format!("sets[{index}]"), ViolationCode::SetOverrun)]);
            }
            if game.winner.is_some() {
                let mut after = game.sets.clone();
                after.push(SetScore::new(extra.0, extra.1));
                let violations = evaluate(&format, &after).expect_err("set after the win");
                let found: Vec<_> = violations.iter().map(|v| (v.path.clone(), v.code)).collect();
                prop_assert_eq!(
                    found,
                    vec![(format!("sets[{}]", game.sets.len()), ViolationCode::SetAfterMatchWon)]
                );
            }
        }

        /// The closed-form judgement of one set agrees with a search over every rally sequence
        /// that never plays on past the end of the set.
        #[test]
        fn set_progress_matches_exhaustive_rallies(
            target in 1i64..12,
            win_by in 1i64..5,
            cap_past_target in proptest::option::of(0i64..4),
        ) {
            let rules = SetRules { target, win_by, cap: cap_past_target.map(|past| target + past) };
            let size = 24usize;
            // reachable[h][a]: some rally sequence reaches h-a without the set having ended before.
            let mut reachable = vec![vec![false; size]; size];
            reachable[0][0] = true;
            for total in 0..(2 * size) {
                for home in 0..size.min(total + 1) {
                    let away = total - home;
                    let (h, a) = (home as i64, away as i64);
                    if away >= size || !reachable[home][away] || rules.is_over(h, a) {
                        continue;
                    }
                    if home + 1 < size { reachable[home + 1][away] = true; }
                    if away + 1 < size { reachable[home][away + 1] = true; }
                }
            }
            for (home, row) in reachable.iter().enumerate().take(size - 1) {
                for (away, &reached) in row.iter().enumerate().take(size - 1) {
                    let (h, a) = (home as i64, away as i64);
                    let expected = match (reached, rules.is_over(h, a)) {
                        (true, false) => SetProgress::InProgress,
                        (true, true) if h > a => SetProgress::Won(Side::Home),
                        (true, true) => SetProgress::Won(Side::Away),
                        (false, _) => SetProgress::Overrun,
                    };
                    prop_assert_eq!(rules.progress(SetScore::new(h, a)), expected, "{}-{}", h, a);
                }
            }
        }
    }
}
