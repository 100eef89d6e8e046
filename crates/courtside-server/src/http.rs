//! The bottom of the server's HTTP layer, shared by every route module and transport and
//! importing none of them: the one error shape (`{"error":{"code","status","message"}}`) and the
//! one [`ClientError`] → HTTP status mapping, who the caller is ([`principal_from`],
//! [`authenticate`]), JSON bodies (strict, `2.0` read as `2`) and optional ones, CORS, the
//! fallbacks for unknown routes and methods, and [`rate_limited`], the middleware that applies
//! the per-caller limits and writes the `X-RateLimit-*` headers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use serde::de::DeserializeOwned;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use courtside_core::access::Principal;
use courtside_core::Role;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::protocol::ClientError;
use crate::rate_limit::{client_address, Caller, EndpointClass};
use crate::state::ServerState;

/// Largest HTTP request body (a broadcast carries one payload and a channel list).
pub const BODY_BYTES_MAX: usize = 1 << 20;

/// The CORS headers for `allowed_origins`.
pub fn cors(config: &crate::config::Config) -> CorsLayer {
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(config.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("last-event-id")])
}

/// An optional JSON body, read after the caller was authenticated: empty (or absent) is
/// `T::default()`; anything else must be the documented JSON (400 otherwise).
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let refused = |reason: String| ApiError(ClientError::BadRequest(format!("the body is not the documented JSON: {reason}")));
    // `null` is no body too: clients that always send JSON send it for "nothing". Anything else
    // must be an object (serde would also read a struct from an array).
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|error| refused(error.to_string()))? {
        serde_json::Value::Null => Ok(T::default()),
        object @ serde_json::Value::Object(_) => serde_json::from_value(object).map_err(|error| refused(error.to_string())),
        _ => Err(refused("expected a JSON object".into())),
    }
}

/// Reads the documented JSON body (400 `bad_request` otherwise; 413 when over the limit). As in
/// JSON Schema, a number with a zero fraction is an integer: `2.0` is read as `2`.
pub fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(ApiError::from)?;
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|essence| essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")));
    if !json_type {
        return Err(ApiError(ClientError::BadRequest("send the body as `Content-Type: application/json`".into())));
    }
    read_json(&bytes)
}

/// The JSON in `bytes` as a `T`; refused as it is, it is read again with its whole floats
/// written as integers.
pub fn read_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match Json::<T>::from_bytes(bytes) {
        Ok(Json(value)) => Ok(value),
        Err(rejection) => match whole_numbers_as_integers(bytes) {
            Some(rewritten) => Ok(Json::<T>::from_bytes(&rewritten)?.0),
            None => Err(rejection.into()),
        },
    }
}

/// The JSON text with every number that has a fraction or exponent but is a whole number an
/// `f64` holds exactly (|n| ≤ 2^53) written as an integer (`2.0`, `2e0` → `2`); `None` if
/// there is none. Numbers are parsed from their text (correctly rounded), strings skipped.
fn whole_numbers_as_integers(bytes: &[u8]) -> Option<Vec<u8>> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: past it a float names no single integer
    let mut out = Vec::with_capacity(bytes.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.extend_from_slice(&bytes[start..i]);
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') {
                    i += 1;
                }
                let token = &bytes[start..i];
                let whole = std::str::from_utf8(token)
                    .ok()
                    .filter(|text| text.contains(['.', 'e', 'E']))
                    .and_then(|text| text.parse::<f64>().ok())
                    .filter(|number| number.fract() == 0.0 && number.abs() <= EXACT);
                match whole {
                    // Within ±2^53 and whole, so the cast is exact.
                    Some(number) => {
                        out.extend_from_slice((number as i64).to_string().as_bytes());
                        changed = true;
                    }
                    None => out.extend_from_slice(token),
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}


/// A [`ClientError`] answered over HTTP.
#[derive(Debug)]
pub struct ApiError(pub ClientError);

/// What a route module's handler fails with: its own error type `E` (mapped to HTTP by that
/// module), or one of the shared ones (authentication, an unreadable body or query).
pub enum HttpFailure<E> {
    Module(E),
    Api(ApiError),
}

impl<E> From<ApiError> for HttpFailure<E> {
    fn from(error: ApiError) -> Self {
        HttpFailure::Api(error)
    }
}

impl<E> From<JsonRejection> for HttpFailure<E> {
    fn from(rejection: JsonRejection) -> Self {
        HttpFailure::Api(rejection.into())
    }
}

impl<E> From<QueryRejection> for HttpFailure<E> {
    fn from(rejection: QueryRejection) -> Self {
        HttpFailure::Api(rejection.into())
    }
}

impl<E: IntoResponse> IntoResponse for HttpFailure<E> {
    fn into_response(self) -> Response {
        match self {
            HttpFailure::Module(error) => error.into_response(),
            HttpFailure::Api(error) => error.into_response(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> Self {
        Self(error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::BytesRejection(_) => Self(ClientError::PayloadTooLarge { size: BODY_BYTES_MAX + 1, limit: BODY_BYTES_MAX }),
            other => Self(ClientError::BadRequest(other.body_text())),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self(ClientError::PayloadTooLarge { size: BODY_BYTES_MAX + 1, limit: BODY_BYTES_MAX }),
            _ => Self(ClientError::BadRequest(rejection.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self(ClientError::BadRequest(rejection.body_text()))
    }
}

impl ClientError {
    /// The error's HTTP status and its stable name in JSON bodies.
    pub fn http(&self) -> (StatusCode, &'static str) {
        match self {
            ClientError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ClientError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ClientError::UnknownNamespace(_) => (StatusCode::NOT_FOUND, "unknown_namespace"),
            ClientError::PermissionDenied | ClientError::Denied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            ClientError::UnknownMethod(_) => (StatusCode::BAD_REQUEST, "unknown_method"),
            ClientError::AlreadySubscribed => (StatusCode::CONFLICT, "already_subscribed"),
            ClientError::NotSubscribed => (StatusCode::CONFLICT, "not_subscribed"),
            ClientError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ClientError::TooManyRequests | ClientError::QuotaReached(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ClientError::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
            ClientError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ClientError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ClientError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ClientError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.0.http();
        let body = serde_json::json!({
            "error": { "code": code, "status": status.as_u16(), "message": self.0.to_string() }
        });
        (status, Json(body)).into_response()
    }
}

/// Who is calling: `Authorization: apikey …` is the app backend, `Authorization: Bearer …` (or
/// a `token` query parameter, for EventSource) a user; nothing is anonymous where allowed.
pub fn principal_from(state: &ServerState, headers: &HeaderMap, query_token: Option<&str>) -> Result<Principal, ApiError> {
    authenticate(state, headers, query_token).map(|(principal, _)| principal)
}

/// Like [`principal_from`], also telling when the caller's token expires (for long-lived streams).
pub fn authenticate(
    state: &ServerState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<(Principal, Option<u64>), ApiError> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match authorization.map(|a| a.split_once(' ').unwrap_or((a, ""))) {
        Some((scheme, key)) if scheme.eq_ignore_ascii_case("apikey") => {
            return if state.auth.is_api_key(key.trim()) {
                Ok((Principal::Server, None))
            } else {
                Err(ClientError::Unauthorized("wrong API key".into()).into())
            };
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim()),
        Some(_) => return Err(ClientError::Unauthorized("use `Authorization: Bearer <jwt>` or `apikey <key>`".into()).into()),
        None => query_token,
    };
    state.admit(token).map_err(ApiError)
}

/// Only directors and the app backend (the API key): user management, maintenance notices.
pub fn require_director(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    match principal_from(state, headers, None)? {
        Principal::Server => Ok(()),
        Principal::User { roles, .. } if roles.contains(&Role::Director) => Ok(()),
        Principal::User { .. } => Err(ApiError(ClientError::PermissionDenied)),
        Principal::Anonymous => Err(ApiError(ClientError::Unauthorized("this endpoint needs a token".into()))),
    }
}

/// Counts the request against its caller's bucket for the endpoint's class: a signed-in user by
/// name, anyone else by address (the app backend's API key is not limited). Every limited
/// response carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (Unix seconds when the
/// bucket is full again); past the limit the answer is 429 with `Retry-After`.
pub async fn rate_limited(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    matched: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let class = EndpointClass::of(request.method(), matched.as_str());
    let forwarded_for = request.headers().get("x-forwarded-for").and_then(|value| value.to_str().ok());
    let ip = client_address(peer.ip(), forwarded_for, &state.config.sports.trusted_proxies);
    // A Socket.IO request of an open session (`sid=`) opens nothing: only the handshake counts.
    if matched.as_str() == "/socket.io/" && request.uri().query().is_some_and(|query| form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "sid")) {
        return next.run(request).await;
    }
    let address = Caller::address(ip);
    let caller = match principal_from(&state, request.headers(), None) {
        Ok(Principal::Server) => return next.run(request).await,
        // Sign-in is counted by address whoever asks: it is where passwords are guessed; so are
        // connection attempts (seed 004 limits them per address).
        Ok(Principal::User { .. }) if matches!(class, EndpointClass::SignIn | EndpointClass::Connect) => address,
        Ok(Principal::User { id, .. }) => Caller::User(id),
        Ok(Principal::Anonymous) | Err(_) => address,
    };
    let verdict = state.http_limits.check(class, caller).await;
    let mut response = if verdict.allowed {
        next.run(request).await
    } else {
        let mut refused = ApiError(ClientError::TooManyRequests).into_response();
        refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(verdict.retry_after_secs));
        refused
    };
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(verdict.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset_at_secs));
    response
}

/// A known route, another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError(ClientError::MethodNotAllowed)
}

/// No such route.
pub async fn not_found() -> ApiError {
    ApiError(ClientError::NotFound("no such route".into()))
}

#[cfg(test)]
mod tests {
    use super::whole_numbers_as_integers;

    #[test]
    fn whole_floats_become_integers_and_nothing_else_changes() {
        let rewrite = |text: &str| whole_numbers_as_integers(text.as_bytes()).map(|bytes| String::from_utf8(bytes).expect("utf-8"));
        assert_eq!(rewrite(r#"{"a":2.0,"b":[-2251799813685247.0,1e3],"c":"3.0 \" 4.0","d":2.5}"#).as_deref(), Some(r#"{"a":2,"b":[-2251799813685247,1000],"c":"3.0 \" 4.0","d":2.5}"#));
        assert_eq!(rewrite(r#"{"a":2,"b":"1.0","c":1e300,"d":0.5}"#), None);
    }
}
