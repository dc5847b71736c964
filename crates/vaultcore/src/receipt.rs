//! The canonical receipt JSON of journal leaves, many at a time under one signed checkpoint.
//!
//! A receipt is `{"checkpoint":…,"format":…,"inclusion_proof":[…],"kind":…,"leaf":…,"leaf_index":…,
//! "tree_size":…,"version":…}` with its keys sorted, no spaces and base64 (standard alphabet, padded)
//! for bytes: the bytes `vaultd.journal.receipt.make_receipt` gives. The part the batch shares is made
//! once (`shared_parts`: `prefix` up to the opening bracket of the proof list, `suffix` from
//! `tree_size` on); `encode_batch` proves each leaf from the in-memory tree, checks that proof against
//! the signed root before it writes it, and assembles the rest.

use crate::merkle::{leaf_hash, verify_inclusion, Extension, Hash};
use base64ct::{Base64, Encoding};

/// `s` as a JSON string the way Python's `json.dumps` writes it by default (`ensure_ascii`): `"` and
/// `\\` escaped, `\n` `\r` `\t` `\b` `\f` by name, other control characters and every non-ASCII
/// character as `\uxxxx` (lowercase hex; UTF-16 surrogate pairs above U+FFFF).
pub fn json_string(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{:04x}", u);
                }
            }
        }
    }
    out.push('"');
}

/// The parts of every receipt under one signed checkpoint (`note`) of a tree of `size` leaves that
/// `encode_batch` puts around each: everything before the proof hashes, and from `tree_size` on.
pub fn shared_parts(note: &str, format: &str, version: u32, size: u64) -> (String, String) {
    let mut prefix = String::with_capacity(note.len() + 64);
    prefix.push_str("{\"checkpoint\":");
    json_string(note, &mut prefix);
    prefix.push_str(",\"format\":");
    json_string(format, &mut prefix);
    prefix.push_str(",\"inclusion_proof\":[");
    (prefix, format!(",\"tree_size\":{size},\"version\":{version}}}"))
}

/// One leaf to give a receipt: its kind (a token the caller has validated: it is written as is), its
/// index in the tree and its bytes as appended.
pub struct Item<'a> {
    pub kind: &'a str,
    pub index: u64,
    pub leaf: &'a [u8],
}

/// The receipt of each item under the tree `ext` whose signed root is `root`; None for an item whose
/// proof cannot be made from memory (outside the extension) or does not lead to `root` (the caller
/// reports that as an integrity failure).
pub fn encode_batch(ext: &Extension, root: &Hash, prefix: &str, suffix: &str, items: &[Item<'_>]) -> Vec<Option<Vec<u8>>> {
    items
        .iter()
        .map(|it| {
            let proof = ext.inclusion_proof(it.index)?;
            let refs: Vec<&[u8]> = proof.iter().map(|h| &h[..]).collect();
            if !verify_inclusion(&leaf_hash(it.leaf), it.index, ext.size(), &refs, root) {
                return None;
            }
            let mut out = String::with_capacity(prefix.len() + suffix.len() + proof.len() * 47 + it.leaf.len() * 4 / 3 + 64);
            out.push_str(prefix);
            for (i, h) in proof.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(&Base64::encode_string(h));
                out.push('"');
            }
            out.push_str("],\"kind\":\"");
            out.push_str(it.kind);
            out.push_str("\",\"leaf\":\"");
            out.push_str(&Base64::encode_string(it.leaf));
            out.push_str("\",\"leaf_index\":");
            out.push_str(&it.index.to_string());
            out.push_str(suffix);
            Some(out.into_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_as_python_writes_them() {
        // json.dumps('a"b\\c\n\t\b\f\x01\x7f é — 𝄞 ~') in Python
        let mut out = String::new();
        json_string("a\"b\\c\n\t\u{8}\u{c}\u{1}\u{7f} é — 𝄞 ~", &mut out);
        assert_eq!(out, r#""a\"b\\c\n\t\b\f\u0001\u007f \u00e9 \u2014 \ud834\udd1e ~""#);
        let (prefix, suffix) = shared_parts("o\n1\n", "vaultd.receipt", 1, 9);
        assert_eq!(prefix, r#"{"checkpoint":"o\n1\n","format":"vaultd.receipt","inclusion_proof":["#);
        assert_eq!(suffix, r#","tree_size":9,"version":1}"#);
    }

    use crate::merkle::{frontier_ranges, root, Tree};

    #[test]
    fn receipts_carry_proofs_that_verify_and_refuse_a_wrong_root() {
        let data: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 3]).collect();
        let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let t = Tree::from_leaves(&leaves);
        let frontier: Vec<_> = frontier_ranges(5).into_iter().map(|r| (r, root(&leaves[r.0 as usize..r.1 as usize]))).collect();
        let ext = Extension::new(&frontier, 5, &leaves[5..]).unwrap();
        let r = t.root(9).unwrap();
        let items = [Item { kind: "deposit", index: 6, leaf: &data[6] }, Item { kind: "event", index: 2, leaf: &data[2] }];
        let out = encode_batch(&ext, &r, "{\"p\":[", ",\"tree_size\":9}", &items);
        let proof: Vec<String> = t.inclusion_proof(6, 9).unwrap().iter().map(|h| format!("\"{}\"", Base64::encode_string(h))).collect();
        let want = format!("{{\"p\":[{}],\"kind\":\"deposit\",\"leaf\":\"BgYG\",\"leaf_index\":6,\"tree_size\":9}}", proof.join(","));
        assert_eq!(String::from_utf8(out[0].clone().unwrap()).unwrap(), want);
        assert!(out[1].is_none(), "a leaf of the earlier tree has no proof in memory");
        let wrong = [Item { kind: "deposit", index: 6, leaf: &data[7] }];
        assert!(encode_batch(&ext, &r, "", "", &wrong)[0].is_none(), "other bytes at that index");
        assert!(encode_batch(&ext, &[0u8; 32], "", "", &items[..1])[0].is_none(), "another root");
    }
}
