//! The canonical version-1 encoding of a journal leaf (the layout is documented in
//! `vaultd/journal/leaf.py`, which also holds the reference encoder and the decoder).
//!
//! Every deposit makes one leaf on a gRPC thread with the GIL held; the Python encoder's field checks
//! and concatenations cost about 10 us there, this one about 1. It accepts exactly what the Python
//! encoder accepts and writes the same bytes (the tests compare them); on any field it refuses it
//! answers `None`, and the caller runs the Python encoder, which names the field.

/// One leaf's fields, borrowed.
pub struct Fields<'a> {
    pub operation: &'a str,
    pub vault: &'a str,
    pub name: &'a str,
    pub version: u64,
    pub sha256: &'a [u8],
    pub actor_kind: &'a str,
    pub actor_name: &'a str,
    pub kiosk: &'a str,
    pub time_ns: u64,
    pub outcome: &'a str,
    /// Sorted, unique keys.
    pub extra: &'a [(&'a str, &'a [u8])],
}

pub const VERSION: u8 = 1;
const MAX_EXTRA: usize = 32;
const MAX_EXTRA_VALUE: usize = 4096;

/// `[a-z][a-z0-9_.-]{0,31}`
fn token(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_lowercase()
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

/// At most `limit` bytes of UTF-8 without control characters (U+0000..U+001F, U+007F). A `&str` is
/// valid UTF-8, and the bytes of a multi-byte character are all >= 0x80, so a byte test is exact.
fn text(s: &str, limit: usize) -> bool {
    s.len() <= limit && s.bytes().all(|c| c >= 0x20 && c != 0x7f)
}

/// `[a-z0-9_.-]{1,64}`
fn extra_key(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-'))
}

/// The leaf's canonical bytes, or `None` when a field is not valid.
pub fn encode(f: &Fields<'_>) -> Option<Vec<u8>> {
    if !token(f.operation) || !token(f.outcome) {
        return None;
    }
    if !text(f.vault, 128) || !text(f.name, 1024) || !text(f.actor_kind, 16) || !text(f.actor_name, 256) || !text(f.kiosk, 256) {
        return None;
    }
    if !(f.sha256.is_empty() || f.sha256.len() == 32) || f.extra.len() > MAX_EXTRA {
        return None;
    }
    let mut previous: Option<&str> = None;
    for (k, v) in f.extra {
        if !extra_key(k) || v.len() > MAX_EXTRA_VALUE || previous.is_some_and(|p| *k <= p) {
            return None;
        }
        previous = Some(k);
    }
    let extra_len: usize = f.extra.iter().map(|(k, v)| 3 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(
        1 + 1 + f.operation.len() + 2 + f.vault.len() + 2 + f.name.len() + 8 + 1 + f.sha256.len() + 1 + f.actor_kind.len()
            + 2 + f.actor_name.len() + 2 + f.kiosk.len() + 8 + 1 + f.outcome.len() + 1 + extra_len,
    );
    out.push(VERSION);
    str8(&mut out, f.operation);
    str16(&mut out, f.vault.as_bytes());
    str16(&mut out, f.name.as_bytes());
    out.extend_from_slice(&f.version.to_be_bytes());
    out.push(f.sha256.len() as u8);
    out.extend_from_slice(f.sha256);
    str8(&mut out, f.actor_kind);
    str16(&mut out, f.actor_name.as_bytes());
    str16(&mut out, f.kiosk.as_bytes());
    out.extend_from_slice(&f.time_ns.to_be_bytes());
    str8(&mut out, f.outcome);
    out.push(f.extra.len() as u8);
    for (k, v) in f.extra {
        str8(&mut out, k);
        str16(&mut out, v);
    }
    Some(out)
}

fn str8(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8); // every str8 field is checked to be at most 64 bytes
    out.extend_from_slice(s.as_bytes());
}

fn str16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes()); // at most 4096 bytes, checked
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>() -> Fields<'a> {
        Fields {
            operation: "deposit",
            vault: "permits",
            name: "doc",
            version: 7,
            sha256: &[0xab; 32],
            actor_kind: "service",
            actor_name: "permits",
            kiosk: "",
            time_ns: 1_700_000_000_000_000_000,
            outcome: "ok",
            extra: &[],
        }
    }

    #[test]
    fn layout() {
        let extra: [(&str, &[u8]); 2] = [("a", b"x"), ("size", b"12")];
        let f = Fields { extra: &extra, ..base() };
        let got = encode(&f).unwrap();
        let mut want = vec![1, 7];
        want.extend_from_slice(b"deposit");
        want.extend_from_slice(&[0, 7]);
        want.extend_from_slice(b"permits");
        want.extend_from_slice(&[0, 3]);
        want.extend_from_slice(b"doc");
        want.extend_from_slice(&7u64.to_be_bytes());
        want.push(32);
        want.extend_from_slice(&[0xab; 32]);
        want.push(7);
        want.extend_from_slice(b"service");
        want.extend_from_slice(&[0, 7]);
        want.extend_from_slice(b"permits");
        want.extend_from_slice(&[0, 0]);
        want.extend_from_slice(&1_700_000_000_000_000_000u64.to_be_bytes());
        want.extend_from_slice(&[2, b'o', b'k', 2, 1, b'a', 0, 1, b'x', 4]);
        want.extend_from_slice(b"size");
        want.extend_from_slice(&[0, 2, b'1', b'2']);
        assert_eq!(got, want);
    }

    #[test]
    fn refusals() {
        let long_name = "n".repeat(1025);
        let unsorted: [(&str, &[u8]); 2] = [("b", b""), ("a", b"")];
        let twice: [(&str, &[u8]); 2] = [("a", b""), ("a", b"")];
        let big = vec![0u8; 4097];
        let big_value: [(&str, &[u8]); 1] = [("a", &big)];
        let bad_key: [(&str, &[u8]); 1] = [("A", b"")];
        let cases = [
            Fields { operation: "Deposit", ..base() },
            Fields { operation: "", ..base() },
            Fields { outcome: "o k", ..base() },
            Fields { name: &long_name, ..base() },
            Fields { vault: "a\nb", ..base() },
            Fields { actor_name: "x\u{7f}", ..base() },
            Fields { sha256: &[1; 31], ..base() },
            Fields { extra: &unsorted, ..base() },
            Fields { extra: &twice, ..base() },
            Fields { extra: &big_value, ..base() },
            Fields { extra: &bad_key, ..base() },
        ];
        for f in &cases {
            assert!(encode(f).is_none());
        }
        assert!(encode(&Fields { name: "été", sha256: &[], ..base() }).is_some());
    }
}
