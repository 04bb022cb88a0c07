//! Deterministic bucketing of users into variants (reproducible offline, see README
//! "Assignment"): `bucket = u64_be(sha256(salt + ":" + user_id)[0..8]) % 10000`, then the
//! first variant, in order, whose cumulative allocation in basis points exceeds `bucket`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{
    experiment::{Variant, TOTAL_BP},
    rules::Reason,
};

/// The bucket of `user_id` in an experiment with `salt`, in `[0, 10000)`.
pub fn bucket(salt: &str, user_id: &str) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b":");
    hasher.update(user_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(TOTAL_BP)) as u32
}

/// `bucket(salt + ":coverage", user_id)`: independent of [`bucket`], so raising coverage
/// adds users without moving anyone's variant.
pub fn coverage_bucket(salt: &str, user_id: &str) -> u32 {
    bucket(&format!("{salt}:coverage"), user_id)
}

/// 32-bit FNV-1a over UTF-16 code units (as JavaScript's `charCodeAt`, which GrowthBook
/// hashes).
fn fnv32a(s: &str) -> u32 {
    s.encode_utf16().fold(0x811c_9dc5_u32, |h, unit| (h ^ u32::from(unit)).wrapping_mul(0x0100_0193))
}

/// GrowthBook's version 2 hash, in `[0, 1)`: `fnv32a(decimal(fnv32a(seed + id))) % 10000 / 10000`.
pub fn gb_v2(seed: &str, id: &str) -> f64 {
    let inner = fnv32a(&format!("{seed}{id}"));
    f64::from(fnv32a(&inner.to_string()) % 10_000) / 10_000.0
}

/// The variant owning `bucket` under cumulative allocations (they sum to 10000).
pub fn pick(variants: &[Variant], bucket: u32) -> Option<&Variant> {
    let mut upper = 0;
    variants.iter().find(|v| {
        upper += v.allocation_bp;
        bucket < upper
    })
}

/// A user's variant, or why none, as `GET /experiments/{id}/assignment/{user_id}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Assignment {
    pub experiment_id: i64,
    pub user_id: String,
    /// The variant's name; null when the user gets none (see `reason`).
    pub variant: Option<String>,
    /// `assigned` (stored, sticky), `forced` (a QA user, never stored), or why there is no
    /// variant: `not_started`, `ended`, `holdout`, `not_in_layer`, `not_targeted`,
    /// `not_in_traffic`.
    pub reason: Reason,
    /// When the assignment was stored; null without one.
    pub assigned_at: Option<DateTime<Utc>>,
    /// True when this request made the assignment (and wrote the exposure).
    pub new: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_is_the_documented_hash() {
        let digest = Sha256::digest(b"s1:user_A_123");
        let expected = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 10_000;
        assert_eq!(u64::from(bucket("s1", "user_A_123")), expected);
        assert_ne!(
            (0..50).map(|i| bucket("s1", &format!("u{i}"))).collect::<Vec<_>>(),
            (0..50).map(|i| bucket("s2", &format!("u{i}"))).collect::<Vec<_>>(),
            "the salt changes the buckets"
        );
    }

    #[test]
    fn the_growthbook_hash_is_fnv1a_over_utf16() {
        // FNV-1a of "" is the offset basis; of "a" the published 0xe40c292c.
        assert_eq!(fnv32a(""), 0x811c_9dc5);
        assert_eq!(fnv32a("a"), 0xe40c_292c);
        assert!((0.0..1.0).contains(&gb_v2("seed", "user")));
        assert_ne!(gb_v2("", "😀"), gb_v2("", "😁"));
    }

    #[test]
    fn pick_follows_cumulative_allocations() {
        let vs = Variant::test_set(&[2000, 5000, 3000]);
        for (bucket, id) in [(0, 0), (1999, 0), (2000, 1), (6999, 1), (7000, 2), (9999, 2)] {
            assert_eq!(pick(&vs, bucket).map(|v| v.id), Some(id), "bucket {bucket}");
        }
    }

    #[test]
    fn buckets_are_uniform_enough_to_honour_allocations() {
        let vs = Variant::test_set(&[2000, 8000]);
        let n = 100_000;
        let first = (0..n).filter(|i| pick(&vs, bucket("salt", &format!("user-{i}"))).map(|v| v.id) == Some(0)).count();
        // 20 % of 100k: sd = 126; 5 sd either side.
        assert!((19_370..=20_630).contains(&first), "{first}");
    }
}
