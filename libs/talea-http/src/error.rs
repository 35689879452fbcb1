//! `ApiError` to HTTP: the one place that maps codes to statuses, headers and bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use talea_api::ApiError;

/// An `ApiError` on its way out as a response.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<talea_auth::Forbidden> for HttpError {
    fn from(e: talea_auth::Forbidden) -> Self {
        Self(ApiError::Forbidden { book: e.book })
    }
}

/// Marks an error response with its code, so the logging middleware can log
/// each error once, at the boundary, without parsing bodies.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = crate::json_response(status, &self.0.to_body());
        let headers = response.headers_mut();
        if let Some(secs) = self.0.retry_after_s() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // An empty `allow` leaves the header to axum's method router, which
        // knows the route's methods and adds it when none is set.
        if let ApiError::MethodNotAllowed { allow } = &self.0
            && let Ok(v) = HeaderValue::from_str(allow)
            && !allow.is_empty()
        {
            headers.insert(header::ALLOW, v);
        }
        response.extensions_mut().insert(ErrorCode(self.0.code()));
        response
    }
}
