//! A scripted HTTP/1.1 server on 127.0.0.1:0 that records what it receives.
//!
//! Each request takes the next scripted reply (or the default one). It keeps
//! connections alive like a real server, and can serve TLS.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub enum Reply {
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Never answer (the connection stays open).
    Hang,
    /// The reply, after a pause.
    After(Duration, Box<Reply>),
    /// Announces `length` body bytes, then sends them `step` at a time with
    /// `every` between steps, for as long as the client reads.
    Trickle {
        code: u16,
        headers: Vec<(String, String)>,
        length: u64,
        step: usize,
        every: Duration,
    },
}

impl Reply {
    pub fn status(code: u16) -> Reply {
        Reply::Status {
            code,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Status { headers, .. } | Reply::Trickle { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    pub fn with_body(mut self, text: &str) -> Reply {
        if let Reply::Status { body, .. } = &mut self {
            *body = text.to_owned();
        }
        self
    }
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    /// The reply to the n-th request (counting from 0) once the script is
    /// used up; 200 when unset.
    otherwise: Option<Box<dyn Fn(usize) -> Reply + Send>>,
    /// Body bytes of `Trickle` replies the clients took.
    trickled: u64,
    /// Requests received and not yet answered, and the most there were.
    in_flight: usize,
    peak_in_flight: usize,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

type Acceptor = Option<tokio_rustls::TlsAcceptor>;

impl HttpServer {
    pub fn start() -> HttpServer {
        HttpServer::serve(None)
    }

    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> HttpServer {
        HttpServer::serve(Some(tokio_rustls::TlsAcceptor::from(config)))
    }

    fn serve(tls: Acceptor) -> HttpServer {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let shared = state.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    let state = shared.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    connection(stream, state).await;
                                }
                            }
                            None => connection(stream, state).await,
                        }
                    });
                }
            });
        });
        HttpServer {
            addr: addr_rx.recv().unwrap(),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Replies for the next requests, in order; afterwards requests get 200.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// The reply to the n-th request (from 0) once the script is used up.
    pub fn otherwise(&self, reply: impl Fn(usize) -> Reply + Send + 'static) {
        self.state.lock().unwrap().otherwise = Some(Box::new(reply));
    }

    /// The most requests the server had received and not yet answered.
    pub fn peak_in_flight(&self) -> usize {
        self.state.lock().unwrap().peak_in_flight
    }

    /// Body bytes of `Trickle` replies the clients took so far.
    pub fn trickled(&self) -> u64 {
        self.state.lock().unwrap().trickled
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn wait_for(&self, count: usize) -> Vec<Request> {
        super::eventually(&format!("{count} HTTP requests"), || {
            self.requests().len() >= count
        });
        self.requests()
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: Arc<Mutex<State>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let reply = {
            let mut state = state.lock().unwrap();
            state.requests.push(Request {
                method,
                target,
                headers,
                body,
                at: Instant::now(),
            });
            state.in_flight += 1;
            state.peak_in_flight = state.peak_in_flight.max(state.in_flight);
            let n = state.requests.len() - 1;
            match state.script.pop_front() {
                Some(reply) => reply,
                None => state
                    .otherwise
                    .as_ref()
                    .map_or_else(|| Reply::status(200), |otherwise| otherwise(n)),
            }
        };
        let answered = answer(stream.get_mut(), reply, &state).await;
        state.lock().unwrap().in_flight -= 1;
        if !answered {
            return;
        }
    }
}

/// Writes `reply`; false when the connection is done.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, reply: Reply, state: &Mutex<State>) -> bool {
    match reply {
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            false
        }
        Reply::After(pause, reply) => {
            tokio::time::sleep(pause).await;
            Box::pin(answer(stream, *reply, state)).await
        }
        Reply::Status {
            code,
            headers,
            body,
        } => {
            let mut head = head(code, body.len() as u64, &headers);
            head.push_str(&body);
            stream.write_all(head.as_bytes()).await.is_ok()
        }
        Reply::Trickle {
            code,
            headers,
            length,
            step,
            every,
        } => {
            let head = head(code, length, &headers);
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let chunk = vec![b'x'; step];
            let mut sent = 0;
            while sent < length {
                let part = &chunk[..step.min((length - sent) as usize)];
                if stream.write_all(part).await.is_err() || stream.flush().await.is_err() {
                    return false;
                }
                sent += part.len() as u64;
                state.lock().unwrap().trickled += part.len() as u64;
                tokio::time::sleep(every).await;
            }
            true
        }
    }
}

fn head(code: u16, length: u64, headers: &[(String, String)]) -> String {
    let mut head = format!("HTTP/1.1 {code} Scripted\r\nContent-Length: {length}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}
