//! Sign-in over HTTP: `POST /api/auth/login`, `POST /api/auth/refresh` (seed 001), and the
//! user list a director manages (`GET`/`POST /api/users`). [`AccountError`] is mapped to its
//! HTTP status here, once, in the server's one error shape.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use courtside_core::Role;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{AccountError, TokenLifetimes};
use crate::http::{ApiError, HttpFailure, optional_json, require_director};
use crate::protocol::ClientError;
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::schemas::{ErrorBody, UsersList};
#[allow(unused_imports)]
use crate::accounts::{IssuedTokens, UserView};
use crate::state::ServerState;
use crate::http::rate_limited;

pub fn routes(state: Arc<ServerState>) -> Router<Arc<ServerState>> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/users", get(list_users).post(add_user))
        .route_layer(middleware::from_fn_with_state(state, rate_limited))
}

/// An [`AccountError`] answered over HTTP.
pub struct AccountApiError(AccountError);

impl IntoResponse for AccountApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self.0 {
            AccountError::InvalidUsername | AccountError::InvalidPassword | AccountError::NoRole | AccountError::UnknownRole(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
            AccountError::UserExists(_) => (StatusCode::CONFLICT, "already_exists"),
            AccountError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AccountError::InvalidRefreshToken => (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
            AccountError::RefreshTokenExpired => (StatusCode::UNAUTHORIZED, "refresh_token_expired"),
            AccountError::RefreshTokenReused => (StatusCode::UNAUTHORIZED, "refresh_token_reused"),
            AccountError::Contended | AccountError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AccountError::Token(_) | AccountError::Corrupt(_) | AccountError::Hashing(_) => {
                tracing::error!(error = %self.0, "account request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR { "internal error".to_string() } else { self.0.to_string() };
        (status, Json(json!({ "error": { "code": code, "status": status.as_u16(), "message": message } }))).into_response()
    }
}

/// What an account handler fails with.
type Failure = HttpFailure<AccountApiError>;

impl From<AccountError> for Failure {
    fn from(error: AccountError) -> Self {
        HttpFailure::Module(AccountApiError(error))
    }
}

fn lifetimes(state: &ServerState) -> TokenLifetimes {
    TokenLifetimes { access_secs: state.config.auth.access_token_ttl_secs, refresh_secs: state.config.auth.refresh_token_ttl_secs }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    /// Seed 001 signs in by `email`; either names the user.
    #[serde(alias = "email")]
    username: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    summary = "Sign in with a password",
    request_body = LoginBody,
    responses((status = 200, description = "An access token and a refresh token", body = IssuedTokens), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
)]
pub(crate) async fn login(State(state): State<Arc<ServerState>>, body: Result<Json<LoginBody>, JsonRejection>) -> Result<Response, Failure> {
    let Json(body) = body?;
    let issued = state.accounts.login(&state.auth, &body.username, &body.password, lifetimes(&state)).await?;
    Ok(Json(issued).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: Option<String>,
}

/// The refresh token comes as `Authorization: Bearer <refreshToken>` (seed 001) or in the body.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    summary = "Exchange a refresh token (sent as the Bearer credential, or in the body)",
    request_body = Option<RefreshBody>,
    responses((status = 200, description = "New tokens; the presented one is spent", body = IssuedTokens), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
)]
pub(crate) async fn refresh(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Failure> {
    // The body wins: many HTTP clients attach the (expired) access token to every request.
    let from_body = optional_json::<RefreshBody>(&body.map_err(ApiError::from)?)?.refresh_token;
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let token = from_body
        .or(from_header)
        .ok_or_else(|| ApiError(ClientError::Unauthorized("send the refresh token as `Authorization: Bearer …` or in the body".into())))?;
    let issued = state.accounts.refresh(&state.auth, &token, lifetimes(&state)).await?;
    Ok(Json(issued).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.@+-]+$")]
    username: String,
    /// 8 to 1024 bytes (UTF-8).
    password: String,
    #[schema(value_type = Vec<crate::schemas::RoleDoc>, min_items = 1)]
    roles: Vec<Role>,
}

#[utoipa::path(
    post,
    path = "/api/users",
    tag = "auth",
    summary = "Add a user (director, API key)",
    request_body = NewUser,
    responses((status = 201, description = "Added", body = UserView), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 409, description = "Conflict (see the error code; `current` holds the stored score where there is one)", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn add_user(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, Failure> {
    require_director(&state, &headers)?;
    let Json(body) = body?;
    let declared = &state.config.auth.roles;
    if let Some(role) = body.roles.iter().find(|role| Role::parse(role.as_str()).is_none() && !declared.contains(role)) {
        return Err(AccountError::UnknownRole(role.to_string()).into());
    }
    let user = state.accounts.add_user(&body.username, &body.password, &body.roles).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/users",
    tag = "auth",
    summary = "List users (director, API key)",
    responses((status = 200, description = "The users", body = UsersList), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn list_users(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Result<Response, Failure> {
    require_director(&state, &headers)?;
    Ok(Json(json!({ "users": state.accounts.users().await? })).into_response())
}
