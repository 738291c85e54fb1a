//! The switch's frame buffers, all allocated when it is built: many of the ports'
//! frame size (MTU + L2 overhead), and a few that hold a whole 64 KiB GSO frame, so
//! segmentation offload does not make every buffer 64 KiB.

use super::frame::Frame;
use super::gso::MAX_GSO_FRAME;
use alloc::vec::Vec;

/// 64 KiB frame buffers for the whole switch (about 0.5 MiB): a burst of GSO frames
/// larger than this drops at the sender, as a full pool does for small frames.
pub const GSO_FRAMES: usize = 8;

pub struct FramePool {
    small: Vec<Frame>,
    large: Vec<Frame>,
    small_capacity: usize,
}

impl FramePool {
    pub fn new(small: usize, small_capacity: usize, large: usize) -> Self {
        let fill = |count, capacity| {
            let mut frames = Vec::with_capacity(count);
            frames.extend((0..count).map(|_| Frame::with_capacity(capacity)));
            frames
        };
        Self {
            small: fill(small, small_capacity),
            large: fill(large, MAX_GSO_FRAME),
            small_capacity,
        }
    }

    /// The capacity of the small buffers: the largest frame that is not GSO.
    pub fn small_capacity(&self) -> usize {
        self.small_capacity
    }

    /// A free buffer that holds `len` bytes, if one is left.
    pub fn take(&mut self, len: usize) -> Option<Frame> {
        if len <= self.small_capacity {
            self.small.pop()
        } else if len <= MAX_GSO_FRAME {
            self.large.pop()
        } else {
            None
        }
    }

    /// Returns a buffer to the pool it came from.
    pub fn give_back(&mut self, frame: Frame) {
        if frame.capacity() > self.small_capacity {
            self.large.push(frame);
        } else {
            self.small.push(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_comes_from_the_pool_its_length_needs_and_goes_back_to_it() {
        let mut pool = FramePool::new(2, 1518, 1);
        let big = pool.take(1519).unwrap();
        assert_eq!(big.capacity(), MAX_GSO_FRAME);
        assert!(pool.take(MAX_GSO_FRAME).is_none(), "one large frame only");
        assert!(pool.take(MAX_GSO_FRAME + 1).is_none(), "nothing holds more");
        let small = pool.take(1518).unwrap();
        assert_eq!(small.capacity(), 1518);
        assert!(pool.take(60).is_some());
        assert!(
            pool.take(60).is_none(),
            "small frames do not spill into large ones"
        );
        pool.give_back(big);
        pool.give_back(small);
        assert_eq!(pool.take(60).map(|f| f.capacity()), Some(1518));
        assert_eq!(pool.take(2000).map(|f| f.capacity()), Some(MAX_GSO_FRAME));
    }
}
