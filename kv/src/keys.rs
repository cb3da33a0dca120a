//! Raw engine keys: the one enum every persisted key of this crate goes through.
//!
//! The layout is drawn in the keyspace map of [`crate::keycode`]. Each variant owns one
//! leading tag byte, so the families never interleave, and helpers here give the
//! bounds of each family for scans. MVCC version keys store `!version` so that, for one
//! user key, the newest version sorts first and "newest version `<= at`" is one seek to
//! `Version(user_key, at)`.

use crate::error::{Error, Result};
use crate::keycode::{self, Decoder};
use crate::Version;

const META: u8 = b'm';
const PROTOCOL: u8 = b'p';
const SHARD: u8 = b's';
const VERSION: u8 = b'v';

/// A raw engine key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    /// Node metadata entry, by name.
    Meta(&'a str),
    /// Durable state of the cross-DC commit protocol, by slot.
    Protocol(&'a [u8]),
    /// Shard descriptor, by shard id.
    Shard(u64),
    /// One committed version of a user key.
    Version(&'a [u8], Version),
}

impl Key<'_> {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Key::Meta(name) => {
                let mut buf = vec![META];
                buf.extend_from_slice(name.as_bytes());
                buf
            }
            Key::Protocol(slot) => {
                let mut buf = vec![PROTOCOL];
                buf.extend_from_slice(slot);
                buf
            }
            Key::Shard(id) => {
                let mut buf = vec![SHARD];
                keycode::encode_u64(&mut buf, *id);
                buf
            }
            Key::Version(user_key, version) => {
                let mut buf = version_run_prefix(user_key);
                keycode::encode_u64(&mut buf, !version);
                buf
            }
        }
    }
}

/// Decodes an MVCC version key into (user key, version).
pub fn decode_version_key(raw: &[u8]) -> Result<(Vec<u8>, Version)> {
    let Some((&VERSION, rest)) = raw.split_first() else {
        return Err(Error::Corruption(format!("not a version key: {raw:02x?}")));
    };
    let mut dec = Decoder::new(rest);
    let user_key = dec.decode_bytes()?;
    let version = !dec.decode_u64()?;
    if !dec.is_empty() {
        return Err(Error::Corruption(format!(
            "trailing bytes in version key: {raw:02x?}"
        )));
    }
    Ok((user_key, version))
}

/// The common prefix of every version key of `user_key` (its "version run").
pub fn version_run_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut buf = vec![VERSION];
    keycode::encode_bytes(&mut buf, user_key);
    buf
}

/// The smallest raw key after every version of `user_key`; the first version key of any
/// greater user key is `>=` it (the bytes encoding is prefix-free).
pub fn version_run_end(user_key: &[u8]) -> Vec<u8> {
    keycode::prefix_end(&version_run_prefix(user_key)).expect("version prefix starts with 'v'")
}

/// Raw range `[start, end)` holding every protocol key.
pub fn protocol_span() -> (Vec<u8>, Vec<u8>) {
    (vec![PROTOCOL], vec![PROTOCOL + 1])
}

/// Raw range `[start, end)` holding every version key.
pub fn version_span() -> (Vec<u8>, Vec<u8>) {
    (vec![VERSION], vec![VERSION + 1])
}

/// Raw range `[start, end)` holding every shard descriptor key.
pub fn shard_span() -> (Vec<u8>, Vec<u8>) {
    (vec![SHARD], vec![SHARD + 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_round_trip_newest_first() {
        let k5 = Key::Version(b"k\x00", 5).encode();
        let k9 = Key::Version(b"k\x00", 9).encode();
        assert!(k9 < k5, "newer versions sort first");
        assert_eq!(decode_version_key(&k5).unwrap(), (b"k\x00".to_vec(), 5));
        assert!(decode_version_key(&Key::Shard(1).encode()).is_err());
    }

    #[test]
    fn version_runs_of_prefix_keys_do_not_interleave() {
        let a_end = version_run_end(b"a");
        for v in [0, 1, u64::MAX] {
            assert!(Key::Version(b"a", v).encode() < a_end);
            assert!(Key::Version(b"a\x00", v).encode() >= a_end);
            assert!(Key::Version(b"ab", v).encode() >= a_end);
            assert!(Key::Version(b"", v).encode() < Key::Version(b"a", u64::MAX).encode());
        }
    }

    #[test]
    fn families_live_in_their_spans() {
        let (vs, ve) = version_span();
        let v = Key::Version(&[0xFF; 4], 0).encode();
        assert!(vs <= v && v < ve);
        let (ss, se) = shard_span();
        let s = Key::Shard(u64::MAX).encode();
        assert!(ss <= s && s < se);
        assert_eq!(Key::Meta("x").encode(), b"mx");
        let (ps, pe) = protocol_span();
        let p = Key::Protocol(&[0xFF; 9]).encode();
        assert!(ps <= p && p < pe && pe <= ss && ve > pe);
    }
}
