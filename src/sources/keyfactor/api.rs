//! One request to Command's `GET OrchestratorJobs/JobHistory`: the query
//! parameters and header Command expects, the answer read within bounds, and
//! what a refusal means to the person who must fix it.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde_json::Value;

use crate::http::body::read_at_most;
use crate::http::endpoint::Endpoint;
use crate::http::error::SendError;
use crate::http::{self, ClientError, redact};
use crate::sources::settings::JobHistorySettings;

/// Longest answer read: a page of 1000 records is a few hundred KiB.
const MAX_BODY: usize = 32 << 20;
/// The permission Command wants for JobHistory, named in refusals.
const PERMISSION: &str = "\"Agent Management – Read\"";

/// The JobHistory endpoint of one Command server, as one source reaches it.
#[derive(Debug)]
pub struct JobHistoryApi {
    endpoint: Endpoint,
    url: Url,
    timeout: Duration,
}

/// Which records to ask for.
#[derive(Debug, Clone, Copy)]
pub enum Query<'a> {
    /// Up to `limit` records after `id`, oldest first.
    After { id: i64, limit: usize },
    /// The newest record only.
    Newest,
    /// These records (jobs that had not finished when last looked at).
    Ids(&'a [i64]),
}

impl Query<'_> {
    /// `QueryString`, `ReturnLimit` and `SortAscending` (Command's `0` is
    /// ascending, `1` descending). Pages are chosen by `JobHistoryId`, not by
    /// `PageReturned`, so records added while a source pages never shift one.
    fn parameters(&self) -> (String, usize, u8) {
        match self {
            Query::After { id, limit } => (format!("JobHistoryId -gt {id}"), *limit, 0),
            Query::Newest => ("JobHistoryId -gt 0".to_owned(), 1, 1),
            Query::Ids(ids) => {
                let each: Vec<String> = ids
                    .iter()
                    .map(|id| format!("JobHistoryId -eq {id}"))
                    .collect();
                (each.join(" OR "), ids.len(), 0)
            }
        }
    }
}

/// Why the endpoint cannot be reached as configured.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("base_url: {0:?} is not an http(s) URL")]
    BaseUrl(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Why a look at the job history failed. Every one is tried again later.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "GET {url} was refused (401 Unauthorized): check the source's credentials; the \
         account also needs the {PERMISSION} permission in Command to read JobHistory"
    )]
    Unauthorized { url: String },
    #[error(
        "GET {url} was refused (403 Forbidden): the account lacks the {PERMISSION} \
         permission in Command, which JobHistory needs"
    )]
    Forbidden { url: String },
    #[error(
        "GET {url}: Command refused the NTLM credentials of {user}; no further logon is \
         tried (so the account is not locked out) until the daemon restarts with fixed \
         ntlm_user / ntlm_password"
    )]
    NtlmRefused { url: String, user: String },
    #[error("GET {url} answered {status}: {snippet}")]
    Status {
        url: String,
        status: u16,
        snippet: String,
    },
    #[error("GET {url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("GET {url}: no answer within {}", humantime::format_duration(*.after))]
    TimedOut { url: String, after: Duration },
    #[error("GET {url}: the answer is larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("GET {url}: the answer is not a JSON array of records")]
    NotRecords {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

impl FetchError {
    /// Whether a person must change something in Command or in the config
    /// (logged as an error rather than a warning).
    pub fn needs_a_person(&self) -> bool {
        matches!(
            self,
            FetchError::Unauthorized { .. }
                | FetchError::Forbidden { .. }
                | FetchError::NtlmRefused { .. }
        )
    }
}

impl JobHistoryApi {
    pub fn new(
        settings: &JobHistorySettings,
        context: http::Context<'_>,
    ) -> Result<Self, BuildError> {
        let url = http::base_url(&settings.base_url)
            .and_then(|base| base.join("OrchestratorJobs/JobHistory").ok())
            .ok_or_else(|| BuildError::BaseUrl(settings.base_url.clone()))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        Ok(JobHistoryApi {
            endpoint: Endpoint::new(&settings.connection, &host, context)?,
            url,
            timeout: settings.timeout.0,
        })
    }

    /// The records `query` asks for, as Command wrote them.
    pub async fn fetch(&self, query: Query<'_>) -> Result<Vec<Value>, FetchError> {
        let (filter, limit, descending) = query.parameters();
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("QueryString", &filter)
            .append_pair("PageReturned", "1")
            .append_pair("ReturnLimit", &limit.to_string())
            .append_pair("SortField", "JobHistoryId")
            .append_pair("SortAscending", &descending.to_string());
        // Messages name the endpoint and the filter (never a query value
        // of base_url's, which may hold a token).
        let shown = format!("{} ({filter})", redact(self.url.as_str()));
        tokio::time::timeout(self.timeout, self.exchange(&url, &shown))
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::TimedOut {
                    url: shown.clone(),
                    after: self.timeout,
                })
            })
    }

    async fn exchange(&self, url: &Url, shown: &str) -> Result<Vec<Value>, FetchError> {
        let failed = |reason: String| FetchError::Failed {
            url: shown.to_owned(),
            reason,
        };
        let request = |authorization: Option<String>| {
            let request = self
                .endpoint
                .client()
                .get(url.clone())
                .header("x-keyfactor-requested-with", "APIClient")
                .header(ACCEPT, "application/json");
            match authorization {
                Some(value) => request.header(AUTHORIZATION, value),
                None => request,
            }
        };
        // The whole exchange is bounded by the caller.
        let answer = match self.endpoint.deliver(request, Duration::MAX).await {
            Ok(answer) => answer,
            Err(SendError::Refused { user }) => {
                return Err(FetchError::NtlmRefused {
                    url: shown.to_owned(),
                    user,
                });
            }
            Err(other) => return Err(failed(self.endpoint.explain(other))),
        };
        // The answer holds an NTLM connection until its body is read.
        let mut response = answer.response;
        let url = shown.to_owned();
        match response.status().as_u16() {
            401 => return Err(FetchError::Unauthorized { url }),
            403 => return Err(FetchError::Forbidden { url }),
            _ => {}
        }
        let status = response.status();
        let body = read_at_most(&mut response, MAX_BODY)
            .await
            .map_err(|err| failed(self.endpoint.describe(err)))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body.bytes);
            return Err(FetchError::Status {
                url,
                status: status.as_u16(),
                snippet: text.chars().take(200).collect(),
            });
        }
        if !body.complete {
            return Err(FetchError::TooLarge { url });
        }
        serde_json::from_slice(&body.bytes).map_err(|source| FetchError::NotRecords { url, source })
    }
}
