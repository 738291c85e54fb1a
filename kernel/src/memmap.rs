//! Free-memory arithmetic on physical ranges: RAM minus reservations, page aligned.
//! Pure logic, host-tested.

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The page-aligned parts of `ram` below `limit` that no range in `reserved` touches, in
/// address order. Returns how many ranges were written to `out` (extra ones are dropped).
pub fn free_ranges(ram: &[Range], reserved: &[Range], limit: u64, out: &mut [Range]) -> usize {
    const PAGE: u64 = 4096;
    let mut count = 0;
    let mut push = |range: Range, out: &mut [Range]| {
        let aligned = Range {
            start: range.start.div_ceil(PAGE) * PAGE,
            end: range.end / PAGE * PAGE,
        };
        if !aligned.is_empty() {
            if let Some(slot) = out.get_mut(count) {
                *slot = aligned;
                count += 1;
            }
        }
    };
    let mut sorted_ram: heapless::Vec<Range, 64> = ram.iter().copied().collect();
    sorted_ram.sort_unstable_by_key(|r| r.start);
    for region in sorted_ram {
        let mut cursor = region.start;
        let end = region.end.min(limit);
        while cursor < end {
            // The reservation that starts first among those overlapping [cursor, end).
            let next = reserved
                .iter()
                .filter(|r| r.end > cursor && r.start < end && !r.is_empty())
                .min_by_key(|r| r.start);
            match next {
                Some(r) => {
                    if r.start > cursor {
                        push(
                            Range {
                                start: cursor,
                                end: r.start,
                            },
                            out,
                        );
                    }
                    cursor = r.end;
                }
                None => {
                    push(Range { start: cursor, end }, out);
                    cursor = end;
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn subtracts_reservations_and_aligns() {
        let ram = [r(0x10_0000, 0x400_0000), r(0, 0x9f000)];
        let reserved = [
            r(0, 0x10_0000),
            r(0x10_0000, 0x12_3456),
            r(0x200_0000, 0x200_0100),
        ];
        let mut out = [r(0, 0); 8];
        let n = free_ranges(&ram, &reserved, u64::MAX, &mut out);
        assert_eq!(
            &out[..n],
            &[r(0x12_4000, 0x200_0000), r(0x200_1000, 0x400_0000)]
        );
    }

    #[test]
    fn clips_at_the_limit_and_drops_overflow() {
        let ram = [r(0, 0x3000), r(0x1_0000_0000, 0x2_0000_0000)];
        let mut out = [r(0, 0); 1];
        assert_eq!(free_ranges(&ram, &[], 0x1_0000_0000, &mut out), 1);
        assert_eq!(out[0], r(0, 0x3000));
        let mut none: [Range; 0] = [];
        assert_eq!(
            free_ranges(&ram, &[r(0, 0x3000)], 0x1_0000_0000, &mut none),
            0
        );
    }
}
