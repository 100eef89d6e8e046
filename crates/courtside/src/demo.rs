//! `courtside demo`: the server with a sample tournament and simulated scorekeepers, so a
//! newcomer sees scores move within seconds. Everything goes through the same sports service a
//! real scorekeeper's requests do (claims, fencing tokens, the format's rules, history).
//!
//! The tournament `demo` has two divisions, eight teams and four courts. One simulated
//! scorekeeper per court claims the court's next match, plays it point by point (a point every
//! 0.3–1.2 s), releases the claim when the format says the match is won, and moves on; when a
//! round is over, the next round is scheduled. Restarting on the same data dir carries on.

use std::time::Duration;

use courtside_core::Role;
use courtside_domain::model::{Court, Division, Match, Team, Tournament};
use courtside_domain::scoring::{MatchStatus, ScoringFormat, SetScore, evaluate};
use courtside_domain::service::{Actor, ScoreUpdate, SportsError, SportsService};
use rand::Rng;

const TOURNAMENT: &str = "demo";
const COURTS: usize = 4;
const TEAMS: [(&str, &str, &str); 8] = [
    ("falcons", "Falcons", "u18"),
    ("orcas", "Orcas", "u18"),
    ("lynx", "Lynx", "u18"),
    ("comets", "Comets", "u18"),
    ("herons", "Herons", "u16"),
    ("wolves", "Wolves", "u16"),
    ("otters", "Otters", "u16"),
    ("sparks", "Sparks", "u16"),
];

/// Quick matches: best of 3 to 15, win by 2, capped at 17.
fn demo_format() -> ScoringFormat {
    ScoringFormat { sets_to_win: 2, set_points: 15, final_set_points: Some(15), win_by: 2, cap: Some(17) }
}

fn director() -> Actor {
    Actor::new("demo-director", vec![Role::Director])
}

/// Creates the tournament unless an earlier run did.
pub async fn seed(sports: &SportsService) -> Result<(), String> {
    let director = director();
    let tournament =
        Tournament { id: TOURNAMENT.into(), name: "Courtside Demo Cup".into(), default_format: Some(demo_format()) };
    match sports.create_tournament(&director, tournament).await {
        Ok(_) => {}
        Err(SportsError::AlreadyExists { .. }) => return Ok(()),
        Err(error) => return Err(error.to_string()),
    }
    for (id, name) in [("u16", "Under 16"), ("u18", "Under 18")] {
        sports.put_division(&director, TOURNAMENT, Division { id: id.into(), name: name.into() }).await.map_err(|e| e.to_string())?;
    }
    for (id, name, division) in TEAMS {
        let team = Team { id: id.into(), name: name.into(), division_id: Some(division.into()) };
        sports.put_team(&director, TOURNAMENT, team).await.map_err(|e| e.to_string())?;
    }
    for court in 1..=COURTS {
        let court = Court { id: format!("c{court}"), name: format!("Court {court}") };
        sports.put_court(&director, TOURNAMENT, court).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The match court `court` plays in round `round`: a round robin of each division's four teams
/// over its two courts, so no team plays on two courts at once.
fn pairing(round: usize, court: usize) -> Match {
    const ROUND_ROBIN: [[(usize, usize); 2]; 3] = [[(0, 1), (2, 3)], [(0, 2), (1, 3)], [(0, 3), (1, 2)]];
    let division = if court <= COURTS / 2 { "u18" } else { "u16" };
    let teams: Vec<&str> = TEAMS.iter().filter(|(_, _, d)| *d == division).map(|(id, _, _)| *id).collect();
    let (home, away) = ROUND_ROBIN[(round - 1) % ROUND_ROBIN.len()][(court - 1) % 2];
    let (home, away) = (teams[home], teams[away]);
    Match {
        id: format!("r{round}-c{court}"),
        division_id: division.into(),
        home_team_id: home.into(),
        away_team_id: away.into(),
        court_id: Some(format!("c{court}")),
        scheduled_at_ms: None,
        format: None,
    }
}

/// One court's scorekeeper, forever: next match, claim, play, release.
pub async fn keep_score(sports: SportsService, court: usize) {
    let keeper = Actor::new(format!("keeper-c{court}"), vec![Role::Scorekeeper]);
    let mut round = 1;
    loop {
        let planned = pairing(round, court);
        let id = planned.id.clone();
        match sports.create_match(&director(), TOURNAMENT, planned).await {
            Ok(_) | Err(SportsError::AlreadyExists { .. }) => {}
            Err(error) => {
                tracing::warn!(%error, "demo: cannot schedule a match");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        }
        if let Err(error) = play(&sports, &keeper, &id).await {
            tracing::warn!(%error, match_id = id, "demo: scorekeeping stopped; trying again");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        round += 1;
    }
}

async fn play(sports: &SportsService, keeper: &Actor, match_id: &str) -> Result<(), SportsError> {
    let mut sets = match sports.score(TOURNAMENT, match_id).await? {
        Some(score) if score.status == MatchStatus::Completed => return Ok(()),
        Some(score) => score.sets,
        None => Vec::new(),
    };
    let claim = sports.claim(keeper, TOURNAMENT, match_id, None).await?;
    let format = demo_format();
    // Each team has a strength; the stronger one wins more rallies.
    let home_share = rand::rng().random_range(0.35..0.65);
    loop {
        let state = evaluate(&format, &sets).map_err(SportsError::ScoreRejected)?;
        if state.completed {
            break;
        }
        if state.current_set.is_some_and(|current| current >= sets.len()) {
            sets.push(SetScore::new(0, 0));
        }
        let pause = rand::rng().random_range(300..1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let home_wins = rand::rng().random_bool(home_share);
        if let Some(set) = sets.last_mut() {
            if home_wins { set.home += 1 } else { set.away += 1 }
        }
        let update = ScoreUpdate {
            match_id: match_id.to_string(),
            sets: sets.clone(),
            status: MatchStatus::InProgress,
            base_version: None,
            client_time_ms: None,
            op_id: None,
            fencing_token: Some(claim.fencing_token),
        };
        sports.update_score(keeper, TOURNAMENT, update).await?;
    }
    sports.release(keeper, TOURNAMENT, match_id).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// Starts the scorekeepers; they stop with the runtime.
pub fn start_scorekeepers(sports: &SportsService) {
    for court in 1..=COURTS {
        tokio::spawn(keep_score(sports.clone(), court));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairings_are_two_different_teams_of_one_division_and_nobody_plays_twice_at_once() {
        for round in 1..20 {
            let mut playing = std::collections::HashSet::new();
            for court in 1..=COURTS {
                let planned = pairing(round, court);
                assert!(playing.insert(planned.home_team_id.clone()) && playing.insert(planned.away_team_id.clone()));
                assert_ne!(planned.home_team_id, planned.away_team_id, "round {round} court {court}");
                for team in [&planned.home_team_id, &planned.away_team_id] {
                    let division = TEAMS.iter().find(|(id, _, _)| id == team).map(|(_, _, d)| *d);
                    assert_eq!(division, Some(planned.division_id.as_str()));
                }
            }
        }
        assert!(demo_format().validate().is_ok());
    }
}
