//! The database out of reach: what the panel and `/healthz` say about it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{WebError, WebState, when};

/// Why the store cannot be used now and what sipwarden does meanwhile.
pub fn explain(state: &WebState, error: &crate::store::StoreError) -> String {
    let meanwhile = match &state.spool {
        Some(spool) => {
            let (records, bans) = spool.counts();
            format!(
                "bans are decided from this PBX's own logs meanwhile ({bans} so far; {records} log records \
                 kept in {}, stored once it is back)",
                spool.path().display()
            )
        }
        None => "the logs are read on from where storing stopped once it is back".into(),
    };
    match state.store.unreachable() {
        Some((since, why)) => format!(
            "{} unreachable since {}: {why}; the firewall keeps enforcing the bans it holds, and {meanwhile}",
            if state.store.is_shared() { "shared store" } else { "database" },
            when(since)
        ),
        None => format!("database error: {error}"),
    }
}

/// A page asked for while the store is known to be away gets that said plainly (a
/// 503 page), not a session error: sessions live in the store too.
pub async fn page(State(state): State<WebState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let own_answer = path == "/healthz" || path.starts_with("/static/");
    if !own_answer && state.store.unreachable().is_some() {
        // Tried again (briefly while it is known to be away): the first page after it
        // returns is served as usual.
        if let Err(e) = state.store.acquire().await {
            return WebError::Unavailable(explain(&state, &e)).into_response();
        }
    }
    next.run(request).await
}
