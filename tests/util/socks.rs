//! A SOCKS5 relay for tests: no authentication or a user and password
//! (RFC 1929), CONNECT only, one thread per tunnel. Counts the tunnels it
//! opened.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Socks5 {
    pub port: u16,
    tunnels: Arc<AtomicUsize>,
}

impl Socks5 {
    /// Tunnels opened so far.
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

/// A user and the password the relay wants.
type Login = (&'static str, &'static str);

/// Listens on 127.0.0.1 for the life of the test process, wanting no
/// authentication.
pub fn start() -> Socks5 {
    serve(None)
}

/// Like [`start`], but wanting `user` and `password` exactly: a client
/// that offers no password or sends other credentials gets no tunnel.
pub fn start_with_login(user: &'static str, password: &'static str) -> Socks5 {
    serve(Some((user, password)))
}

fn serve(login: Option<Login>) -> Socks5 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let counted = tunnels.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let counted = counted.clone();
            std::thread::spawn(move || relay(client, &counted, login));
        }
    });
    Socks5 { port, tunnels }
}

/// RFC 1928: greeting (and RFC 1929's logon when `login` is wanted),
/// CONNECT to an IPv4 address or a name, then bytes both ways until either
/// side closes.
fn relay(
    mut client: TcpStream,
    tunnels: &AtomicUsize,
    login: Option<Login>,
) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting)?;
    let mut methods = vec![0u8; greeting[1].into()];
    client.read_exact(&mut methods)?;
    if let Some(wanted) = login {
        if !methods.contains(&2) {
            return client.write_all(&[5, 0xff]);
        }
        client.write_all(&[5, 2])?;
        let mut version = [0u8; 1];
        client.read_exact(&mut version)?;
        let user = field(&mut client)?;
        let password = field(&mut client)?;
        if (user.as_str(), password.as_str()) != wanted {
            return client.write_all(&[1, 1]);
        }
        client.write_all(&[1, 0])?;
    } else {
        client.write_all(&[5, 0])?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut length = [0u8; 1];
            client.read_exact(&mut length)?;
            let mut name = vec![0u8; length[0].into()];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let mut upstream = TcpStream::connect((host.as_str(), u16::from_be_bytes(port)))?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
    tunnels.fetch_add(1, Ordering::SeqCst);
    let (mut from_client, mut to_upstream) = (client.try_clone()?, upstream.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    std::io::copy(&mut upstream, &mut client)?;
    client.shutdown(Shutdown::Write)
}

/// A length-prefixed string of RFC 1929's logon.
fn field(client: &mut TcpStream) -> std::io::Result<String> {
    let mut length = [0u8; 1];
    client.read_exact(&mut length)?;
    let mut text = vec![0u8; length[0].into()];
    client.read_exact(&mut text)?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}
