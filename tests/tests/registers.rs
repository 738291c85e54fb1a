//! The virtio-mmio register file and the ioreq path: identity registers, access widths
//! the spec allows and forbids, config generation, interrupt acknowledge, and ioreq
//! slots Xen could hand over that a virtio-mmio backend must answer without serving.

use devices::backend::BackendError;
use devices::blk::backend::RamDisk;
use devices::blk::BlkOptions;
use devices::ioreq::{
    Ioreq, IoreqError, IOREQ_READ, IOREQ_TYPE_COPY, IOREQ_TYPE_INVALIDATE, IOREQ_TYPE_PIO,
    STATE_IOREQ_READY, STATE_IORESP_READY,
};
use devices::mmio::{reg, MmioError};
use stubvirt_tests::rings::RawDriver;
use stubvirt_tests::scenario::{self, FRONTEND, OTHER_FRONTEND};

fn one_disk() -> (scenario::Shared, RawDriver) {
    let machine = scenario::machine(&[FRONTEND, OTHER_FRONTEND]);
    scenario::add_ram_disk(
        &machine,
        FRONTEND,
        0,
        RamDisk::new(4096, "id"),
        BlkOptions::default(),
    );
    let (base, _) = scenario::window(0);
    let raw = RawDriver::new(&machine, FRONTEND, base);
    (machine, raw)
}

fn errors(machine: &scenario::Shared) -> Vec<IoreqError> {
    std::mem::take(&mut machine.borrow_mut().ioreq_errors)
}

#[test]
fn identity_registers_read_as_the_spec_says() {
    let (machine, raw) = one_disk();
    assert_eq!(raw.read(reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(raw.read(reg::VERSION), 2);
    assert_eq!(raw.read(reg::DEVICE_ID), 2);
    assert_eq!(raw.read(reg::VENDOR_ID), devices::mmio::VENDOR_ID);
    let features = raw.device_features();
    for bit in [32, 33, 28, 29, 9, 13, 14] {
        assert_ne!(features & (1 << bit), 0, "feature bit {bit} offered");
    }
    assert_eq!(features & (1 << 5), 0, "a writable disk does not offer RO");
    // No shared memory regions: length reads as all ones.
    raw.write(reg::SHM_SEL, 0);
    assert_eq!(raw.read(reg::SHM_LEN_LOW), u32::MAX);
    assert_eq!(raw.read(reg::SHM_LEN_HIGH), u32::MAX);
    assert!(errors(&machine).is_empty());
}

#[test]
fn config_space_reads_at_field_widths() {
    let (machine, raw) = one_disk();
    assert_eq!(raw.read_sized(reg::CONFIG, 4), 4096, "capacity low");
    assert_eq!(raw.read_sized(reg::CONFIG + 4, 4), 0, "capacity high");
    assert_eq!(
        raw.read_sized(reg::CONFIG, 8),
        4096,
        "64-bit read of the 64-bit field"
    );
    assert_eq!(raw.read_sized(reg::CONFIG + 20, 4), 512, "blk_size");
    assert_eq!(raw.read_sized(reg::CONFIG + 34, 2), 1, "num_queues");
    assert_eq!(
        raw.read_sized(reg::CONFIG + 56, 1),
        1,
        "write_zeroes_may_unmap"
    );
    assert!(errors(&machine).is_empty());
    // Misaligned and out-of-range config reads: answered 0, reported.
    assert_eq!(raw.read_sized(reg::CONFIG + 1, 2), 0);
    assert_eq!(raw.read_sized(reg::CONFIG + 0x80, 4), 0);
    // Config is read-only for the driver.
    raw.write_sized(reg::CONFIG, 4, 1);
    assert_eq!(raw.read_sized(reg::CONFIG, 4), 4096);
    let errs = errors(&machine);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(matches!(
        errs[0],
        IoreqError::Backend(BackendError::Register(MmioError::BadWidth { .. }))
    ));
    assert!(matches!(
        errs[1],
        IoreqError::Backend(BackendError::Register(MmioError::OutOfRange(_)))
    ));
    assert!(matches!(
        errs[2],
        IoreqError::Backend(BackendError::Register(MmioError::WrongDirection(_)))
    ));
}

#[test]
fn forbidden_register_accesses_are_answered_and_have_no_effect() {
    let (machine, raw) = one_disk();
    let cases: [(u64, u32, bool); 6] = [
        (reg::STATUS, 2, false),          // 16-bit access to a control register
        (reg::STATUS + 1, 4, false),      // misaligned
        (reg::QUEUE_NOTIFY, 4, false),    // read of a write-only register
        (reg::MAGIC_VALUE, 4, true),      // write of a read-only register
        (0x0d0, 4, false),                // hole in the register map
        (reg::DEVICE_FEATURES, 8, false), // 64-bit control access
    ];
    for (offset, size, write) in cases {
        let value = if write {
            raw.write_sized(offset, size, 0x1234);
            0
        } else {
            raw.read_sized(offset, size)
        };
        assert_eq!(value, 0, "offset {offset:#x} size {size}");
    }
    assert_eq!(errors(&machine).len(), cases.len());
    assert_eq!(raw.read(reg::MAGIC_VALUE), 0x7472_6976, "magic unchanged");
    assert_eq!(
        machine.borrow().backend.counters(0).unwrap().mmio_errors,
        cases.len() as u64
    );
}

#[test]
fn accesses_outside_any_window_or_from_another_domain_are_answered() {
    let (machine, _raw) = one_disk();
    let (base, _) = scenario::window(0);
    let mut m = machine.borrow_mut();
    assert_eq!(m.trap(FRONTEND, 0, base + 0x200, 4, false, 0), 0);
    // Dom 2 has no device at this window: the same address is not dom 1's device.
    assert_eq!(m.trap(OTHER_FRONTEND, 0, base, 4, false, 0), 0);
    assert!(matches!(
        m.ioreq_errors[..],
        [
            IoreqError::Backend(BackendError::NoDevice { .. }),
            IoreqError::Backend(BackendError::NoDevice { frontend: 2, .. })
        ]
    ));
}

#[test]
fn ioreqs_a_virtio_mmio_backend_does_not_serve_still_get_an_answer() {
    let (machine, _raw) = one_disk();
    let (base, _) = scenario::window(0);
    let good = Ioreq {
        addr: base,
        data: 0xdead,
        count: 1,
        size: 4,
        state: STATE_IOREQ_READY,
        data_is_ptr: false,
        dir: IOREQ_READ,
        df: false,
        kind: IOREQ_TYPE_COPY,
    };
    let hostile = [
        (
            Ioreq {
                data_is_ptr: true,
                ..good
            },
            IoreqError::DataIsPointer,
        ),
        (Ioreq { count: 4, ..good }, IoreqError::Repeated(4)),
        (
            Ioreq {
                kind: IOREQ_TYPE_PIO,
                ..good
            },
            IoreqError::UnsupportedType(IOREQ_TYPE_PIO),
        ),
        (Ioreq { size: 3, ..good }, IoreqError::BadSize(3)),
        (Ioreq { size: 16, ..good }, IoreqError::BadSize(16)),
    ];
    let mut m = machine.borrow_mut();
    for (vcpu, (slot, expected)) in hostile.iter().enumerate() {
        let vcpu = vcpu % 2;
        m.post_raw(FRONTEND, vcpu, *slot);
        m.serve_slots();
        let answered = m.slot(FRONTEND, vcpu).unwrap();
        assert_eq!(answered.state, STATE_IORESP_READY, "{expected:?} answered");
        assert_eq!(answered.data, 0, "{expected:?} reads as 0");
        assert_eq!(m.ioreq_errors.pop(), Some(*expected));
        m.collect(FRONTEND, vcpu);
    }
    // Invalidate needs nothing from a grant-only backend; a good read after all this works.
    m.post_raw(
        FRONTEND,
        0,
        Ioreq {
            kind: IOREQ_TYPE_INVALIDATE,
            ..good
        },
    );
    m.serve_slots();
    m.collect(FRONTEND, 0);
    m.post_raw(FRONTEND, 1, good);
    m.serve_slots();
    assert_eq!(m.collect(FRONTEND, 1), 0x7472_6976);
    assert!(m.ioreq_errors.is_empty());
}

#[test]
fn both_vcpus_slots_are_served_in_one_pass() {
    let (machine, _raw) = one_disk();
    let (base, _) = scenario::window(0);
    let mut m = machine.borrow_mut();
    m.post(FRONTEND, 0, base + reg::VERSION, 4, false, 0);
    m.post(FRONTEND, 1, base + reg::DEVICE_ID, 4, false, 0);
    m.serve_slots();
    assert_eq!(m.collect(FRONTEND, 0), 2);
    assert_eq!(m.collect(FRONTEND, 1), 2);
    assert_eq!(m.ioreq_stats.ioreqs, 2);
}

#[test]
fn interrupt_status_is_acknowledged_bit_by_bit() {
    let mut f = stubvirt_tests::blk_fixture::BlkFixture::new(0);
    f.request(
        0,
        stubvirt_tests::blk_fixture::T_FLUSH,
        0,
        (f.mem.dma(0), 0),
        false,
    );
    assert_eq!(f.raw.read(reg::INTERRUPT_STATUS), 1);
    f.raw.write(reg::INTERRUPT_ACK, 2); // not pending: no effect
    assert_eq!(f.raw.read(reg::INTERRUPT_STATUS), 1);
    f.raw.write(reg::INTERRUPT_ACK, 1);
    assert_eq!(f.raw.read(reg::INTERRUPT_STATUS), 0);
}

#[test]
fn driver_features_are_frozen_after_features_ok() {
    let f = stubvirt_tests::blk_fixture::BlkFixture::new(0);
    // FEATURES_OK is set (fixture negotiated); a later features write is refused.
    f.raw.write(reg::DRIVER_FEATURES_SEL, 0);
    f.raw.write(reg::DRIVER_FEATURES, 0xffff_ffff);
    let errs = std::mem::take(&mut f.machine.borrow_mut().ioreq_errors);
    assert!(matches!(
        errs[..],
        [IoreqError::Backend(BackendError::Register(
            MmioError::NotNow(_)
        ))]
    ));
}
