//! Data templates of the event maps: JSON whose strings starting with `$` are filled in when an
//! event is built, so an app team shapes the events its client code expects without writing
//! server code.
//!
//! | In a template | Becomes |
//! | --- | --- |
//! | `"$.a.b"` | the value at `a.b` of the source (`null` when absent); `"$"` is the whole source |
//! | `"$now"` | the current time, ISO 8601 UTC with milliseconds (`2026-12-07T18:00:00.000Z`) |
//! | `"$user"` | the socket's user id (`null` when anonymous); client-event replies only |
//! | `"$arg"` | the client event's first argument; client-event replies only |
//! | `{"$each": "$.list", "$map": T}` | an array: `T` filled in for each element of `list` (inside `T`, `$.` paths start at the element) |
//! | `"$$text"` | the literal string `$text` |
//!
//! Everything else (numbers, booleans, other strings, arrays, objects) is copied as it is.

use serde_json::{Map, Value};

/// What `$now`, `$user` and `$arg` stand for while one event is built.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now_ms: u64,
    pub user: Option<&'a str>,
    pub arg: Option<&'a Value>,
}

/// Why a template was refused (at start: the configuration names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0:?} is not a template expression (use `$.path`, `$now`, `$user`, `$arg`, or `$$` for a literal `$`)")]
    UnknownExpression(String),
    #[error("{0} is only known in the replies to client events")]
    NotHere(&'static str),
    #[error("an object with `$each` needs exactly `$each` (a `$.path`) and `$map`")]
    Each,
}

/// What a template may use where it is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A reply to a client event: `$user` and `$arg` are known.
    Reply,
    /// An event made from a publication, shared by every socket: no `$user`, no `$arg`.
    Publication,
}

/// Checks every expression of `template`.
pub fn check(template: &Value, scope: Scope) -> Result<(), TemplateError> {
    match template {
        Value::String(text) => check_expression(text, scope),
        Value::Array(items) => items.iter().try_for_each(|item| check(item, scope)),
        Value::Object(fields) => {
            if fields.contains_key("$each") {
                match (fields.len(), fields.get("$each"), fields.get("$map")) {
                    (2, Some(Value::String(path)), Some(map)) if path.starts_with("$.") || path == "$" => check(map, scope),
                    _ => Err(TemplateError::Each),
                }
            } else {
                fields.values().try_for_each(|value| check(value, scope))
            }
        }
        _ => Ok(()),
    }
}

fn check_expression(text: &str, scope: Scope) -> Result<(), TemplateError> {
    match text {
        _ if !text.starts_with('$') || text.starts_with("$$") => Ok(()),
        "$" | "$now" => Ok(()),
        "$user" | "$arg" if scope == Scope::Publication => Err(TemplateError::NotHere(if text == "$user" { "$user" } else { "$arg" })),
        "$user" | "$arg" => Ok(()),
        path if path.starts_with("$.") && path.len() > 2 && !path[2..].split('.').any(str::is_empty) => Ok(()),
        other => Err(TemplateError::UnknownExpression(other.to_string())),
    }
}

/// The value at a `$.a.b` path of `source` (array elements by index: `$.entries.0`).
pub fn lookup<'a>(source: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$')?;
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if rest.is_empty() {
        return Some(source);
    }
    rest.split('.').try_fold(source, |value, segment| match value {
        Value::Object(fields) => fields.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|index| items.get(index)),
        _ => None,
    })
}

/// `template` filled in from `source` (a checked template: unknown expressions stay as text).
pub fn render(template: &Value, source: &Value, context: &Context<'_>) -> Value {
    match template {
        Value::String(text) => render_expression(text, source, context),
        Value::Array(items) => Value::Array(items.iter().map(|item| render(item, source, context)).collect()),
        Value::Object(fields) => match (fields.get("$each"), fields.get("$map")) {
            (Some(Value::String(path)), Some(map)) => {
                let elements = lookup(source, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                Value::Array(elements.iter().map(|element| render(map, element, context)).collect())
            }
            _ => Value::Object(fields.iter().map(|(name, value)| (name.clone(), render(value, source, context))).collect::<Map<_, _>>()),
        },
        other => other.clone(),
    }
}

fn render_expression(text: &str, source: &Value, context: &Context<'_>) -> Value {
    if let Some(literal) = text.strip_prefix("$$") {
        return Value::String(format!("${literal}"));
    }
    match text {
        "$now" => Value::String(iso_time(context.now_ms)),
        "$user" => context.user.map_or(Value::Null, |user| Value::String(user.to_string())),
        "$arg" => context.arg.cloned().unwrap_or(Value::Null),
        path if path.starts_with('$') => lookup(source, path).cloned().unwrap_or(Value::Null),
        literal => Value::String(literal.to_string()),
    }
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (what JavaScript's
/// `toISOString` gives).
pub fn iso_time(now_ms: u64) -> String {
    let seconds = now_ms / 1000;
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = courtside_leaderboard::calendar::civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        now_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context<'a>(arg: Option<&'a Value>) -> Context<'a> {
        Context { now_ms: 1_796_659_200_123, user: Some("ana"), arg }
    }

    #[test]
    fn a_template_shapes_a_view_into_the_apps_event() {
        let view = json!({ "total": 2, "entries": [{ "player": "ana", "score": 9, "rank": 1 }, { "player": "bo", "score": 7, "rank": 2 }] });
        let template = json!({
            "topScores": { "$each": "$.entries", "$map": { "userId": "$.player", "score": "$.score", "rank": "$.rank", "kind": "player" } },
            "totalUsers": "$.total",
            "lastUpdated": "$now",
            "missing": "$.nope.deeper",
            "first": "$.entries.0.player",
            "price": "$$5",
        });
        check(&template, Scope::Publication).expect("valid");
        let rendered = render(&template, &view, &context(None));
        assert_eq!(
            rendered,
            json!({
                "topScores": [{ "userId": "ana", "score": 9, "rank": 1, "kind": "player" }, { "userId": "bo", "score": 7, "rank": 2, "kind": "player" }],
                "totalUsers": 2,
                "lastUpdated": "2026-12-07T16:00:00.123Z",
                "missing": null,
                "first": "ana",
                "price": "$5",
            })
        );
    }

    #[test]
    fn replies_know_the_user_and_the_argument_publications_do_not() {
        let arg = json!("ana");
        let template = json!({ "me": "$user", "asked": "$arg" });
        assert_eq!(render(&template, &json!({}), &context(Some(&arg))), json!({ "me": "ana", "asked": "ana" }));
        assert_eq!(check(&json!({ "me": "$user" }), Scope::Publication), Err(TemplateError::NotHere("$user")));
        assert_eq!(check(&template, Scope::Reply), Ok(()));
        assert_eq!(check(&json!("$tomorrow"), Scope::Reply), Err(TemplateError::UnknownExpression("$tomorrow".into())));
        assert_eq!(check(&json!("$.a..b"), Scope::Reply), Err(TemplateError::UnknownExpression("$.a..b".into())));
        assert_eq!(check(&json!({ "$each": "$.x" }), Scope::Reply), Err(TemplateError::Each));
    }

    #[test]
    fn iso_time_matches_known_dates() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_time(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }
}
