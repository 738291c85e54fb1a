//! The two byte rings of the xenstore page: requests out, replies and watch events in.
//! Indices run free (u32) and are masked by the ring size. Nothing xenstored writes is
//! trusted: an index pair that claims more than a ring's worth of bytes, a header with an
//! unknown type or a payload over the protocol's limit breaks the connection for good
//! (the rings cannot be resynchronised), with the reason kept.

use crate::xen::abi::xenstore::{msg, offset, XsdSockmsg, HEADER_SIZE, PAYLOAD_MAX, RING_SIZE};
use heapless::Vec;

/// The shared page and its event channel, as the client reaches them.
pub trait StoreChannel {
    /// Reads a ring index of the page. Bytes xenstored wrote before publishing it are
    /// visible once it is read (the implementation orders the accesses).
    fn index(&self, at: usize) -> u32;
    /// Publishes a ring index, after the bytes written before it.
    fn set_index(&mut self, at: usize, value: u32);
    /// Copies bytes out of the page.
    fn read(&self, at: usize, out: &mut [u8]);
    /// Copies bytes into the page.
    fn write(&mut self, at: usize, bytes: &[u8]);
    /// Signals xenstored (its event channel).
    fn notify(&mut self);
    /// Milliseconds on a clock that only moves forward.
    fn now_ms(&self) -> u64;
    /// Blocks until xenstored signals or `until_ms` has come.
    fn wait(&mut self, until_ms: u64);
}

/// Why the connection to xenstored is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// A producer/consumer pair claiming more than a ring's worth of bytes.
    RingIndex,
    /// A reply or event header of a type the protocol does not have.
    UnknownType(u32),
    /// A payload longer than `XENSTORE_PAYLOAD_MAX`.
    PayloadTooLong(u32),
}

/// One message from xenstored, complete.
pub struct Message {
    pub header: XsdSockmsg,
    pub payload: Vec<u8, PAYLOAD_MAX>,
}

/// A message being received: its header once read, and the payload so far.
#[derive(Default)]
pub struct Incoming {
    header: Option<XsdSockmsg>,
    payload: Vec<u8, PAYLOAD_MAX>,
}

/// Writes as much of `bytes` as the request ring has room for; returns how many.
pub fn send_some<C: StoreChannel>(channel: &mut C, bytes: &[u8]) -> Result<usize, Broken> {
    let cons = channel.index(offset::REQ_CONS);
    let prod = channel.index(offset::REQ_PROD);
    let used = ring_used(cons, prod)?;
    let count = bytes.len().min(RING_SIZE - used);
    let (first, second) = split_at_wrap(prod, count);
    let (head, tail) = bytes.split_at(count).0.split_at(first);
    channel.write(offset::REQ + masked(prod), head);
    if second > 0 {
        channel.write(offset::REQ, tail);
    }
    if count > 0 {
        channel.set_index(offset::REQ_PROD, prod.wrapping_add(count as u32));
    }
    Ok(count)
}

impl Incoming {
    /// Takes what the reply ring holds towards the next message; returns it once whole.
    /// `consumed` is set when the ring's consumer index moved (xenstored may be waiting
    /// for room).
    pub fn receive<C: StoreChannel>(
        &mut self,
        channel: &mut C,
        consumed: &mut bool,
    ) -> Result<Option<Message>, Broken> {
        let mut cons = channel.index(offset::RSP_CONS);
        let prod = channel.index(offset::RSP_PROD);
        let mut available = ring_used(cons, prod)?;
        if self.header.is_none() {
            if available < HEADER_SIZE {
                return Ok(None);
            }
            let mut bytes = [0; HEADER_SIZE];
            read_ring(channel, cons, &mut bytes);
            let header = XsdSockmsg::from_bytes(&bytes);
            if header.type_ >= msg::TYPE_COUNT {
                return Err(Broken::UnknownType(header.type_));
            }
            if header.len as usize > PAYLOAD_MAX {
                return Err(Broken::PayloadTooLong(header.len));
            }
            cons = cons.wrapping_add(HEADER_SIZE as u32);
            available -= HEADER_SIZE;
            self.header = Some(header);
            self.payload.clear();
        }
        let Some(header) = self.header else {
            return Ok(None);
        };
        let wanted = (header.len as usize).saturating_sub(self.payload.len());
        let count = wanted.min(available);
        let mut chunk = [0; RING_SIZE];
        if let Some(chunk) = chunk.get_mut(..count) {
            read_ring(channel, cons, chunk);
            // Cannot fail: the payload never grows past header.len <= PAYLOAD_MAX.
            let _ = self.payload.extend_from_slice(chunk);
        }
        cons = cons.wrapping_add(count as u32);
        if cons != channel.index(offset::RSP_CONS) {
            channel.set_index(offset::RSP_CONS, cons);
            *consumed = true;
        }
        if self.payload.len() < header.len as usize {
            return Ok(None);
        }
        self.header = None;
        Ok(Some(Message {
            header,
            payload: core::mem::take(&mut self.payload),
        }))
    }
}

/// Bytes between consumer and producer, refused when more than the ring holds.
fn ring_used(cons: u32, prod: u32) -> Result<usize, Broken> {
    let used = prod.wrapping_sub(cons) as usize;
    if used > RING_SIZE {
        return Err(Broken::RingIndex);
    }
    Ok(used)
}

fn masked(index: u32) -> usize {
    index as usize & (RING_SIZE - 1)
}

/// How `count` bytes from ring index `at` split: before the ring's end, after its start.
fn split_at_wrap(at: u32, count: usize) -> (usize, usize) {
    let first = count.min(RING_SIZE - masked(at));
    (first, count - first)
}

/// Reads `out.len()` (at most a ring's worth) reply-ring bytes from index `at`.
fn read_ring<C: StoreChannel>(channel: &C, at: u32, out: &mut [u8]) {
    let (first, _) = split_at_wrap(at, out.len());
    let (head, tail) = out.split_at_mut(first);
    channel.read(offset::RSP + masked(at), head);
    if !tail.is_empty() {
        channel.read(offset::RSP, tail);
    }
}
