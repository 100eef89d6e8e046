//! The bottom of the server's HTTP layer, shared by every route module and transport and
//! importing none of them: the one error shape (`{"error":{"code","status","message"}}`) and the
//! one [`ClientError`] → HTTP status mapping, who the caller is ([`principal_from`],
//! [`authenticate`]), optional JSON bodies, CORS, the fallbacks for unknown routes and methods,
//! and [`rate_limited`], the middleware that applies the per-caller limits and writes the
//! `X-RateLimit-*` headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use courtside_core::access::Principal;
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
    // `null` is no body too: clients that always send JSON send it for "nothing".
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|error| ApiError(ClientError::BadRequest(format!("the body is not the documented JSON: {error}"))))
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
            ClientError::PermissionDenied => (StatusCode::FORBIDDEN, "permission_denied"),
            ClientError::UnknownMethod(_) => (StatusCode::BAD_REQUEST, "unknown_method"),
            ClientError::AlreadySubscribed => (StatusCode::CONFLICT, "already_subscribed"),
            ClientError::NotSubscribed => (StatusCode::CONFLICT, "not_subscribed"),
            ClientError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ClientError::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
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
    match token {
        Some(token) => state.auth.verify(token).map(|v| (v.principal, Some(v.expires_at_secs))).map_err(|e| ClientError::from(e).into()),
        None if state.config.allow_anonymous => Ok((Principal::Anonymous, None)),
        None => Err(ClientError::Unauthorized("this server needs a token".into()).into()),
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
    let address = Caller::address(client_address(peer.ip(), forwarded_for, &state.config.sports.trusted_proxies));
    let caller = match principal_from(&state, request.headers(), None) {
        Ok(Principal::Server) => return next.run(request).await,
        // Sign-in is counted by address whoever asks: it is where passwords are guessed.
        Ok(Principal::User { .. }) if class == EndpointClass::SignIn => address,
        Ok(Principal::User { id, .. }) => Caller::User(id),
        Ok(Principal::Anonymous) | Err(_) => address,
    };
    let verdict = state.http_limits.check(class, caller, Instant::now());
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
