//! (being written)
use bytes::Bytes;

use crate::{Env, ScimError, Store};

/// The core's one entry point.
pub async fn handle<S: Store>(req: http::Request<Bytes>, env: &Env<'_, S>) -> http::Response<Bytes> {
    let _ = (req, env);
    ScimError::internal("not yet").into_response()
}
