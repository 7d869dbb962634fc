//! An HTTP response as a script receives it: `status, body, headers`, the
//! body read only up to the script's `memory_limit`.

use std::time::Duration;

use mlua::{Lua, MultiValue, Value};
use reqwest::Url;

use crate::config::values::error_chain;
use crate::http::redact;

/// Why a script's request has no answer for it.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the response body is larger than the script's memory_limit ({})", bytesize::ByteSize(*.limit))]
    TooLarge { limit: u64 },
    /// The exchange failed, as `Endpoint::explain` tells it: with every
    /// cause and the TLS section in use.
    #[error("{0}")]
    Failed(String),
    #[error("timed out after {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
}

pub struct Answer {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// The response, its body read up to `max_body` bytes; errors are
/// described with `describe`.
pub async fn read(
    mut response: reqwest::Response,
    max_body: u64,
    describe: impl Fn(reqwest::Error) -> String,
) -> Result<Answer, ResponseError> {
    let too_large = || ResponseError::TooLarge { limit: max_body };
    if response
        .content_length()
        .is_some_and(|length| length > max_body)
    {
        return Err(too_large());
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| ResponseError::Failed(describe(err)))?
    {
        if (body.len() + chunk.len()) as u64 > max_body {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        body,
        headers,
    })
}

/// `status, body, headers` for the script, or an error naming the URL.
pub fn answer(
    lua: &Lua,
    what: &str,
    url: &Url,
    result: Result<Answer, ResponseError>,
) -> mlua::Result<MultiValue> {
    let answer = result.map_err(|err| {
        mlua::Error::runtime(format!(
            "{what}: {}: {}",
            redact(url.as_str()),
            error_chain(&err)
        ))
    })?;
    let headers = lua.create_table()?;
    for (name, value) in answer.headers {
        headers.set(name, value)?;
    }
    Ok(MultiValue::from_iter([
        Value::Integer(answer.status.into()),
        Value::String(lua.create_string(&answer.body)?),
        Value::Table(headers),
    ]))
}
