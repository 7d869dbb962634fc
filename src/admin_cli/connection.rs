//! One admin API as the commands reach it: its address and token from the
//! config and the environment, and requests that give back the JSON answer
//! or say why there is none.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Longest a request may take (a registration waits for the reload).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Where the admin API is, and the token to show it.
pub struct Admin {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

/// Why a command did not get what it asked for.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The config names no admin API, or the token cannot be read.
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Input(String),
    #[error("cannot reach the admin API at {base}: {cause}")]
    Unreachable { base: String, cause: String },
    /// The daemon answered with an error.
    #[error("{status}: {message}")]
    Refused { status: u16, message: String },
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Unreachable { .. } => 2,
            _ => 1,
        }
    }
}

impl Admin {
    /// The admin API named by `[admin] listen` in `config` (read on its
    /// own, so a config with problems elsewhere still names it); the token
    /// from `token_file`, else `$JOBHOOK_TOKEN`.
    pub fn from_config(config: &Path, token_file: Option<&Path>) -> Result<Admin, Failure> {
        #[derive(Deserialize)]
        struct File {
            admin: Option<Listen>,
        }
        #[derive(Deserialize)]
        struct Listen {
            listen: String,
        }
        let text = std::fs::read_to_string(config).map_err(|err| {
            Failure::Setup(format!("cannot read config {}: {err}", config.display()))
        })?;
        let file: File = toml::from_str(&text)
            .map_err(|err| Failure::Setup(format!("{}: {}", config.display(), err.message())))?;
        let listen = file.admin.map(|admin| admin.listen).ok_or_else(|| {
            Failure::Setup(format!(
                "{} has no [admin] section: the daemon serves no admin API",
                config.display()
            ))
        })?;
        let address: std::net::SocketAddr = listen.parse().map_err(|_| {
            Failure::Setup(format!(
                "{}: [admin] listen = {listen:?} is not an address",
                config.display()
            ))
        })?;
        // A daemon listening on every address is reached on this machine.
        let address = match address.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => {
                std::net::SocketAddr::from(([127, 0, 0, 1], address.port()))
            }
            ip if ip.is_unspecified() => {
                std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
            }
            _ => address,
        };
        let token = match token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|err| {
                        Failure::Setup(format!("cannot read token file {}: {err}", file.display()))
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("JOBHOOK_TOKEN")
                .ok()
                .filter(|token| !token.is_empty()),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| Failure::Setup(format!("cannot start the runtime: {err}")))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|err| {
                Failure::Setup(format!(
                    "cannot build the HTTP client: {}",
                    crate::config::values::error_chain(&err)
                ))
            })?;
        Ok(Admin {
            base: format!("http://{address}"),
            token,
            client,
            runtime,
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call(self.request(reqwest::Method::GET, path))
    }

    pub fn post(&self, path: &str, body: Option<Value>) -> Result<Value, Failure> {
        let mut request = self.request(reqwest::Method::POST, path);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        self.call(request)
    }

    pub fn delete(&self, path: &str) -> Result<Value, Failure> {
        self.call(self.request(reqwest::Method::DELETE, path))
    }

    /// Reads a stream of lines, handing each to `line`, until it ends.
    pub fn stream(&self, path: &str, mut line: impl FnMut(&str)) -> Result<(), Failure> {
        self.runtime.block_on(async {
            let mut response = self.send(self.request(reqwest::Method::GET, path)).await?;
            let mut pending = Vec::new();
            loop {
                let chunk = response
                    .chunk()
                    .await
                    .map_err(|err| self.unreachable(&err))?;
                let Some(chunk) = chunk else { return Ok(()) };
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                    let text: Vec<u8> = pending.drain(..=end).collect();
                    line(String::from_utf8_lossy(&text).trim_end());
                }
            }
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        self.runtime.block_on(async {
            let response = self.send(request.timeout(REQUEST_TIMEOUT)).await?;
            let body = response
                .bytes()
                .await
                .map_err(|err| self.unreachable(&err))?;
            serde_json::from_slice(&body).map_err(|err| Failure::Refused {
                status: 200,
                message: format!("the answer is not JSON: {err}"),
            })
        })
    }

    /// Sends; an answer other than 2xx is a [`Failure::Refused`] with the
    /// API's message and problems.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, Failure> {
        let response = request.send().await.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        let message = match serde_json::from_slice::<Value>(&body) {
            Ok(answer) => {
                let mut message = answer["error"].as_str().unwrap_or("").to_owned();
                for problem in answer["problems"].as_array().into_iter().flatten() {
                    message.push_str("\n  ");
                    message.push_str(problem.as_str().unwrap_or_default());
                }
                message
            }
            Err(_) => String::from_utf8_lossy(&body).into_owned(),
        };
        Err(Failure::Refused {
            status: status.as_u16(),
            message,
        })
    }

    fn unreachable(&self, err: &reqwest::Error) -> Failure {
        Failure::Unreachable {
            base: self.base.clone(),
            cause: crate::config::values::error_chain(err),
        }
    }
}
