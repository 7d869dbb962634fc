//! A plain HTTP/1.1 client for the admin API, on std's TcpStream: what a
//! test sends and gets back is exactly what is on the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A port free on 127.0.0.1 now (the daemon binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An `[admin]` section on `port` with these `(name, token, permissions)`.
pub fn section(port: u16, tokens: &[(&str, &str, &[&str])]) -> String {
    let mut text = format!("\n[admin]\nlisten = \"127.0.0.1:{port}\"\n");
    for (name, token, permissions) in tokens {
        let permissions: Vec<String> = permissions.iter().map(|p| format!("{p:?}")).collect();
        text.push_str(&format!(
            "[[admin.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\npermissions = [{}]\n",
            permissions.join(", ")
        ));
    }
    text
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {self:?}"))
    }
}

pub struct Api {
    pub address: SocketAddr,
}

impl Api {
    pub fn on(port: u16) -> Api {
        Api {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("GET", path, token, None)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: Option<&str>) -> Answer {
        self.call("POST", path, token, body)
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("DELETE", path, token, None)
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let mut stream = self.send(method, path, token, body, true);
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Answer {
            status,
            headers: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// Opens `GET path` as a stream; read it with [`Stream::next_line`],
    /// or not at all.
    pub fn stream(&self, path: &str, token: Option<&str>) -> Stream {
        let stream = self.send("GET", path, token, None, false);
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
        }
        Stream { reader }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        close: bool,
    ) -> TcpStream {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.address);
        if close {
            request.push_str("Connection: close\r\n");
        }
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        stream
    }
}

/// A chunked stream of JSON lines.
pub struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    /// The next JSON line (chunk sizes skipped); `None` when it ended.
    pub fn next_line(&mut self) -> Option<Value> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if line.starts_with('{') {
                return Some(serde_json::from_str(line.trim_end()).unwrap());
            }
        }
    }

    /// The socket, to set timeouts.
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}
