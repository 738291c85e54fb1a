//! The host's side of the demo's real devices: QEMU's own virtio-blk (a fresh raw image
//! each run) and virtio-net (user-mode networking), which stubvirt drives as the
//! frontend's "disk" and as its switch's uplink, and a TCP source on the host's loopback
//! that the frontend reaches through them (QEMU's user network maps its gateway 10.0.2.2
//! to 127.0.0.1). After the run the host hashes the image and the bytes it sent, to
//! check what the frontend reported.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Size of the raw disk image.
pub const DISK_BYTES: u64 = 32 << 20;
/// Bytes the TCP source sends per connection.
pub const TCP_BYTES: usize = 4 << 20;
const TCP_SEED: u64 = 0x7e57_da7a_5eed_0001;
/// A client that takes no data for this long is given up (the thread must end).
const TCP_STALL: Duration = Duration::from_secs(30);

/// Replaces `path` with a zero-filled (sparse) raw image: [`DISK_BYTES`] for one
/// frontend, a [`crate::demo::layout::SHARE_BYTES`] share each for several.
pub fn fresh_disk_image(path: &Path, frontends: u16) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let bytes = match frontends {
        0 | 1 => DISK_BYTES,
        n => crate::demo::layout::SHARE_BYTES * u64::from(n),
    };
    std::fs::File::create(path)
        .and_then(|file| file.set_len(bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// QEMU options adding the disk (on the raw image) and the NIC; both land on the virt
/// board's virtio-mmio transports, which are in its device tree whether used or not.
pub fn qemu_devices(image: &Path) -> Vec<String> {
    [
        "-drive".to_string(),
        format!("if=none,id=hostdisk,format=raw,file={}", image.display()),
        "-device".to_string(),
        "virtio-blk-device,drive=hostdisk".to_string(),
        "-netdev".to_string(),
        "user,id=hostnet".to_string(),
        "-device".to_string(),
        "virtio-net-device,netdev=hostnet".to_string(),
    ]
    .into()
}

/// The bytes the TCP source sends: xorshift64 from a fixed seed.
pub fn tcp_payload() -> Vec<u8> {
    let mut state = TCP_SEED;
    let mut out = Vec::with_capacity(TCP_BYTES);
    while out.len() < TCP_BYTES {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(TCP_BYTES);
    out
}

/// sha256 (hex) of a file, by coreutils' `sha256sum`.
pub fn sha256_of_file(path: &Path) -> Result<String, String> {
    sha256sum(Command::new("sha256sum").arg(path), &[])
}

/// sha256 (hex) of bytes, by coreutils' `sha256sum`.
pub fn sha256_of_bytes(bytes: &[u8]) -> Result<String, String> {
    sha256sum(&mut Command::new("sha256sum"), bytes)
}

fn sha256sum(command: &mut Command, input: &[u8]) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start sha256sum: {e}"))?;
    // sha256sum prints only at the end, so writing everything first cannot deadlock.
    let mut stdin = child.stdin.take().ok_or("sha256sum stdin")?;
    stdin
        .write_all(input)
        .map_err(|e| format!("sha256sum: {e}"))?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.split_whitespace().next() {
        Some(hex) if out.status.success() && hex.len() == 64 => Ok(hex.to_string()),
        _ => Err(format!("sha256sum failed: {}", out.status)),
    }
}

/// One connection the TCP source served.
#[derive(Clone, Debug)]
pub struct Served {
    pub bytes: usize,
    pub seconds: f64,
    pub error: Option<String>,
}

/// What the TCP sink received on one connection.
#[derive(Clone, Debug)]
pub struct Received {
    pub bytes: usize,
    pub seconds: f64,
    pub sha256: Result<String, String>,
    pub error: Option<String>,
}

/// A thread on 127.0.0.1 (ephemeral port) that hands every client to a handler and keeps
/// what it returns; it ends when this is dropped.
pub struct LocalServer<R> {
    port: u16,
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<R>>>,
    thread: Option<JoinHandle<()>>,
}

/// Sends [`tcp_payload`] to every client and closes.
pub type TcpSource = LocalServer<Served>;
/// Reads the expected bytes (or to EOF) from every client, then closes (the frontend's
/// busybox nc ends when the peer does): the frontend's upload, its TCP segmentation
/// offload meeting stubvirt's software segmentation for the wire.
pub type TcpSink = LocalServer<Received>;

impl TcpSource {
    pub fn start(payload: Arc<Vec<u8>>) -> Result<Self, String> {
        Self::serve("TCP source", move |stream| match stream {
            Ok(stream) => send(stream, &payload),
            Err(e) => Served {
                bytes: 0,
                seconds: 0.0,
                error: Some(format!("accept: {e}")),
            },
        })
    }
}

impl TcpSink {
    pub fn start(expected: usize) -> Result<Self, String> {
        Self::serve("TCP sink", move |stream| match stream {
            Ok(stream) => receive(stream, expected),
            Err(e) => Received {
                bytes: 0,
                seconds: 0.0,
                sha256: Err("nothing received".into()),
                error: Some(format!("accept: {e}")),
            },
        })
    }
}

impl<R: Clone + Send + 'static> LocalServer<R> {
    fn serve(
        what: &str,
        handle: impl Fn(std::io::Result<TcpStream>) -> R + Send + 'static,
    ) -> Result<Self, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("{what}: bind 127.0.0.1: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("{what}: {e}"))?
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let (thread_stop, thread_records) = (stop.clone(), records.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    break;
                }
                let record = handle(stream);
                if let Ok(mut records) = thread_records.lock() {
                    records.push(record);
                }
            }
        });
        Ok(Self {
            port,
            stop,
            records,
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the connections so far returned.
    pub fn records(&self) -> Vec<R> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl<R> Drop for LocalServer<R> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the thread blocked in accept.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn receive(mut stream: TcpStream, expected: usize) -> Received {
    let start = Instant::now();
    let _ = stream.set_read_timeout(Some(TCP_STALL));
    let mut data = Vec::with_capacity(expected);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut error = None;
    while data.len() < expected {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let _ = stream.shutdown(Shutdown::Both);
    Received {
        bytes: data.len(),
        seconds,
        sha256: sha256_of_bytes(&data),
        error,
    }
}

fn send(mut stream: TcpStream, payload: &[u8]) -> Served {
    let start = Instant::now();
    let _ = stream.set_write_timeout(Some(TCP_STALL));
    let mut bytes = 0;
    let mut error = None;
    for chunk in payload.chunks(64 * 1024) {
        if let Err(e) = stream.write_all(chunk) {
            error = Some(e.to_string());
            break;
        }
        bytes += chunk.len();
    }
    let _ = stream.shutdown(Shutdown::Write);
    Served {
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn tcp_source_sends_the_payload_to_each_client_then_closes() {
        let payload = Arc::new(tcp_payload());
        let source = TcpSource::start(payload.clone()).unwrap();
        for _ in 0..2 {
            let mut got = Vec::new();
            TcpStream::connect((Ipv4Addr::LOCALHOST, source.port()))
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == *payload);
        }
        // The thread records a connection after sending it: give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while source.records().len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let served = source.records();
        assert_eq!(served.len(), 2);
        assert!(served
            .iter()
            .all(|s| s.bytes == TCP_BYTES && s.error.is_none()));
        drop(source); // joins the thread
    }

    #[test]
    fn payload_is_deterministic_and_not_trivial() {
        let a = tcp_payload();
        assert_eq!(a.len(), TCP_BYTES);
        assert!(a == tcp_payload());
        assert_ne!(a[..8], a[8..16]);
        assert!(a.iter().filter(|&&b| b == 0).count() < TCP_BYTES / 128);
    }

    #[test]
    fn sha256_of_bytes_and_file_agree() {
        // FIPS 180-2 example: "abc".
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_of_bytes(b"abc").unwrap(), abc);
        let path = std::env::temp_dir().join(format!("demo-host-sha-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_of_file(&path).unwrap(), abc);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn disk_image_is_fresh_and_zero() {
        let path = std::env::temp_dir().join(format!("demo-host-disk-{}", std::process::id()));
        std::fs::write(&path, b"old contents").unwrap();
        fresh_disk_image(&path, 1).unwrap();
        let data = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(data.len() as u64, DISK_BYTES);
        assert!(data.iter().all(|&b| b == 0));
    }

    #[test]
    fn qemu_gets_a_raw_disk_and_a_user_network() {
        let args = qemu_devices(Path::new("/t/disk.img")).join(" ");
        assert!(args.contains("-drive if=none,id=hostdisk,format=raw,file=/t/disk.img"));
        assert!(args.contains("-device virtio-blk-device,drive=hostdisk"));
        assert!(args.contains("-netdev user,id=hostnet -device virtio-net-device,netdev=hostnet"));
    }
}
