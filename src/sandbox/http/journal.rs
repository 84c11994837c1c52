//! What an attempt's requests did: one [`HttpCall`] per request, kept up
//! to date while its body streams, read when the attempt ends.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One outbound request of an attempt, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HttpCall {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The URL without its query string (which may carry credentials).
    pub url: String,
    /// The response's status, when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the host refused the request (the allow-list, an address, a
    /// cap), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// What went wrong on the way (connection refused, a timeout, a byte
    /// cap reached mid-body), when something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Body bytes sent.
    pub sent: u64,
    /// Body bytes received (as far as the task read).
    pub received: u64,
    /// From the request to the end of its response body (or to the
    /// attempt's end, if the task stopped reading), in milliseconds.
    pub duration_ms: u64,
}

/// Every request of one attempt.
#[derive(Clone, Default)]
pub(crate) struct Journal {
    calls: Arc<Mutex<Vec<Arc<Call>>>>,
}

/// One request while it is under way.
pub(crate) struct Call {
    started: Instant,
    state: Mutex<(HttpCall, Option<Instant>)>,
}

impl Journal {
    /// Starts recording a request.
    pub fn begin(&self, method: &str, url: String) -> Arc<Call> {
        let call = Arc::new(Call {
            started: Instant::now(),
            state: Mutex::new((
                HttpCall {
                    method: method.to_string(),
                    url,
                    status: None,
                    refused: None,
                    error: None,
                    sent: 0,
                    received: 0,
                    duration_ms: 0,
                },
                None,
            )),
        });
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(call.clone());
        call
    }

    /// The calls so far, as they stand now.
    pub fn calls(&self) -> Vec<HttpCall> {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().map(|call| call.snapshot()).collect()
    }
}

impl Call {
    fn update(&self, change: impl FnOnce(&mut HttpCall)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state.0);
    }

    /// The host refused it.
    pub fn refuse(&self, why: &str) {
        self.update(|call| call.refused = Some(why.to_string()));
        self.end();
    }

    /// It failed on the way.
    pub fn fail(&self, why: &str) {
        self.update(|call| call.error.get_or_insert_with(|| why.to_string()).truncate(1024));
        self.end();
    }

    /// Its response's head came.
    pub fn answered(&self, status: u16) {
        self.update(|call| call.status = Some(status));
    }

    /// Body bytes went out.
    pub fn sent(&self, bytes: u64) {
        self.update(|call| call.sent += bytes);
    }

    /// Body bytes came in.
    pub fn received(&self, bytes: u64) {
        self.update(|call| call.received += bytes);
    }

    /// It is over: its duration stops here (the first end counts).
    pub fn end(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1.get_or_insert_with(Instant::now);
    }

    fn snapshot(&self) -> HttpCall {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ended = state.1.unwrap_or_else(Instant::now);
        HttpCall {
            duration_ms: ended.duration_since(self.started).as_millis() as u64,
            ..state.0.clone()
        }
    }
}
