use super::client::{event_parts, parse_number, Client, Error, StoreError, EVENTS_KEPT};
use super::ring::Broken;
use super::sim::SimStore;
use crate::xen::abi::xenstore::PAYLOAD_MAX;

fn client() -> Client<SimStore> {
    Client::new(SimStore::new("/local/domain/1"))
}

#[test]
fn reads_writes_and_lists_nodes() {
    let mut c = client();
    c.write("/local/domain/1/backend/virtio/2/0/state", b"4")
        .unwrap();
    c.write("data/x", b"y").unwrap();
    assert_eq!(c.read("/local/domain/1/data/x").unwrap(), b"y");
    assert_eq!(
        c.read_number("backend/virtio/2/0/state").unwrap(),
        4,
        "relative to the domain's home"
    );
    c.write("backend/virtio/2/1/state", b"1").unwrap();
    let names: Vec<Vec<u8>> = c
        .directory("backend/virtio/2")
        .unwrap()
        .map(|n| n.to_vec())
        .collect();
    assert_eq!(names, [b"0".to_vec(), b"1".to_vec()]);
    assert_eq!(c.domain_path(7).unwrap(), b"/local/domain/7");
}

#[test]
fn an_error_reply_names_the_errno_and_the_connection_stays_usable() {
    let mut c = client();
    assert_eq!(
        c.read("nothing/here"),
        Err(Error::Store(StoreError::NoEntry))
    );
    c.write("a", b"1").unwrap();
    assert_eq!(c.read("a").unwrap(), b"1");
}

#[test]
fn payloads_longer_than_the_ring_go_out_and_come_back_in_pieces() {
    let mut c = client();
    let value: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    c.write("big", &value).unwrap();
    assert_eq!(c.read("big").unwrap(), &value[..]);
    c.channel_mut().misbehave.bytes_per_step = Some(7);
    assert_eq!(c.read("big").unwrap(), &value[..], "a slow server");
    let too_long = vec![b'x'; PAYLOAD_MAX];
    assert_eq!(c.write("big", &too_long), Err(Error::TooLong));
}

#[test]
fn watch_events_queue_while_requests_run_and_overflow_is_reported() {
    let mut c = client();
    c.watch("backend/virtio", "virtio").unwrap();
    let first = c.take_event().unwrap().expect("the initial event");
    assert_eq!(
        event_parts(&first),
        (&b"/local/domain/1/backend/virtio"[..], &b"virtio"[..])
    );
    c.channel_mut()
        .toolstack_write("/local/domain/1/backend/virtio/3/0/base", "33554432");
    // The event arrives while a read waits for its reply.
    c.write("other", b"1").unwrap();
    let event = c.take_event().unwrap().expect("the toolstack's write");
    assert_eq!(
        event_parts(&event).0,
        b"/local/domain/1/backend/virtio/3/0/base"
    );
    assert!(!c.take_events_lost());
    for n in 0..EVENTS_KEPT + 3 {
        let path = format!("/local/domain/1/backend/virtio/3/0/k{n}");
        c.channel_mut().toolstack_write(&path, "1");
    }
    c.write("other", b"2").unwrap();
    let mut taken = 0;
    while c.take_event().unwrap().is_some() {
        taken += 1;
    }
    assert_eq!(taken, EVENTS_KEPT);
    assert!(c.take_events_lost(), "the dropped events are reported");
}

#[test]
fn a_silent_store_times_out_within_the_bound_and_replies_to_other_ids_are_skipped() {
    let mut c = client();
    c.set_timeout_ms(200);
    c.channel_mut().misbehave.silent = true;
    assert_eq!(c.read("a"), Err(Error::Timeout));
    assert_eq!(c.channel().now_ms, 200, "waited exactly the bound");
    c.channel_mut().misbehave.silent = false;
    c.write("a", b"1").unwrap();
    c.channel_mut().misbehave.stale_reply_first = true;
    assert_eq!(
        c.read("a").unwrap(),
        b"1",
        "a reply for another id is skipped"
    );
}

#[test]
fn a_store_that_breaks_the_protocol_breaks_the_connection_for_good() {
    type Spoil = fn(&mut SimStore);
    let cases: [(&str, Spoil, Broken); 3] = [
        (
            "ring index",
            |s| s.misbehave.rsp_prod_jump = Some(5000),
            Broken::RingIndex,
        ),
        (
            "payload length",
            |s| s.misbehave.reply_len = Some(PAYLOAD_MAX as u32 + 1),
            Broken::PayloadTooLong(PAYLOAD_MAX as u32 + 1),
        ),
        (
            "type",
            |s| s.misbehave.reply_type = Some(999),
            Broken::UnknownType(999),
        ),
    ];
    for (what, spoil, broken) in cases {
        let mut c = client();
        c.write("a", b"1").unwrap();
        spoil(c.channel_mut());
        assert_eq!(c.read("a"), Err(Error::Broken(broken)), "{what}");
        assert_eq!(c.broken(), Some(broken));
        assert_eq!(
            c.write("a", b"2"),
            Err(Error::Broken(broken)),
            "{what}: stays broken"
        );
    }
}

#[test]
fn transactions_start_and_end() {
    let mut c = client();
    let tx = c.start().unwrap();
    assert!(tx > 0);
    c.write_in(tx, "state", b"4").unwrap();
    c.end(tx, true).unwrap();
}

#[test]
fn numbers_parse_as_libxl_writes_them() {
    assert_eq!(parse_number(b"33554432"), Some(0x0200_0000));
    assert_eq!(parse_number(b"0x2000200"), Some(0x0200_0200));
    assert_eq!(parse_number(b"33\0"), Some(33));
    assert_eq!(parse_number(b""), None);
    assert_eq!(parse_number(b"-1"), None);
    assert_eq!(parse_number(b"99999999999999999999999"), None);
}
