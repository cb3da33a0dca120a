//! Order-preserving key encoding, and the one-page map of Meridian's keyspace.
//!
//! Every value encoded here compares, as raw bytes, in the same order as the value
//! itself, and concatenations of encodings compare like tuples. RocksDB (and the memory
//! engine) order keys bytewise, so a key built from several encoded fields sorts like the
//! tuple of those fields. The SQL layer builds row and index keys with these functions.
//!
//! | type  | encoding |
//! |-------|----------|
//! | `u64`, `u32` | big-endian |
//! | `i64` | big-endian with the sign bit flipped |
//! | `f64` | IEEE bits; positives get the sign bit set, negatives are inverted; `-0.0` is stored as `0.0`, every NaN as one canonical NaN that sorts after `+inf` |
//! | `bool` | `0x00` / `0x01` |
//! | bytes, `str` | `0x00` escaped as `0x00 0xFF`, terminated by `0x00 0x00` |
//!
//! The bytes encoding is prefix-free: no encoding is a prefix of another, and a string
//! that is a prefix of another sorts first (`"ab" < "abc"`, because the terminator
//! `0x00 0x00` is smaller than any escaped or plain byte). Fixed-width encodings are
//! trivially prefix-free, so any tuple of these fields can be followed by more fields.
//!
//! # Keyspace map
//!
//! Raw engine keys (bytes handed to [`crate::engine::Engine`]), built only by
//! [`crate::keys::Key`]:
//!
//! ```text
//! b'm' + name                                   node meta:
//!                                                 "format_version"        u64 BE
//!                                                 "cluster_id"            (owned by the node runtime)
//!                                                 "last_committed_version" u64 BE
//! b'p' + slot key                              the cross-DC commit protocol's durable
//!                                                 state (replication::DurableEntry,
//!                                                 postcard; owned by the node runtime)
//! b's' + u64 shard id                           shard descriptor (JSON ShardDescriptor)
//! b'v' + encode_bytes(user_key) + BE(!version)  MVCC version of user_key; value is
//!                                                 0x00 (tombstone) or 0x01 + row bytes.
//!                                                 `!version` makes the newest sort first.
//! ```
//!
//! User keys (the MVCC level; owned by the planner crate, sharded by [`crate::shard`]):
//!
//! ```text
//! 0x01 'c' + ...                                   SQL catalog           shard 1 = [.., 0x02)
//! 0x02 + u64 table id + u32 index id + key columns table rows (index 0 = primary key)
//!                                                  and secondary index   shard 2 = [0x02, ..)
//!                                                  entries
//! ```
//!
//! # Caveats
//! - `f64` loses the distinction between `-0.0` and `0.0` and between NaN payloads.
//! - Descending index columns are not supported here (invert the bytes if ever needed).

use crate::error::{Error, Result};

/// Appends `v` big-endian.
pub fn encode_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends `v` big-endian.
pub fn encode_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// Appends `v` big-endian with the sign bit flipped, so negatives sort first.
pub fn encode_i64(buf: &mut Vec<u8>, v: i64) {
    encode_u64(buf, (v as u64) ^ SIGN_BIT);
}

/// Appends `v` so that `-inf < negatives < 0 < positives < +inf < NaN`.
/// `-0.0` encodes as `0.0`; every NaN encodes as the canonical NaN.
pub fn encode_f64(buf: &mut Vec<u8>, v: f64) {
    let canonical = if v.is_nan() {
        f64::NAN
    } else if v == 0.0 {
        0.0
    } else {
        v
    };
    let bits = canonical.to_bits();
    let ordered = if bits & SIGN_BIT != 0 {
        !bits
    } else {
        bits | SIGN_BIT
    };
    encode_u64(buf, ordered);
}

/// Appends `0x00` for false, `0x01` for true.
pub fn encode_bool(buf: &mut Vec<u8>, v: bool) {
    buf.push(u8::from(v));
}

/// Appends `v` with `0x00` escaped as `0x00 0xFF`, terminated by `0x00 0x00`.
pub fn encode_bytes(buf: &mut Vec<u8>, v: &[u8]) {
    buf.reserve(v.len() + 2);
    for &b in v {
        buf.push(b);
        if b == 0x00 {
            buf.push(ESCAPED_ZERO);
        }
    }
    buf.extend_from_slice(&TERMINATOR);
}

/// Appends the UTF-8 bytes of `v`, encoded as [`encode_bytes`].
pub fn encode_str(buf: &mut Vec<u8>, v: &str) {
    encode_bytes(buf, v.as_bytes());
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when no
/// such key exists (`prefix` is empty or all `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

const SIGN_BIT: u64 = 1 << 63;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: [u8; 2] = [0x00, 0x00];

/// Reads fields back from an encoded key, front to back. Each `decode_*` consumes one
/// field and fails with [`Error::Corruption`] if the bytes do not hold one.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    buf: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Decoder<'a> {
        Decoder { buf }
    }

    /// The bytes not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn decode_u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take::<8>("u64")?))
    }

    pub fn decode_u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take::<4>("u32")?))
    }

    pub fn decode_i64(&mut self) -> Result<i64> {
        Ok((self.decode_u64()? ^ SIGN_BIT) as i64)
    }

    pub fn decode_f64(&mut self) -> Result<f64> {
        let ordered = self.decode_u64()?;
        let bits = if ordered & SIGN_BIT != 0 {
            ordered & !SIGN_BIT
        } else {
            !ordered
        };
        Ok(f64::from_bits(bits))
    }

    pub fn decode_bool(&mut self) -> Result<bool> {
        match self.take::<1>("bool")?[0] {
            0x00 => Ok(false),
            0x01 => Ok(true),
            b => Err(corrupt(format!("invalid bool byte {b:#04x}"))),
        }
    }

    pub fn decode_bytes(&mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let b = *self
                .buf
                .get(i)
                .ok_or_else(|| corrupt("unterminated bytes"))?;
            if b != 0x00 {
                out.push(b);
                i += 1;
                continue;
            }
            match self.buf.get(i + 1) {
                Some(&ESCAPED_ZERO) => out.push(0x00),
                Some(0x00) => break,
                Some(b) => return Err(corrupt(format!("invalid escape 0x00 {b:#04x}"))),
                None => return Err(corrupt("unterminated bytes")),
            }
            i += 2;
        }
        self.buf = &self.buf[i + TERMINATOR.len()..];
        Ok(out)
    }

    pub fn decode_str(&mut self) -> Result<String> {
        String::from_utf8(self.decode_bytes()?).map_err(|e| corrupt(format!("invalid utf-8: {e}")))
    }

    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        if self.buf.len() < N {
            return Err(corrupt(format!(
                "{what} needs {N} bytes, {} left",
                self.buf.len()
            )));
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        Ok(head.try_into().expect("split_at returned N bytes"))
    }
}

fn corrupt(msg: impl Into<String>) -> Error {
    Error::Corruption(format!("keycode: {}", msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift generator: tests need no extra dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn bytes(&mut self) -> Vec<u8> {
            let len = (self.next() % 6) as usize;
            // A small alphabet makes shared prefixes, zeros and 0xFF common.
            (0..len)
                .map(|_| [0x00, 0x01, 0xFE, 0xFF][(self.next() % 4) as usize])
                .collect()
        }
    }

    fn enc<T: Copy>(f: fn(&mut Vec<u8>, T), v: T) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut buf, v);
        buf
    }

    #[test]
    fn integers_round_trip_and_keep_order() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut values: Vec<i64> = (0..500).map(|_| rng.next() as i64).collect();
        values.extend([i64::MIN, -1, 0, 1, i64::MAX]);
        for &a in &values {
            let ea = enc(encode_i64, a);
            assert_eq!(Decoder::new(&ea).decode_i64().unwrap(), a);
            let ua = a as u64;
            let eu = enc(encode_u64, ua);
            assert_eq!(Decoder::new(&eu).decode_u64().unwrap(), ua);
            let u32a = ua as u32;
            assert_eq!(
                Decoder::new(&enc(encode_u32, u32a)).decode_u32().unwrap(),
                u32a
            );
            for &b in values.iter().take(50) {
                assert_eq!(a.cmp(&b), ea.cmp(&enc(encode_i64, b)), "{a} vs {b}");
                let ub = b as u64;
                assert_eq!(ua.cmp(&ub), eu.cmp(&enc(encode_u64, ub)));
                let u32b = ub as u32;
                assert_eq!(
                    u32a.cmp(&u32b),
                    enc(encode_u32, u32a).cmp(&enc(encode_u32, u32b))
                );
            }
        }
    }

    #[test]
    fn floats_have_a_total_order() {
        let ordered = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.5,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ];
        for pair in ordered.windows(2) {
            assert!(
                enc(encode_f64, pair[0]) < enc(encode_f64, pair[1]),
                "{} < {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(enc(encode_f64, -0.0), enc(encode_f64, 0.0));
        assert_eq!(enc(encode_f64, -f64::NAN), enc(encode_f64, f64::NAN));
        let zero = Decoder::new(&enc(encode_f64, -0.0)).decode_f64().unwrap();
        assert!(zero == 0.0 && zero.is_sign_positive());
        assert!(Decoder::new(&enc(encode_f64, f64::NAN))
            .decode_f64()
            .unwrap()
            .is_nan());

        let mut rng = Rng(42);
        let values: Vec<f64> = (0..300)
            .map(|_| f64::from_bits(rng.next()))
            .filter(|v| !v.is_nan())
            .collect();
        for &a in &values {
            let ea = enc(encode_f64, a);
            assert_eq!(Decoder::new(&ea).decode_f64().unwrap(), a);
            for &b in values.iter().take(50) {
                let expected = a.partial_cmp(&b).unwrap();
                assert_eq!(expected, ea.cmp(&enc(encode_f64, b)), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn bools_round_trip_and_reject_garbage() {
        assert!(enc(encode_bool, false) < enc(encode_bool, true));
        for v in [false, true] {
            assert_eq!(Decoder::new(&enc(encode_bool, v)).decode_bool().unwrap(), v);
        }
        assert!(Decoder::new(&[2]).decode_bool().is_err());
    }

    #[test]
    fn bytes_round_trip_and_keep_order_with_prefixes() {
        let mut rng = Rng(7);
        let values: Vec<Vec<u8>> = (0..400).map(|_| rng.bytes()).collect();
        for a in &values {
            let ea = enc(encode_bytes, a.as_slice());
            let mut dec = Decoder::new(&ea);
            assert_eq!(&dec.decode_bytes().unwrap(), a);
            assert!(dec.is_empty());
            for b in values.iter().take(80) {
                let eb = enc(encode_bytes, b.as_slice());
                assert_eq!(a.cmp(b), ea.cmp(&eb), "{a:?} vs {b:?}");
                if a != b {
                    assert!(!eb.starts_with(&ea), "encoding of {a:?} prefixes {b:?}");
                }
            }
        }
        assert!(enc(encode_str, "ab") < enc(encode_str, "abc"));
        assert!(enc(encode_bytes, b"a".as_slice()) < enc(encode_bytes, b"a\x00".as_slice()));
    }

    #[test]
    fn tuples_sort_field_by_field() {
        let key = |s: &str, n: i64| {
            let mut buf = Vec::new();
            encode_str(&mut buf, s);
            encode_i64(&mut buf, n);
            buf
        };
        assert!(key("a", 9) < key("ab", -9));
        assert!(key("ab", -9) < key("ab", 0));
        let k = key("héllo", -3);
        let mut dec = Decoder::new(&k);
        assert_eq!(dec.decode_str().unwrap(), "héllo");
        assert_eq!(dec.decode_i64().unwrap(), -3);
        assert!(dec.is_empty());
    }

    #[test]
    fn decoder_reports_truncation_and_bad_escapes() {
        assert!(Decoder::new(&[1, 2, 3]).decode_u64().is_err());
        assert!(Decoder::new(b"abc").decode_bytes().is_err());
        assert!(Decoder::new(&[b'a', 0x00]).decode_bytes().is_err());
        assert!(Decoder::new(&[0x00, 0x07]).decode_bytes().is_err());
        assert!(Decoder::new(&[0xC3, 0x28, 0x00, 0x00])
            .decode_str()
            .is_err());
        let mut dec = Decoder::new(&[0, 0, 0, 1, 9]);
        assert_eq!(dec.decode_u32().unwrap(), 1);
        assert_eq!(dec.remaining(), &[9]);
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0x01, 0xFF, 0xFF]), Some(vec![0x02]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
        let end = prefix_end(&[0x02, 0xFF]).unwrap();
        assert!([0x02, 0xFF, 0xFF, 0xFF].as_slice() < end.as_slice());
        assert!(end.as_slice() <= [0x03].as_slice());
    }
}
