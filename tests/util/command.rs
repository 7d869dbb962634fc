//! A fake Keyfactor Command serving `GET OrchestratorJobs/JobHistory` on
//! 127.0.0.1:0: it filters, sorts and pages a list of records as the query
//! parameters say, records every request, and can be told to refuse, fail,
//! answer slowly, or have the daemon killed as soon as it has answered.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// A job-history request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
}

impl Request {
    pub fn query(&self, name: &str) -> &str {
        self.query.get(name).map_or("", String::as_str)
    }
}

/// What the next request gets instead of the records.
#[derive(Clone, Debug)]
pub enum Mishap {
    Status(u16),
    /// The records, after a pause.
    Slow(Duration),
}

#[derive(Default)]
struct State {
    records: BTreeMap<i64, Value>,
    requests: Vec<Request>,
    mishaps: VecDeque<Mishap>,
    /// Killed (SIGKILL) right after the next answer that holds records.
    kill_after_records: Option<u32>,
}

pub struct FakeCommand {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// A JobHistory record as Command writes it.
pub fn record(id: i64, job_type: &str, status: &str, result: &str) -> Value {
    json!({
        "JobHistoryId": id,
        "AgentMachine": "COMMAND",
        "JobId": format!("0b4b411a-4b26-4492-a575-{id:012}"),
        "Schedule": {"Interval": {"Minutes": 1}},
        "JobType": job_type,
        "OperationStart": "2023-05-06T00:27:00",
        "OperationEnd": if status == "Completed" { json!("2023-05-06T00:28:00") } else { Value::Null },
        "Message": "",
        "Result": result,
        "Status": status,
        "StorePath": "My",
        "ClientMachine": "iistarget.example.com"
    })
}

impl FakeCommand {
    pub fn start() -> FakeCommand {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeCommand { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/KeyfactorAPI/", self.addr)
    }

    /// Adds a record, or replaces the one with its id.
    pub fn put(&self, record: Value) {
        let id = record["JobHistoryId"].as_i64().unwrap();
        self.state.lock().unwrap().records.insert(id, record);
    }

    pub fn mishap(&self, mishap: Mishap) {
        self.state.lock().unwrap().mishaps.push_back(mishap);
    }

    /// SIGKILLs `pid` right after the next answer that holds records.
    pub fn kill_after_records(&self, pid: u32) {
        self.state.lock().unwrap().kill_after_records = Some(pid);
    }

    pub fn killed(&self) -> bool {
        self.state.lock().unwrap().kill_after_records.is_none()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://fake{target}")).unwrap();
    let request = Request {
        path: url.path().to_owned(),
        query: url.query_pairs().into_owned().collect(),
        headers,
    };
    let (mishap, body, kill) = {
        let mut state = state.lock().unwrap();
        state.requests.push(request.clone());
        let mishap = state.mishaps.pop_front();
        let body = answer(&state.records, &request);
        let answered = body.as_array().is_some_and(|records| !records.is_empty());
        let kill = match mishap {
            Some(Mishap::Status(_)) => None,
            _ if answered => state.kill_after_records.take(),
            _ => None,
        };
        (mishap, body, kill)
    };
    let (status, body) = match mishap {
        Some(Mishap::Status(code)) => (code, json!({"ErrorCode": "0x0", "Message": "refused"})),
        Some(Mishap::Slow(pause)) => {
            std::thread::sleep(pause);
            (200, body)
        }
        None => (200, body),
    };
    let body = body.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
    if let Some(pid) = kill {
        // Straight from this thread, not through a `kill` process: the
        // sooner the signal lands, the more often it falls between the look
        // and its commit rather than after.
        let pid = libc::pid_t::try_from(pid).unwrap();
        // SAFETY: kill(2) takes plain integers and touches no memory.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    }
}

/// The records the query asks for: `JobHistoryId -gt N` or
/// `JobHistoryId -eq A OR JobHistoryId -eq B …`, sorted by JobHistoryId
/// (`SortAscending` 0 ascending, 1 descending), paged.
fn answer(records: &BTreeMap<i64, Value>, request: &Request) -> Value {
    let filter = request.query("QueryString");
    let wanted = |id: i64| -> bool {
        if let Some(after) = filter.strip_prefix("JobHistoryId -gt ") {
            return id > after.parse::<i64>().unwrap();
        }
        filter
            .split(" OR ")
            .filter_map(|term| term.strip_prefix("JobHistoryId -eq "))
            .any(|wanted| wanted.parse::<i64>().unwrap() == id)
    };
    let mut found: Vec<&Value> = records
        .iter()
        .filter(|(id, _)| wanted(**id))
        .map(|(_, record)| record)
        .collect();
    if request.query("SortAscending") == "1" {
        found.reverse();
    }
    let limit: usize = request.query("ReturnLimit").parse().unwrap_or(50);
    let page: usize = request.query("PageReturned").parse().unwrap_or(1);
    let page: Vec<&Value> = found
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    json!(page)
}
