//! Grant mapping batched across the chains found in one pass: chains made available
//! together share one map batch (two with indirect tables) and one unmap batch, are
//! answered in order, and a chain that does not fit (or finds the grant window full)
//! waits for the next batch. Plus the
//! EVENT_IDX re-arm at the quota boundary, and, with request buffers by grant copy, the
//! request headers of a pass read, their data moved, and their status bytes written, in
//! one copy per 32 pieces, a refused copy failing only its own request. And on a disk
//! that takes several transfers at once, the reads and writes of a batch in flight
//! together.

mod copy_batches;
mod copy_failures;
mod map_batches;
mod rig;
mod transfers;
