//! A simulated xenstored for host tests: the server end of the rings over an in-memory
//! page, a tree of nodes, watches, and ways to misbehave. Time moves only when the client
//! waits, by [`SimStore::STEP_MS`] per wait, so timeouts are exact.

use super::ring::StoreChannel;
use crate::xen::abi::xenstore::{msg, offset, XsdSockmsg, HEADER_SIZE, RING_SIZE};
use std::collections::{BTreeMap, VecDeque};
use std::vec::Vec;

#[derive(Default)]
pub struct Misbehaviour {
    /// Never answer requests.
    pub silent: bool,
    /// Answer every request first with a reply carrying another request id.
    pub stale_reply_first: bool,
    /// Set the reply ring's producer this far beyond its consumer.
    pub rsp_prod_jump: Option<u32>,
    /// Announce this payload length in the next reply header.
    pub reply_len: Option<u32>,
    /// Reply with this type instead.
    pub reply_type: Option<u32>,
    /// Answer only this many bytes per wait (slow reader/writer).
    pub bytes_per_step: Option<usize>,
}

pub struct SimStore {
    page: Vec<u8>,
    pub nodes: BTreeMap<String, Vec<u8>>,
    watches: Vec<(String, String)>,
    /// Bytes of replies not yet on the ring.
    outgoing: VecDeque<u8>,
    /// Request bytes taken off the ring, not yet a whole message.
    incoming: Vec<u8>,
    pub now_ms: u64,
    pub notifications: u64,
    pub misbehave: Misbehaviour,
    pub home: String,
    next_tx: u32,
}

impl SimStore {
    pub const STEP_MS: u64 = 10;

    pub fn new(home: &str) -> Self {
        Self {
            page: vec![0; 4096],
            nodes: BTreeMap::new(),
            watches: Vec::new(),
            outgoing: VecDeque::new(),
            incoming: Vec::new(),
            now_ms: 0,
            notifications: 0,
            misbehave: Misbehaviour::default(),
            home: home.to_string(),
            next_tx: 1,
        }
    }

    fn word(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.page[at..at + 4].try_into().unwrap())
    }

    fn set_word(&mut self, at: usize, value: u32) {
        self.page[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// A node changes outside the client (the toolstack writes it): watches fire.
    pub fn toolstack_write(&mut self, path: &str, value: &str) {
        self.nodes
            .insert(path.to_string(), value.as_bytes().to_vec());
        self.fire(path);
    }

    pub fn toolstack_remove(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.nodes
            .retain(|k, _| k != path && !k.starts_with(&prefix));
        self.fire(path);
    }

    /// One server step: take requests, answer them, move replies onto the ring.
    pub fn step(&mut self) {
        let mut cons = self.word(offset::REQ_CONS);
        let prod = self.word(offset::REQ_PROD);
        while cons != prod {
            self.incoming
                .push(self.page[offset::REQ + (cons as usize & (RING_SIZE - 1))]);
            cons = cons.wrapping_add(1);
        }
        self.set_word(offset::REQ_CONS, cons);
        while self.incoming.len() >= HEADER_SIZE {
            let header = XsdSockmsg::from_bytes(self.incoming[..HEADER_SIZE].try_into().unwrap());
            let end = HEADER_SIZE + header.len as usize;
            if self.incoming.len() < end {
                break;
            }
            let payload: Vec<u8> = self.incoming[HEADER_SIZE..end].to_vec();
            self.incoming.drain(..end);
            if !self.misbehave.silent {
                self.answer(header, &payload);
            }
        }
        self.flush();
    }

    fn flush(&mut self) {
        let cons = self.word(offset::RSP_CONS);
        let mut prod = self.word(offset::RSP_PROD);
        let room = RING_SIZE - prod.wrapping_sub(cons) as usize;
        let budget = self.misbehave.bytes_per_step.unwrap_or(usize::MAX);
        for _ in 0..room.min(budget) {
            let Some(byte) = self.outgoing.pop_front() else {
                break;
            };
            self.page[offset::RSP + (prod as usize & (RING_SIZE - 1))] = byte;
            prod = prod.wrapping_add(1);
        }
        if let Some(jump) = self.misbehave.rsp_prod_jump {
            prod = cons.wrapping_add(jump);
        }
        self.set_word(offset::RSP_PROD, prod);
    }

    fn reply(&mut self, type_: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        let header = XsdSockmsg {
            type_: self.misbehave.reply_type.unwrap_or(type_),
            req_id,
            tx_id,
            len: self.misbehave.reply_len.unwrap_or(payload.len() as u32),
        };
        self.outgoing.extend(header.to_bytes());
        self.outgoing.extend(payload);
    }

    fn absolute(&self, path: &str) -> String {
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{path}", self.home)
        }
    }

    fn fire(&mut self, path: &str) {
        let events: Vec<(String, String)> = self
            .watches
            .iter()
            .filter(|(watched, _)| path == watched || path.starts_with(&format!("{watched}/")))
            .cloned()
            .collect();
        for (_, token) in events {
            let payload = format!("{path}\0{token}\0");
            self.reply(msg::WATCH_EVENT, 0, 0, payload.as_bytes());
        }
    }

    fn answer(&mut self, header: XsdSockmsg, payload: &[u8]) {
        let mut args = payload.split(|&b| b == 0);
        let first = String::from_utf8_lossy(args.next().unwrap_or_default()).to_string();
        if self.misbehave.stale_reply_first {
            self.reply(msg::READ, header.req_id.wrapping_add(1000), 0, b"stale");
        }
        let (id, tx) = (header.req_id, header.tx_id);
        match header.type_ {
            msg::READ => match self.nodes.get(&self.absolute(&first)).cloned() {
                Some(value) => self.reply(msg::READ, id, tx, &value),
                None => self.reply(msg::ERROR, id, tx, b"ENOENT\0"),
            },
            msg::WRITE => {
                let path = self.absolute(&first);
                let value = payload[first.len() + 1..].to_vec();
                self.nodes.insert(path.clone(), value);
                self.reply(msg::WRITE, id, tx, b"OK\0");
                self.fire(&path);
            }
            msg::RM => {
                let path = self.absolute(&first);
                self.toolstack_remove(&path);
                self.reply(msg::RM, id, tx, b"OK\0");
            }
            msg::DIRECTORY => {
                let prefix = format!("{}/", self.absolute(&first));
                let mut names: Vec<String> = self
                    .nodes
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|rest| rest.split('/').next().unwrap_or("").to_string())
                    .collect();
                names.dedup();
                let mut out = Vec::new();
                for name in names {
                    out.extend(name.as_bytes());
                    out.push(0);
                }
                self.reply(msg::DIRECTORY, id, tx, &out);
            }
            msg::WATCH => {
                let token = String::from_utf8_lossy(args.next().unwrap_or_default()).to_string();
                let path = self.absolute(&first);
                self.watches.push((path.clone(), token.clone()));
                self.reply(msg::WATCH, id, tx, b"OK\0");
                let payload = format!("{path}\0{token}\0");
                self.reply(msg::WATCH_EVENT, 0, 0, payload.as_bytes());
            }
            msg::UNWATCH => {
                let path = self.absolute(&first);
                self.watches.retain(|(p, _)| *p != path);
                self.reply(msg::UNWATCH, id, tx, b"OK\0");
            }
            msg::GET_DOMAIN_PATH => {
                let path = format!("/local/domain/{first}\0");
                self.reply(msg::GET_DOMAIN_PATH, id, tx, path.as_bytes());
            }
            msg::TRANSACTION_START => {
                let tx_id = self.next_tx;
                self.next_tx += 1;
                self.reply(
                    msg::TRANSACTION_START,
                    id,
                    0,
                    format!("{tx_id}\0").as_bytes(),
                );
            }
            msg::TRANSACTION_END => self.reply(msg::TRANSACTION_END, id, tx, b"OK\0"),
            _ => self.reply(msg::ERROR, id, tx, b"EINVAL\0"),
        }
    }
}

impl StoreChannel for SimStore {
    fn index(&self, at: usize) -> u32 {
        self.word(at)
    }

    fn set_index(&mut self, at: usize, value: u32) {
        self.set_word(at, value);
    }

    fn read(&self, at: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.page[at..at + out.len()]);
    }

    fn write(&mut self, at: usize, bytes: &[u8]) {
        self.page[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn notify(&mut self) {
        self.notifications += 1;
    }

    fn now_ms(&self) -> u64 {
        self.now_ms
    }

    fn wait(&mut self, until_ms: u64) {
        self.now_ms = (self.now_ms + Self::STEP_MS).min(until_ms.max(self.now_ms));
        self.step();
    }
}
