//! Helpers shared by the fuzz targets: turning one input byte into a
//! reproducible sequence of read sizes.
//!
//! Owns only the split schedule. It must never look at the bytes being split, so a
//! target's whole-input and split-input runs see exactly the same data.

/// An endless, reproducible sequence of read sizes (each at least 1), chosen by a
/// seed byte: its low two bits pick the largest size (1, 7, 100 or 1500 bytes) and
/// the whole byte seeds a small xorshift generator for the sizes in between.
#[derive(Debug, Clone)]
pub struct Splits {
    state: u32,
    max: u32,
}

impl Splits {
    pub fn new(seed: u8) -> Self {
        let max = match seed & 3 {
            0 => 1,
            1 => 7,
            2 => 100,
            _ => 1500,
        };
        Splits {
            state: u32::from(seed).wrapping_mul(0x9E37_79B9) | 1,
            max,
        }
    }
}

impl Iterator for Splits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.state = x;
        Some(1 + (x % self.max) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_within_the_chosen_maximum_and_vary() {
        for seed in 0..=255u8 {
            let sizes: Vec<usize> = Splits::new(seed).take(200).collect();
            let max = [1, 7, 100, 1500][usize::from(seed & 3)];
            assert!(sizes.iter().all(|&s| (1..=max).contains(&s)), "seed {seed}");
            if max > 1 {
                assert!(sizes.iter().any(|&s| s != sizes[0]), "seed {seed}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sizes() {
        let a: Vec<usize> = Splits::new(42).take(50).collect();
        let b: Vec<usize> = Splits::new(42).take(50).collect();
        assert_eq!(a, b);
    }
}
