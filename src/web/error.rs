use askama::Template;
use askama_web::WebTemplate;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// What a handler can fail with; rendered as a page that says what happened.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{0}")]
    BadRequest(String),
    #[error("not found")]
    NotFound,
    /// Logged in, but this account may not do it.
    #[error("{0}")]
    Forbidden(String),
    #[error("too many attempts; wait a minute and try again")]
    TooManyRequests,
    #[error("internal error: {0}")]
    Internal(String),
    /// The database cannot be reached: what goes on meanwhile.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "panel database error");
        WebError::Internal("the database could not be read or written; see the sipwarden log".into())
    }
}

impl From<crate::actions::ActionError> for WebError {
    fn from(e: crate::actions::ActionError) -> Self {
        use crate::actions::ActionError;
        match e {
            ActionError::Store(e) => e.into(),
            ActionError::NotFound => WebError::NotFound,
            other => WebError::BadRequest(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<tower_sessions::session::Error> for WebError {
    fn from(e: tower_sessions::session::Error) -> Self {
        tracing::error!(error = %e, "panel session error");
        WebError::Internal("session storage failed".into())
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, ErrorPage { status: status.as_u16(), message: self.to_string() }).into_response()
    }
}

pub async fn not_found() -> WebError {
    WebError::NotFound
}
