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
        // The slots change under the count's lock, so a concurrent `unlisten` cannot undo a
        // registration it did not count (the order listening → index is the one everywhere).
        let mut listening = self.listening().lock();
        let count = listening.entry(player.to_string()).or_default();
        *count += 1;
        if *count == 1 {
            for slot in self.loaded_slots() {
                let mut index = slot.index.write();
                let SeasonIndex { listeners, ranking, .. } = &mut *index;
                listeners.listen(player, ranking);
            }
        }
        Ok(())
    }

    /// Withdraws one registration of `player`; the last one stops the pushes.
    pub fn unlisten(&self, player: &str) {
        let mut listening = self.listening().lock();
        match listening.get_mut(player) {
            Some(count) if *count > 1 => *count -= 1,
            Some(_) => {
                listening.remove(player);
                for slot in self.loaded_slots() {
                    slot.index.write().listeners.unlisten(player);
                }
            }
            None => {}
        }
    }

    /// How many players are listening.
    pub fn listening_len(&self) -> usize {
        self.listening().lock().len()
    }

    /// Makes `slot`'s listeners exactly the registered players (when a slot has loaded: it was
    /// not visible to `listen` and `unlisten` meanwhile).
    pub(crate) fn sync_listeners(&self, slot: &Slot) {
        let listening = self.listening().lock();
        let mut index = slot.index.write();
        let SeasonIndex { listeners, ranking, .. } = &mut *index;
        let gone: Vec<String> = listeners.players().filter(|player| !listening.contains_key(*player)).map(str::to_string).collect();
        for player in gone {
            listeners.unlisten(&player);
        }
        for player in listening.keys() {
            if !listeners.is_listening(player) {
                listeners.listen(player, ranking);
            }
        }
    }

    fn loaded_slots(&self) -> Vec<Arc<Slot>> {
        self.slots().lock().values().filter_map(|cell| cell.get().cloned()).collect()
    }
}
