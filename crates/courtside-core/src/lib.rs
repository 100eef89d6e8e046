//! Courtside's core: what a channel is, how its stream is numbered, how publications fan out to
//! local subscribers, and the seams behind which storage and cross-node delivery live.
//!
//! # Layout
//! - [`channel`]: channel names and patterns, namespaces and the roles that may use them.
//! - [`access`]: who may subscribe to and publish on a channel.
//! - [`event`]: the optional event name of a publication, its rule and the reserved names.
//! - [`stream`]: positions (epoch + offset), publications, history pages and keyed snapshots.
//! - [`store`]: the `StreamStore` seam (durable, numbered history and keyed state) and its
//!   in-memory implementation.
//! - [`broker`]: the `Broker` seam that carries committed publications to every node's hub, and
//!   the in-process broker.
//! - [`cursor`]: a subscriber's place in a stream: deliver, drop a duplicate, or fill a gap.
//! - [`hub`]: local fan-out: which connection outboxes follow which channel; bounded queues.
//! - [`sequencer`]: per-channel order into the hub; gaps a broker leaves are filled from the store.
//! - [`presence`]: who is in a channel, as a seam with an in-memory implementation.
//! - [`limiter`]: rate limits as a seam (one GCRA rule, kept in memory or shared by a cluster).
//! - [`node`]: the composition root that publishes, subscribes with resume, and answers history.
//! - [`conformance`]: the test suite every `StreamStore` implementation must pass.
//!
//! # Architecture invariants
//! - Nothing here opens a socket, a file or a database, and nothing here knows the wire format:
//!   the hub carries publications, and a transport encodes each one once ([`hub::Delivery::wire`]).
//! - Offsets are assigned by the store, never by a transport or the hub.

pub mod access;
pub mod broker;
pub mod channel;
pub mod conformance;
pub mod cursor;
pub mod event;
pub mod hub;
pub mod limiter;
pub mod node;
pub mod presence;
pub mod sequencer;
pub mod store;
pub mod stream;

pub use channel::{ChannelName, ChannelNameError, NamespaceOptions, Role};
pub use stream::{Epoch, Publication, StreamPosition};
