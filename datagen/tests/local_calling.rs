//! The generated local calling table names only rate centres the generated LERG has:
//! the snapshot refuses any other.

use std::collections::HashSet;
use warp_core::model::rate_center_key;
use warp_datagen::{generate, Scale};

#[test]
fn every_local_pair_names_rate_centres_of_lerg_codes() {
    for seed in [1, 7, 11] {
        let d = generate(Scale::SMALL, seed);
        let lerg: HashSet<String> = d
            .lerg
            .iter()
            .map(|b| rate_center_key(&b.state, &b.rate_center))
            .collect();
        assert!(!d.local_calling.is_empty());
        for p in &d.local_calling {
            assert!(
                lerg.contains(&p.a) && lerg.contains(&p.b),
                "seed {seed}: {} - {}",
                p.a,
                p.b
            );
        }
    }
}
