//! BEP 12 tier ordering, independent of what a tier holds: each tier is
//! shuffled once, tiers are tried in order and the trackers of a tier in
//! order, and a tracker that answers moves to the front of its tier.

use rand::seq::SliceRandom;

/// Where an entry is: (tier, index within the tier).
pub type Position = (usize, usize);

#[derive(Debug, Clone)]
pub struct Tiers<T> {
    tiers: Vec<Vec<T>>,
}

impl<T> Tiers<T> {
    /// Shuffles every tier with `rng`; empty tiers are dropped.
    pub fn new<R: rand::Rng + ?Sized>(tiers: Vec<Vec<T>>, rng: &mut R) -> Tiers<T> {
        let mut t = Tiers::in_order(tiers);
        for tier in &mut t.tiers {
            tier.shuffle(rng);
        }
        t
    }

    /// Keeps the order given; empty tiers are dropped.
    pub fn in_order(tiers: Vec<Vec<T>>) -> Tiers<T> {
        Tiers {
            tiers: tiers.into_iter().filter(|t| !t.is_empty()).collect(),
        }
    }

    /// The positions in the order to try them.
    pub fn order(&self) -> Vec<Position> {
        self.tiers
            .iter()
            .enumerate()
            .flat_map(|(t, tier)| (0..tier.len()).map(move |i| (t, i)))
            .collect()
    }

    pub fn get(&self, pos: Position) -> &T {
        &self.tiers[pos.0][pos.1]
    }

    pub fn get_mut(&mut self, pos: Position) -> &mut T {
        &mut self.tiers[pos.0][pos.1]
    }

    /// Moves the entry at `pos` to the front of its tier (it answered).
    pub fn promote(&mut self, pos: Position) {
        let tier = &mut self.tiers[pos.0];
        let entry = tier.remove(pos.1);
        tier.insert(0, entry);
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.tiers.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.tiers.iter_mut().flatten()
    }

    pub fn tiers(&self) -> &[Vec<T>] {
        &self.tiers
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn promotion_moves_to_front_of_its_tier_only() {
        let mut t = Tiers::in_order(vec![vec!["a", "b", "c"], vec![], vec!["d", "e"]]);
        assert_eq!(t.order(), vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
        t.promote((0, 2));
        assert_eq!(t.tiers(), &[vec!["c", "a", "b"], vec!["d", "e"]]);
        t.promote((1, 1));
        assert_eq!(t.tiers(), &[vec!["c", "a", "b"], vec!["e", "d"]]);
        t.promote((0, 0));
        assert_eq!(t.tiers()[0], vec!["c", "a", "b"]);
        assert_eq!(*t.get((0, 1)), "a");
        assert_eq!(
            t.iter().copied().collect::<Vec<_>>(),
            ["c", "a", "b", "e", "d"]
        );
    }

    #[test]
    fn shuffles_within_tiers_only() {
        let tiers: Vec<Vec<u32>> = vec![(0..10).collect(), (10..20).collect()];
        let mut seen_other_order = false;
        for seed in 0..20 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let t = Tiers::new(tiers.clone(), &mut rng);
            let mut first = t.tiers()[0].clone();
            let mut second = t.tiers()[1].clone();
            seen_other_order |= first != tiers[0];
            first.sort();
            second.sort();
            assert_eq!(first, tiers[0]);
            assert_eq!(second, tiers[1]);
        }
        assert!(seen_other_order);
        // The same seed gives the same order.
        let a = Tiers::new(tiers.clone(), &mut rand::rngs::StdRng::seed_from_u64(5));
        let b = Tiers::new(tiers, &mut rand::rngs::StdRng::seed_from_u64(5));
        assert_eq!(a.tiers(), b.tiers());
    }
}
