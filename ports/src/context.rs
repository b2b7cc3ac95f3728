//! The end-user request context (`requestId`, `userId`) and how it travels.
//!
//! Building blocks own propagation so that service code never passes the ids
//! by hand: the context is task-local while a request or a consumed record is
//! handled, producers attach it as record headers, and consumers restore it
//! from the headers before calling the handler. While a context is current, a
//! `request{request_id, user_id}` tracing span is entered, so every log line
//! handled for that request carries both ids.

use serde::{Deserialize, Serialize};
use std::future::Future;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "requestId";
pub const USER_ID_HEADER: &str = "userId";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    pub request_id: String,
    pub user_id: String,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

impl RequestContext {
    pub fn new(request_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        RequestContext {
            request_id: request_id.into(),
            user_id: user_id.into(),
        }
    }

    /// The context of the request being handled by this task, if any.
    pub fn current() -> Option<RequestContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The tracing span every log line of this request runs in.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("request", request_id = %self.request_id, user_id = %self.user_id)
    }

    /// Run `fut` with this context as the current one, inside its span.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let span = self.span();
        CURRENT.scope(self, fut).instrument(span).await
    }

    pub fn to_headers(&self) -> Vec<(String, String)> {
        vec![
            (REQUEST_ID_HEADER.to_string(), self.request_id.clone()),
            (USER_ID_HEADER.to_string(), self.user_id.clone()),
        ]
    }

    /// The context carried by record headers, when both ids are present.
    pub fn from_headers(headers: &[(String, String)]) -> Option<RequestContext> {
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Some(RequestContext {
            request_id: find(REQUEST_ID_HEADER)?,
            user_id: find(USER_ID_HEADER)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scope_sets_and_restores() {
        assert_eq!(RequestContext::current(), None);
        let ctx = RequestContext::new("r-1", "u-1");
        let seen = ctx.clone().scope(async { RequestContext::current() }).await;
        assert_eq!(seen, Some(ctx));
        assert_eq!(RequestContext::current(), None);
    }

    #[test]
    fn headers_round_trip() {
        let ctx = RequestContext::new("r-9", "u-3");
        assert_eq!(RequestContext::from_headers(&ctx.to_headers()), Some(ctx));
        assert_eq!(
            RequestContext::from_headers(&[("requestId".into(), "r".into())]),
            None
        );
    }
}
