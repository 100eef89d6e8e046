//! A subscriber's place in a channel's stream, and the decision for each arriving publication:
//! deliver it, drop it as already seen, or fill a gap from history first.
//!
//! Live publications can race with the history read that starts a subscription, and a cross-node
//! broker can drop or repeat messages; the cursor is what turns that into exactly-once, in-order
//! delivery per subscriber.

use crate::stream::{Epoch, Publication, StreamPosition};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub position: StreamPosition,
}

/// What to do with an arriving publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// The next one: deliver it (the cursor has moved).
    Deliver,
    /// At or before the cursor: already delivered.
    Duplicate,
    /// Offsets `from..=to` are missing before this one: read them from history, then retry.
    Gap { from: u64, to: u64 },
    /// A publication without an offset (ephemeral namespace): deliver, the cursor stays.
    Unnumbered,
    /// A different epoch: the history the cursor points into is gone.
    EpochChanged { epoch: Epoch },
}

impl Cursor {
    pub fn new(position: StreamPosition) -> Self {
        Self { position }
    }

    pub fn admit(&mut self, publication: &Publication) -> Admit {
        if publication.offset == 0 {
            return Admit::Unnumbered;
        }
        if publication.epoch != self.position.epoch {
            return Admit::EpochChanged { epoch: publication.epoch.clone() };
        }
        let next = self.position.offset + 1;
        if publication.offset < next {
            Admit::Duplicate
        } else if publication.offset == next {
            self.position.offset = next;
            Admit::Deliver
        } else {
            Admit::Gap { from: next, to: publication.offset - 1 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelName;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn publication(offset: u64) -> Publication {
        Publication {
            channel: ChannelName::parse("match:1").unwrap(),
            epoch: Epoch::from_text("e"),
            offset,
            key: None,
            removed: false,
            event: None,
            data: Bytes::new(),
            time_ms: 0,
        }
    }

    proptest! {
        /// Whatever a broker does to the live stream (drop, repeat, reorder) and wherever the
        /// subscriber starts, filling gaps from history yields every offset after the start
        /// exactly once, in order.
        #[test]
        fn any_arrival_order_yields_exactly_once_in_order(
            start in 0u64..20,
            top in 20u64..60,
            arrivals in proptest::collection::vec(0u64..70, 0..200),
        ) {
            let history: Vec<u64> = (1..=top).collect();
            let mut cursor = Cursor::new(StreamPosition { epoch: Epoch::from_text("e"), offset: start });
            let mut delivered = Vec::new();
            // Live arrivals are offsets that exist (<= top), in any order, plus the full tail so
            // the stream ends at `top`.
            let live = arrivals.into_iter().filter(|o| *o >= 1 && *o <= top).chain(std::iter::once(top));
            for offset in live {
                loop {
                    match cursor.admit(&publication(offset)) {
                        Admit::Deliver => { delivered.push(offset); break; }
                        Admit::Duplicate => break,
                        Admit::Gap { from, to } => {
                            for missing in &history[(from - 1) as usize..to as usize] {
                                prop_assert_eq!(cursor.admit(&publication(*missing)), Admit::Deliver);
                                delivered.push(*missing);
                            }
                        }
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
            }
            prop_assert_eq!(delivered, (start + 1..=top).collect::<Vec<_>>());
        }
    }

    #[test]
    fn epoch_change_and_unnumbered_are_reported() {
        let mut cursor = Cursor::new(StreamPosition { epoch: Epoch::from_text("old"), offset: 3 });
        assert!(matches!(cursor.admit(&publication(4)), Admit::EpochChanged { .. }));
        assert_eq!(cursor.admit(&publication(0)), Admit::Unnumbered);
    }
}
