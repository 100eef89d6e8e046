//! Fuzzes what the sports API reads from clients: any bytes as a score update (then judged
//! against a format and a claim), a match, a tournament export. Decoding may refuse; judging
//! must never panic or overflow, whatever the numbers.
#![no_main]

use courtside_domain::claim::{Claim, authorize_write};
use courtside_domain::conflict::{ScoreEdit, StoredRevision, decide};
use courtside_domain::model::Match;
use courtside_domain::scoring::{MatchStatus, ScoringFormat, SetScore, check_status};
use courtside_domain::service::{ScoreUpdate, TournamentExport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(update) = serde_json::from_slice::<ScoreUpdate>(data) {
        for format in [ScoringFormat::best_of_3_to_25(), ScoringFormat::one_set_to_21_cap_23(), ScoringFormat::best_of_5_to_25()] {
            let _ = check_status(&format, &update.sets, update.status);
        }
        let edit = ScoreEdit { base_version: update.base_version, client_time_ms: update.client_time_ms };
        let stored = StoredRevision { version: 3, updated_at_ms: 1_800_000_000_000 };
        let _ = decide(Some(&stored), &edit, 1_800_000_000_500);
        let claim = Claim { holder: "kim".into(), fencing_token: 2, claimed_at_ms: 0, expires_at_ms: i64::MAX };
        let _ = authorize_write(Some(&claim), "kim", update.fencing_token.unwrap_or(0), 1_800_000_000_000);
    }
    if let Ok(planned) = serde_json::from_slice::<Match>(data) {
        if let Some(format) = planned.format {
            let _ = format.validate();
            // A format is read as sent (the service validates it): the rules must refuse an
            // invalid one, never panic on it.
            let _ = check_status(&format, &[SetScore::new(25, 23), SetScore::new(3, 1)], MatchStatus::InProgress);
        }
    }
    let _ = serde_json::from_slice::<TournamentExport>(data);
});
