//! What a script can call besides the sandboxed standard library: `log`,
//! `print`, `json`, `env`, `http.request` and `client` (the `[api]` section).
//!
//! HTTP calls run on the daemon's runtime; the script's own thread waits for
//! the answer (see `pool`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, MultiValue, Table, Value};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::Deserialize;
use tracing::{debug, error, info, trace, warn};

use super::convert::{json_text, json_to_lua};
use super::response::{ResponseError, answer, read};
use super::sandbox::time_left;
use super::settings::ApiSettings;
use crate::config::values::{MAX_DURATION, error_chain};
use crate::http::endpoint::{Endpoint, describe};
use crate::http::{self, ClientError, header_map};

/// The `[api]` section, ready: its client is shared by every script.
#[derive(Debug)]
pub struct ApiClient {
    endpoint: Endpoint,
    base_url: Url,
    headers: HeaderMap,
    timeout: Duration,
}

impl ApiClient {
    /// Allows NTLM one more logon after the server refused the credentials.
    pub fn rearm(&self) {
        self.endpoint.rearm();
    }

    pub fn new(settings: &ApiSettings, http: http::Context<'_>) -> Result<ApiClient, ApiError> {
        let base_url = http::base_url(&settings.base_url)
            .ok_or_else(|| ApiError::BaseUrl(settings.base_url.clone()))?;
        let host = base_url.host_str().unwrap_or_default().to_owned();
        Ok(ApiClient {
            endpoint: Endpoint::new(&settings.connection, &host, http).map_err(ApiError::Client)?,
            headers: header_map(&settings.headers).map_err(ApiError::Client)?,
            base_url,
            timeout: settings.timeout.0,
        })
    }
}

/// Why the `[api]` section cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("[api] base_url: {0:?} is not an http(s) URL")]
    BaseUrl(String),
    #[error("[api]")]
    Client(#[source] ClientError),
}

/// What the API tables of one script's states need.
#[derive(Clone, Debug)]
pub struct ScriptEnv {
    /// The handler (or drop-in file) name, tagged on log lines.
    pub handler: String,
    /// Environment variables `env(name)` may read.
    pub allow_env: Vec<String>,
    pub api: Option<Arc<ApiClient>>,
    /// Client for `http.request`.
    pub http: reqwest::Client,
    /// Longest response body read for the script (its `memory_limit`: a
    /// larger one could not become a Lua string anyway, and is refused
    /// before it is all in the daemon's memory).
    pub max_body: u64,
    /// Set once the script has made a request (`http` or `client`): its
    /// calls wait on the network, so its events run as tasks of their own.
    pub networked: Arc<AtomicBool>,
}

/// The id of the event being handled, for log lines.
pub struct CurrentEvent(pub String);

/// A request as scripts describe it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    method: Option<String>,
    url: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    /// Seconds.
    timeout: Option<f64>,
}

pub fn install(lua: &Lua, env: &ScriptEnv) -> mlua::Result<()> {
    let globals = lua.globals();
    let log = lua.create_table()?;
    for level in ["trace", "debug", "info", "warn", "error"] {
        let handler = env.handler.clone();
        log.set(
            level,
            lua.create_function(move |lua, message: mlua::LuaString| {
                emit(lua, level, &handler, &message.to_string_lossy());
                Ok(())
            })?,
        )?;
    }
    globals.set("log", log)?;
    let handler = env.handler.clone();
    globals.set(
        "print",
        lua.create_function(move |lua, values: MultiValue| {
            let mut line = Vec::new();
            for value in values {
                line.push(value.to_string()?);
            }
            emit(lua, "info", &handler, &line.join("\t"));
            Ok(())
        })?,
    )?;

    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, value: Value| {
            let text = json_text(lua, value)?;
            Ok(String::from_utf8(text).expect("JSON text is UTF-8"))
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: mlua::LuaString| {
            json_to_lua(lua, &text.as_bytes())?
                .map_err(|err| mlua::Error::runtime(format!("json.decode: {err}")))
        })?,
    )?;
    json.set("null", lua.null())?;
    json.set(
        "array",
        lua.create_function(|lua, table: Option<Table>| {
            let table = match table {
                Some(table) => table,
                None => lua.create_table()?,
            };
            table.set_metatable(Some(lua.array_metatable()))?;
            Ok(table)
        })?,
    )?;
    globals.set("json", json)?;

    let (allowed, handler) = (env.allow_env.clone(), env.handler.clone());
    globals.set(
        "env",
        lua.create_function(move |_, name: String| {
            if !allowed.contains(&name) {
                return Err(mlua::Error::runtime(format!(
                    "env: {name} is not in allow_env of handler `{handler}`"
                )));
            }
            Ok(std::env::var(&name).ok())
        })?,
    )?;

    let http = lua.create_table()?;
    let (client, max_body) = (env.http.clone(), env.max_body);
    let networked = env.networked.clone();
    http.set(
        "request",
        lua.create_async_function(move |lua, spec: Table| {
            let client = client.clone();
            networked.store(true, Ordering::Relaxed);
            async move {
                let spec: RequestSpec = lua.from_value(Value::Table(spec))?;
                let url = spec
                    .url
                    .as_deref()
                    .ok_or_else(|| mlua::Error::runtime("http.request: `url` is required"))?;
                let url = Url::parse(url)
                    .map_err(|err| mlua::Error::runtime(format!("http.request: url: {err}")))?;
                let prepared = Prepared::new(&spec, &HeaderMap::new())?;
                let timeout = call_timeout(&lua, spec.timeout, Duration::from_secs(30));
                let response = tokio::time::timeout(timeout, async {
                    match prepared.request(&client, &url).send().await {
                        Ok(response) => read(response, max_body, describe).await,
                        Err(err) => Err(ResponseError::Failed(describe(err))),
                    }
                })
                .await;
                let result = response.unwrap_or(Err(ResponseError::TimedOut(timeout)));
                answer(&lua, "http.request", &url, result)
            }
        })?,
    )?;
    globals.set("http", http)?;

    globals.set("client", api_table(lua, env)?)?;
    Ok(())
}

/// `client:get(path)`, `client:post(path, body)`, `client:request{…}`.
fn api_table(lua: &Lua, env: &ScriptEnv) -> mlua::Result<Table> {
    let client = lua.create_table()?;
    let (api, max_body) = (env.api.clone(), env.max_body);
    let networked = env.networked.clone();
    let request = lua.create_async_function(move |lua, (_, spec): (Value, Table)| {
        let api = api.clone();
        networked.store(true, Ordering::Relaxed);
        async move {
            let api = api.as_deref().ok_or_else(|| {
                mlua::Error::runtime("client: handlers.toml has no [api] section")
            })?;
            let spec: RequestSpec = lua.from_value(Value::Table(spec))?;
            let path = spec.path.as_deref().unwrap_or_default();
            let url = under_base(&api.base_url, path)
                .map_err(|err| mlua::Error::runtime(error_chain(&err)))?;
            let prepared = Prepared::new(&spec, &api.headers)?;
            let timeout = call_timeout(&lua, spec.timeout, api.timeout);
            let response = tokio::time::timeout(timeout, async {
                let client = api.endpoint.client();
                // The whole call is bounded here, by the script's timeout.
                let delivered = api
                    .endpoint
                    .deliver(
                        |authorization| {
                            let request = prepared.request(client, &url);
                            match authorization {
                                Some(value) => {
                                    request.header(reqwest::header::AUTHORIZATION, value)
                                }
                                None => request,
                            }
                        },
                        Duration::MAX,
                    )
                    .await;
                let describe = |err| api.endpoint.describe(err);
                match delivered {
                    // The answer holds the NTLM connection until its body is read.
                    Ok(answer) => read(answer.response, max_body, describe).await,
                    Err(err) => Err(ResponseError::Failed(api.endpoint.explain(err))),
                }
            })
            .await;
            let result = response.unwrap_or(Err(ResponseError::TimedOut(timeout)));
            answer(&lua, "client", &url, result)
        }
    })?;
    client.set("request", request)?;
    lua.load(
        r#"
        local client = ...
        function client:get(path, headers)
          return self:request{ path = path, headers = headers }
        end
        function client:post(path, body, headers)
          if body ~= nil and type(body) ~= "string" then body = json.encode(body) end
          return self:request{ method = "POST", path = path, body = body, headers = headers }
        end
        "#,
    )
    .set_name("=client")
    .call::<()>(&client)?;
    Ok(client)
}

fn emit(lua: &Lua, level: &str, handler: &str, message: &str) {
    let event = lua.app_data_ref::<CurrentEvent>();
    let id = event.as_deref().map_or("", |event| event.0.as_str());
    match level {
        "trace" => trace!(target: "jobhook::script", handler, id, "{message}"),
        "debug" => debug!(target: "jobhook::script", handler, id, "{message}"),
        "info" => info!(target: "jobhook::script", handler, id, "{message}"),
        "warn" => warn!(target: "jobhook::script", handler, id, "{message}"),
        _ => error!(target: "jobhook::script", handler, id, "{message}"),
    }
}

/// The request's own timeout, no longer than what is left of the script's.
fn call_timeout(lua: &Lua, asked: Option<f64>, default: Duration) -> Duration {
    // A script may ask for any number: NaN, negative or beyond what a
    // Duration holds means the default.
    let asked = asked
        .filter(|seconds| *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .map_or(default, |asked| asked.min(MAX_DURATION));
    time_left(lua).map_or(asked, |left| asked.min(left))
}

/// `base` joined with a script's `path`, refused unless it stays under
/// `base` (same scheme, host and port, path below base's): `[api]`'s
/// credentials go with every client request. URL joining reads
/// `\\host/x`, `//host/x`, `https:host/x` or `../..` as leaving the base.
fn under_base(base: &Url, path: &str) -> Result<Url, PathError> {
    let url = base
        .join(path.trim_start_matches('/'))
        .map_err(|source| PathError::Invalid {
            path: path.to_owned(),
            source: source.into(),
        })?;
    let same_origin = url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default();
    if same_origin && url.path().starts_with(base.path()) {
        Ok(url)
    } else {
        Err(PathError::Outside {
            path: path.to_owned(),
        })
    }
}

/// Why a `client` path cannot be requested.
#[derive(Debug, thiserror::Error)]
enum PathError {
    #[error("client: path {path:?}")]
    Invalid {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(
        "client: path {path:?} leads outside [api] base_url; give a path under it \
         (use http.request for other URLs)"
    )]
    Outside { path: String },
}

/// A request checked once, so that building it again (for each NTLM leg)
/// cannot fail.
struct Prepared {
    method: Method,
    headers: HeaderMap,
    body: Option<String>,
}

impl Prepared {
    fn new(spec: &RequestSpec, base: &HeaderMap) -> mlua::Result<Prepared> {
        let method = spec.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| mlua::Error::runtime(format!("{method:?} is not an HTTP method")))?;
        let mut headers = base.clone();
        headers.extend(header_map(&spec.headers).map_err(mlua::Error::runtime)?);
        Ok(Prepared {
            method,
            headers,
            body: spec.body.clone(),
        })
    }

    fn request(&self, client: &reqwest::Client, url: &Url) -> reqwest::RequestBuilder {
        let request = client
            .request(self.method.clone(), url.clone())
            .headers(self.headers.clone());
        match &self.body {
            Some(body) => request.body(body.clone()),
            None => request,
        }
    }
}
