//! Who is listening for rank pushes: a player registered here is a listener on every board
//! season this node has loaded or loads later, so a move computes rank changes for them (and
//! only for registered players: see [`crate::changes`]). Registrations are counted — one per
//! connection that follows the player's personal channel — and a player stops listening when
//! the last one is withdrawn.

use std::sync::Arc;

use crate::board;
use crate::season::SeasonIndex;
use crate::service::{LeaderboardError, LeaderboardService, Slot};

impl LeaderboardService {
    /// Registers `player` for rank pushes on every board (counted: each registration needs its
    /// [`Self::unlisten`]).
    pub fn listen(&self, player: &str) -> Result<(), LeaderboardError> {
        board::check_player(player)?;
        {
            let mut listening = self.listening().lock();
            let count = listening.entry(player.to_string()).or_default();
            *count += 1;
            if *count > 1 {
                return Ok(());
            }
        }
        for slot in self.loaded_slots() {
            let mut index = slot.index.write();
            let SeasonIndex { listeners, ranking, .. } = &mut *index;
            listeners.listen(player, ranking);
        }
        Ok(())
    }

    /// Withdraws one registration of `player`; the last one stops the pushes.
    pub fn unlisten(&self, player: &str) {
        {
            let mut listening = self.listening().lock();
            match listening.get_mut(player) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    return;
                }
                Some(_) => {
                    listening.remove(player);
                }
                None => return,
            }
        }
        for slot in self.loaded_slots() {
            slot.index.write().listeners.unlisten(player);
        }
    }

    /// How many players are listening.
    pub fn listening_len(&self) -> usize {
        self.listening().lock().len()
    }

    fn loaded_slots(&self) -> Vec<Arc<Slot>> {
        self.slots().lock().values().filter_map(|cell| cell.get().cloned()).collect()
    }
}
