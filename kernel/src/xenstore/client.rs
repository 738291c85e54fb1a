//! A xenstore client: one request at a time, each answered or timed out within a bound;
//! watch events that arrive meanwhile are kept (a few, short) for the caller to take.
//! Everything is sized statically: one reply buffer of `XENSTORE_PAYLOAD_MAX` bytes.

use super::ring::{send_some, Broken, Incoming, Message, StoreChannel};
use crate::xen::abi::xenstore::{msg, XsdSockmsg, ABS_PATH_MAX, PAYLOAD_MAX};
use heapless::{Deque, Vec};

/// How long a request may wait for its reply by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
/// Watch events kept until taken; more are dropped and [`Client::take_events_lost`] says
/// so (a caller that rescans on any event loses nothing by that).
pub const EVENTS_KEPT: usize = 8;
/// The longest watch event kept (path and token); a longer one counts as lost.
pub const EVENT_MAX: usize = 256;

/// An error xenstored answered with (`XS_ERROR`), by its errno name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    NoEntry,
    Access,
    Exists,
    Invalid,
    /// A transaction conflicted: run it again.
    Again,
    /// Another errno name, or none that parses.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Store(StoreError),
    /// No reply within the bound; the connection stays usable (a late reply is dropped).
    Timeout,
    /// The request would exceed the protocol's payload or path limits.
    TooLong,
    /// A reply was not what its request calls for (e.g. not a number).
    BadReply,
    /// xenstored broke the protocol; the connection is unusable from now on.
    Broken(Broken),
}

/// A watch event: the path that changed, then NUL, then the watch's token.
pub type Event = Vec<u8, EVENT_MAX>;

pub struct Client<C: StoreChannel> {
    channel: C,
    next_req_id: u32,
    incoming: Incoming,
    reply: Vec<u8, PAYLOAD_MAX>,
    events: Deque<Event, EVENTS_KEPT>,
    events_lost: bool,
    broken: Option<Broken>,
    timeout_ms: u64,
}

impl<C: StoreChannel> Client<C> {
    pub fn new(channel: C) -> Self {
        Self {
            channel,
            next_req_id: 1,
            incoming: Incoming::default(),
            reply: Vec::new(),
            events: Deque::new(),
            events_lost: false,
            broken: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    pub fn set_timeout_ms(&mut self, timeout_ms: u64) {
        self.timeout_ms = timeout_ms;
    }

    pub fn channel(&self) -> &C {
        &self.channel
    }

    pub fn channel_mut(&mut self) -> &mut C {
        &mut self.channel
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<Broken> {
        self.broken
    }

    /// A node's value (`XS_READ`).
    pub fn read(&mut self, path: &str) -> Result<&[u8], Error> {
        check_path(path)?;
        self.request(msg::READ, 0, &[path.as_bytes(), b"\0"])
    }

    /// A node's value as an unsigned number, decimal or `0x` hexadecimal (what libxl
    /// writes with `%u`/`%lu`).
    pub fn read_number(&mut self, path: &str) -> Result<u64, Error> {
        parse_number(self.read(path)?).ok_or(Error::BadReply)
    }

    /// Sets a node's value, creating it and its parents (`XS_WRITE`).
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        self.write_in(0, path, value)
    }

    /// As [`Self::write`], inside transaction `tx`.
    pub fn write_in(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), Error> {
        check_path(path)?;
        self.request(msg::WRITE, tx, &[path.as_bytes(), b"\0", value])
            .map(|_| ())
    }

    /// Removes a node and everything under it (`XS_RM`).
    pub fn remove(&mut self, path: &str) -> Result<(), Error> {
        check_path(path)?;
        self.request(msg::RM, 0, &[path.as_bytes(), b"\0"])
            .map(|_| ())
    }

    /// The names of a node's children (`XS_DIRECTORY`).
    pub fn directory(&mut self, path: &str) -> Result<Names<'_>, Error> {
        check_path(path)?;
        let reply = self.request(msg::DIRECTORY, 0, &[path.as_bytes(), b"\0"])?;
        Ok(Names { rest: reply })
    }

    /// Asks for an event whenever `path` or a node under it changes (and one at once).
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        check_path(path)?;
        let parts = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"];
        self.request(msg::WATCH, 0, &parts).map(|_| ())
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        check_path(path)?;
        let parts = [path.as_bytes(), b"\0", token.as_bytes(), b"\0"];
        self.request(msg::UNWATCH, 0, &parts).map(|_| ())
    }

    /// The home path of a domain, e.g. `/local/domain/3` (`XS_GET_DOMAIN_PATH`).
    pub fn domain_path(&mut self, domid: u16) -> Result<&[u8], Error> {
        let mut digits = [0u8; 5];
        let digits = decimal(u64::from(domid), &mut digits);
        let reply = self.request(msg::GET_DOMAIN_PATH, 0, &[digits, b"\0"])?;
        Ok(trim_nul(reply))
    }

    /// Starts a transaction; its id goes to [`Self::write_in`] and [`Self::end`].
    pub fn start(&mut self) -> Result<u32, Error> {
        let reply = self.request(msg::TRANSACTION_START, 0, &[b"\0"])?;
        let id = parse_number(trim_nul(reply)).ok_or(Error::BadReply)?;
        u32::try_from(id).map_err(|_| Error::BadReply)
    }

    /// Commits (`commit`) or abandons a transaction; `Store(Again)`: run it again.
    pub fn end(&mut self, tx: u32, commit: bool) -> Result<(), Error> {
        let flag: &[u8] = if commit { b"T\0" } else { b"F\0" };
        self.request(msg::TRANSACTION_END, tx, &[flag]).map(|_| ())
    }

    /// The oldest watch event not taken yet; also collects any that arrived.
    pub fn take_event(&mut self) -> Result<Option<Event>, Error> {
        if self.events.is_empty() {
            self.pump_events()?;
        }
        Ok(self.events.pop_front())
    }

    /// Whether events were dropped since last asked (queue full, or too long to keep).
    pub fn take_events_lost(&mut self) -> bool {
        core::mem::take(&mut self.events_lost)
    }

    /// Sends one request and waits, within the timeout, for the reply with its id.
    fn request(&mut self, kind: u32, tx: u32, parts: &[&[u8]]) -> Result<&[u8], Error> {
        if let Some(broken) = self.broken {
            return Err(Error::Broken(broken));
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(Error::TooLong);
        }
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let header = XsdSockmsg {
            type_: kind,
            req_id,
            tx_id: tx,
            len: len as u32,
        };
        let deadline = self.channel.now_ms().saturating_add(self.timeout_ms);
        self.send_all(&header.to_bytes(), deadline)?;
        for part in parts {
            self.send_all(part, deadline)?;
        }
        loop {
            while let Some(message) = self.receive()? {
                if message.header.type_ == msg::WATCH_EVENT {
                    self.keep_event(&message.payload);
                } else if message.header.req_id == req_id {
                    return self.answer(message);
                }
                // Otherwise the late reply to a request that timed out: dropped.
            }
            if self.channel.now_ms() >= deadline {
                return Err(Error::Timeout);
            }
            self.channel.wait(deadline);
        }
    }

    fn answer(&mut self, message: Message) -> Result<&[u8], Error> {
        if message.header.type_ == msg::ERROR {
            return Err(Error::Store(store_error(trim_nul(&message.payload))));
        }
        self.reply = message.payload;
        Ok(&self.reply)
    }

    /// Writes all of `bytes` to the request ring, waiting for room until `deadline`.
    fn send_all(&mut self, mut bytes: &[u8], deadline: u64) -> Result<(), Error> {
        while !bytes.is_empty() {
            let sent = send_some(&mut self.channel, bytes).map_err(|b| self.break_with(b))?;
            bytes = bytes.get(sent..).unwrap_or_default();
            self.channel.notify();
            if bytes.is_empty() {
                break;
            }
            if self.channel.now_ms() >= deadline {
                return Err(Error::Timeout);
            }
            self.channel.wait(deadline);
        }
        Ok(())
    }

    /// The next whole message, if the ring holds one.
    fn receive(&mut self) -> Result<Option<Message>, Error> {
        let mut consumed = false;
        let message = self
            .incoming
            .receive(&mut self.channel, &mut consumed)
            .map_err(|b| self.break_with(b));
        if consumed {
            self.channel.notify();
        }
        message
    }

    fn pump_events(&mut self) -> Result<(), Error> {
        if let Some(broken) = self.broken {
            return Err(Error::Broken(broken));
        }
        while let Some(message) = self.receive()? {
            if message.header.type_ == msg::WATCH_EVENT {
                self.keep_event(&message.payload);
            }
        }
        Ok(())
    }

    fn keep_event(&mut self, payload: &[u8]) {
        let kept = Vec::from_slice(payload)
            .ok()
            .and_then(|event| self.events.push_back(event).ok());
        if kept.is_none() {
            self.events_lost = true;
        }
    }

    fn break_with(&mut self, broken: Broken) -> Error {
        self.broken = Some(broken);
        Error::Broken(broken)
    }
}

/// The NUL-terminated names of an `XS_DIRECTORY` reply.
pub struct Names<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Names<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while !self.rest.is_empty() {
            let end = self
                .rest
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(self.rest.len());
            let (name, rest) = self.rest.split_at(end);
            self.rest = rest.get(1..).unwrap_or_default();
            if !name.is_empty() {
                return Some(name);
            }
        }
        None
    }
}

/// An event's path and token.
pub fn event_parts(event: &[u8]) -> (&[u8], &[u8]) {
    let mut parts = event.split(|&b| b == 0);
    let path = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default();
    (path, token)
}

fn check_path(path: &str) -> Result<(), Error> {
    if path.len() > ABS_PATH_MAX || path.contains('\0') {
        return Err(Error::TooLong);
    }
    Ok(())
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\0").unwrap_or(bytes)
}

fn store_error(name: &[u8]) -> StoreError {
    match name {
        b"ENOENT" => StoreError::NoEntry,
        b"EACCES" => StoreError::Access,
        b"EEXIST" => StoreError::Exists,
        b"EINVAL" => StoreError::Invalid,
        b"EAGAIN" => StoreError::Again,
        _ => StoreError::Other,
    }
}

/// Decimal, or hexadecimal after `0x`; `None` for anything else or on overflow.
pub fn parse_number(text: &[u8]) -> Option<u64> {
    let text = trim_nul(text);
    let (digits, radix) = match text.strip_prefix(b"0x") {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &b| {
        let digit = char::from(b).to_digit(radix)?;
        value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(digit))
    })
}

/// `value` in decimal, written at the end of `buffer`.
pub fn decimal(mut value: u64, buffer: &mut [u8]) -> &[u8] {
    let mut at = buffer.len();
    while let Some(slot) = at.checked_sub(1).and_then(|i| buffer.get_mut(i)) {
        *slot = b'0' + (value % 10) as u8;
        at -= 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buffer.get(at..).unwrap_or_default()
}
