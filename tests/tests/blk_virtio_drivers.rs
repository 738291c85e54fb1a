//! virtio-blk driven by the independent `virtio-drivers` VirtIOBlk over the simulated Xen:
//! grant-DMA buffers, trapped register accesses, real requests verified against a shadow.

use devices::blk::backend::RamDisk;
use devices::blk::BlkOptions;
use stubvirt_tests::hal::GrantDmaHal;
use stubvirt_tests::scenario::{self, Rng, FRONTEND};
use stubvirt_tests::transport::XenMmioTransport;
use stubvirt_tests::world;
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};

type Blk = VirtIOBlk<GrantDmaHal<1>, XenMmioTransport>;

const SECTORS: u64 = 2048; // 1 MiB

fn blk(options: BlkOptions, disk: RamDisk) -> (scenario::Shared, Blk) {
    let machine = scenario::machine(&[FRONTEND]);
    scenario::add_ram_disk(&machine, FRONTEND, 0, disk, options);
    let (base, _) = scenario::window(0);
    let transport = XenMmioTransport::probe(machine.clone(), FRONTEND, 0, base).unwrap();
    let driver = Blk::new(transport).expect("virtio-drivers accepts the device");
    (machine, driver)
}

#[test]
fn random_reads_and_writes_match_a_shadow_copy() {
    let (machine, mut driver) = blk(
        BlkOptions::default(),
        RamDisk::new(SECTORS, "stubvirt-ram0"),
    );
    assert_eq!(driver.capacity(), SECTORS);
    assert!(!driver.readonly());
    let mut shadow = vec![0u8; (SECTORS * 512) as usize];
    let mut rng = Rng::new(7);
    let sizes = [1usize, 2, 7, 8, 9, 16, 33, 64, 128];
    for round in 0..200 {
        let sectors = sizes[rng.below(sizes.len() as u64) as usize];
        let start = rng.below(SECTORS - sectors as u64 + 1) as usize;
        let bytes = sectors * SECTOR_SIZE;
        let range = start * SECTOR_SIZE..start * SECTOR_SIZE + bytes;
        if round % 3 == 0 {
            let mut data = vec![0u8; bytes];
            driver.read_blocks(start, &mut data).unwrap();
            assert!(
                data == shadow[range],
                "round {round}: read of {sectors} sectors at {start} differs"
            );
        } else {
            let mut data = vec![0u8; bytes];
            rng.fill(&mut data);
            driver.write_blocks(start, &data).unwrap();
            shadow[range].copy_from_slice(&data);
        }
    }
    // Everything written is read back in one pass, in 64 KiB pieces.
    for start in (0..SECTORS as usize).step_by(128) {
        let mut data = vec![0u8; 128 * SECTOR_SIZE];
        driver.read_blocks(start, &mut data).unwrap();
        assert!(
            data == shadow[start * 512..(start + 128) * 512],
            "final read at sector {start} differs"
        );
    }
    driver.flush().unwrap();
    let mut id = [0u8; 20];
    let len = driver.device_id(&mut id).unwrap();
    assert_eq!(&id[..len], b"stubvirt-ram0");

    let m = machine.borrow();
    let counters = m.backend.counters(0).unwrap();
    assert_eq!(counters.request_errors, 0);
    assert_eq!(counters.queue_errors, 0);
    assert_eq!(counters.requests, 200 + 16 + 2);
    // Data mappings never outlive their request: only the three rings stay mapped.
    let ring_pages = world::with(|w| w.live_mappings());
    assert_eq!(counters.pages_held(), ring_pages as u64);
    assert!(
        (3..=6).contains(&ring_pages),
        "rings hold {ring_pages} pages"
    );
    // One map and one unmap batch per request (two maps with an indirect table).
    let stats = world::with(|w| w.stats);
    assert!(stats.map_batches <= 2 * counters.requests + 3, "{stats:?}");
    assert!(stats.unmap_batches <= counters.requests + 3, "{stats:?}");
    scenario::assert_no_violations();
    println!("blk conformance: {counters:?}\nhypercalls: {stats:?}");
}

#[test]
fn reset_releases_every_mapping_and_grant() {
    let (machine, mut driver) = blk(BlkOptions::default(), RamDisk::new(64, "r"));
    let mut data = vec![0x5au8; 4096];
    driver.write_blocks(3, &data).unwrap();
    data.fill(0);
    driver.read_blocks(3, &mut data).unwrap();
    assert!(data.iter().all(|&b| b == 0x5a));
    drop(driver); // virtio-drivers clears the queue (QueueReady = 0) and frees its rings
    assert_eq!(world::with(|w| w.live_mappings()), 0);
    assert_eq!(
        machine.borrow().backend.counters(0).unwrap().pages_held(),
        0
    );
    // Every grant the frontend made could be ended: nothing was still mapped.
    scenario::assert_no_violations();
    assert_eq!(world::with(|w| w.table(FRONTEND).live_grants()), 0);
}

#[test]
fn read_only_disk_serves_reads_and_refuses_writes() {
    let mut contents = vec![0u8; 64 * 512];
    Rng::new(3).fill(&mut contents);
    let disk = RamDisk::from_bytes(contents.clone(), "ro").read_only();
    let (machine, mut driver) = blk(BlkOptions::default(), disk);
    assert!(driver.readonly());
    let mut data = vec![0u8; 8 * 512];
    driver.read_blocks(8, &mut data).unwrap();
    assert_eq!(data, contents[8 * 512..16 * 512]);
    let err = driver.write_blocks(0, &[1u8; 512]).unwrap_err();
    assert_eq!(err, virtio_drivers::Error::IoError);
    // The disk did not change.
    let mut first = vec![0u8; 512];
    driver.read_blocks(0, &mut first).unwrap();
    assert_eq!(first, contents[..512]);
    assert_eq!(
        machine.borrow().backend.counters(0).unwrap().request_errors,
        1
    );
    scenario::assert_no_violations();
}

#[test]
fn reads_past_the_end_fail_with_ioerr() {
    let (machine, mut driver) = blk(BlkOptions::default(), RamDisk::new(16, "s"));
    let mut data = vec![0u8; 2 * 512];
    assert_eq!(
        driver.read_blocks(15, &mut data).unwrap_err(),
        virtio_drivers::Error::IoError
    );
    assert_eq!(
        driver.write_blocks(16, &data).unwrap_err(),
        virtio_drivers::Error::IoError
    );
    driver.read_blocks(14, &mut data).unwrap();
    assert_eq!(
        machine.borrow().backend.counters(0).unwrap().request_errors,
        2
    );
    scenario::assert_no_violations();
}
