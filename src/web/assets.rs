//! `static/` embedded in the binary: one file to install, nothing to serve from disk.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::WebError;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub async fn serve(Path(path): Path<String>) -> Result<Response, WebError> {
    // rust-embed only knows the embedded names: `..` or absolute paths match nothing.
    let file = Assets::get(&path).ok_or(WebError::NotFound)?;
    let mime = file.metadata.mimetype().to_string();
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&mime).map_err(|_| WebError::NotFound)?);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    Ok(response)
}
