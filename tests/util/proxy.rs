//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a test store: answers chosen requests
//! with `503 Slow Down` (S3's throttling answer), or stops (closes its port and every
//! connection) after a number of requests, as a server that goes away mid-operation. Plain
//! HTTP/1.1 with `Content-Length` bodies, which is what object_store sends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does.
#[derive(Default)]
pub struct Faults {
    /// Answer this many of the next requests with 503.
    pub throttle_next: AtomicUsize,
    /// Also answer every n-th request with 503 (0: never).
    pub throttle_every: AtomicUsize,
    /// Stop once this many requests were forwarded (0: never).
    pub stop_after: AtomicUsize,
    /// Requests seen.
    pub requests: AtomicUsize,
    /// 503s sent.
    pub throttled: AtomicUsize,
    /// The request line (`GET /bucket/key?... HTTP/1.1`) of every request seen.
    pub log: Mutex<Vec<String>>,
    stopped: AtomicBool,
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub faults: Arc<Faults>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Proxy {
        let up: SocketAddr = upstream.trim_start_matches("http://").trim_end_matches('/').parse().expect("upstream host:port");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Faults::default());
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (f, c) = (faults.clone(), conns.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if f.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(s) = stream.try_clone() {
                    c.lock().unwrap().push(s);
                }
                let f = f.clone();
                std::thread::spawn(move || serve(stream, up, &f));
            }
            // The listener is dropped here: new connections are refused.
        });
        Proxy { addr, faults, conns }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops now: the port closes, open connections are cut.
    pub fn stop(&self) {
        if self.faults.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop so that it drops the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one request or response head (up to the blank line).
fn read_head(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            return Some(lines);
        }
        lines.push(line);
    }
}

fn content_length(head: &[String]) -> usize {
    head.iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn serve(client: TcpStream, up: SocketAddr, f: &Faults) {
    let mut out = client.try_clone().unwrap();
    let mut r = BufReader::new(client);
    while let Some(head) = read_head(&mut r) {
        let mut body = vec![0; content_length(&head)];
        if r.read_exact(&mut body).is_err() || f.stopped.load(Ordering::SeqCst) {
            return;
        }
        let n = f.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(line) = head.first() {
            f.log.lock().unwrap().push(line.clone());
        }
        let every = f.throttle_every.load(Ordering::SeqCst);
        let throttle = f.throttle_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(1)).is_ok() || (every > 0 && n % every == 0);
        if throttle {
            f.throttled.fetch_add(1, Ordering::SeqCst);
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let resp = format!("HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}", xml.len());
            if out.write_all(resp.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let stop_after = f.stop_after.load(Ordering::SeqCst);
        if stop_after > 0 && n > stop_after {
            f.stopped.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&r.get_ref().local_addr().unwrap(), Duration::from_secs(1));
            return;
        }
        // Forward on a connection of its own, closed after the answer.
        let Ok(upstream) = TcpStream::connect(up) else { return };
        let mut upw = upstream.try_clone().unwrap();
        let mut req = String::new();
        for l in head.iter().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")) {
            req.push_str(l);
            req.push_str("\r\n");
        }
        req.push_str("Connection: close\r\n\r\n");
        if upw.write_all(req.as_bytes()).and_then(|_| upw.write_all(&body)).is_err() {
            return;
        }
        let mut ur = BufReader::new(upstream);
        let Some(rhead) = read_head(&mut ur) else { return };
        let mut rest = Vec::new();
        let _ = ur.read_to_end(&mut rest);
        let mut resp = String::new();
        for l in rhead.iter().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")) {
            resp.push_str(l);
            resp.push_str("\r\n");
        }
        // Keep the client's connection: the body is whole (read to the upstream's end).
        if !rhead.iter().any(|l| l.to_ascii_lowercase().starts_with("content-length:")) && !rhead.iter().any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:")) {
            resp.push_str(&format!("Content-Length: {}\r\n", rest.len()));
        }
        resp.push_str("\r\n");
        if out.write_all(resp.as_bytes()).and_then(|_| out.write_all(&rest)).is_err() {
            return;
        }
    }
}
