//! Event names: the optional name a publication carries so that Socket.IO apps can listen for it
//! (`socket.on('match:created', …)`), its one validation rule, and the names no publication may
//! take because a client library or a Courtside transport already uses them.

/// Longest accepted event name, in bytes.
pub const EVENT_NAME_LEN_MAX: usize = 64;

/// The Socket.IO event an unnamed publication arrives as.
pub const PUBLICATION_EVENT: &str = "publication";
/// The Socket.IO event sent after every subscription.
pub const SUBSCRIBED_EVENT: &str = "subscribed";
/// The Socket.IO event sent after an `unsubscribe`.
pub const UNSUBSCRIBED_EVENT: &str = "unsubscribed";
/// The Socket.IO event for a client joining a channel.
pub const JOIN_EVENT: &str = "join";
/// The Socket.IO event for a client leaving a channel.
pub const LEAVE_EVENT: &str = "leave";
/// The Socket.IO event for a refused event sent without a callback.
pub const ERROR_EVENT: &str = "error";
/// The Socket.IO event that tells why the server is closing the socket, just before it does.
pub const DISCONNECT_EVENT: &str = "courtside:disconnect";

/// The event of a maintenance notice (SSE and Socket.IO; seed 004's `system_notification`):
/// reserved, so no publisher can fake one.
pub const SYSTEM_NOTIFICATION_EVENT: &str = "system_notification";

/// The names the Courtside Socket.IO transport emits itself.
pub const COURTSIDE_EVENTS: [&str; 8] = [
    PUBLICATION_EVENT,
    SUBSCRIBED_EVENT,
    UNSUBSCRIBED_EVENT,
    JOIN_EVENT,
    LEAVE_EVENT,
    ERROR_EVENT,
    DISCONNECT_EVENT,
    SYSTEM_NOTIFICATION_EVENT,
];

/// The names socket.io-client keeps for itself (an app cannot listen for them as events).
pub const SOCKETIO_CLIENT_EVENTS: [&str; 6] =
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

/// Why an event name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventNameError {
    #[error("event name is empty: it must be 1 to {EVENT_NAME_LEN_MAX} bytes")]
    Empty,
    #[error("event name is {0} bytes long: it must be 1 to {EVENT_NAME_LEN_MAX} bytes")]
    TooLong(usize),
    #[error("event name contains {0:?}: allowed are printable ASCII characters without spaces (`!` to `~`)")]
    BadCharacter(char),
    #[error("event name {0:?} is reserved (by socket.io-client or by Courtside's Socket.IO transport)")]
    Reserved(String),
}

/// Is `name` one no publication may carry?
pub fn is_reserved_event_name(name: &str) -> bool {
    COURTSIDE_EVENTS.contains(&name) || SOCKETIO_CLIENT_EVENTS.contains(&name)
}

/// Checks a publication's event name: 1 to [`EVENT_NAME_LEN_MAX`] bytes of printable ASCII
/// without spaces (`[!-~]`), and not a reserved name.
pub fn validate_event_name(name: &str) -> Result<(), EventNameError> {
    if name.is_empty() {
        return Err(EventNameError::Empty);
    }
    if let Some(bad) = name.chars().find(|c| !matches!(c, '!'..='~')) {
        return Err(EventNameError::BadCharacter(bad));
    }
    if name.len() > EVENT_NAME_LEN_MAX {
        return Err(EventNameError::TooLong(name.len()));
    }
    if is_reserved_event_name(name) {
        return Err(EventNameError::Reserved(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_app_event_names() {
        for name in ["match:created", "x", "score-updated", "a.b/c_d!~", &"e".repeat(EVENT_NAME_LEN_MAX)] {
            assert_eq!(validate_event_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_empty_long_and_unprintable_names() {
        assert_eq!(validate_event_name(""), Err(EventNameError::Empty));
        assert_eq!(validate_event_name(&"e".repeat(EVENT_NAME_LEN_MAX + 1)), Err(EventNameError::TooLong(65)));
        assert_eq!(validate_event_name("match created"), Err(EventNameError::BadCharacter(' ')));
        assert_eq!(validate_event_name("tab\there"), Err(EventNameError::BadCharacter('\t')));
        assert_eq!(validate_event_name("café"), Err(EventNameError::BadCharacter('é')));
        assert_eq!(validate_event_name("\u{7f}"), Err(EventNameError::BadCharacter('\u{7f}')));
    }

    #[test]
    fn refuses_every_reserved_name() {
        for name in COURTSIDE_EVENTS.iter().chain(SOCKETIO_CLIENT_EVENTS.iter()) {
            assert_eq!(validate_event_name(name), Err(EventNameError::Reserved(name.to_string())));
        }
        assert_eq!(validate_event_name("Publication"), Ok(()), "names are case-sensitive");
    }
}
