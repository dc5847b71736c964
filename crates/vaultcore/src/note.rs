//! The journal's checkpoint as a C2SP signed note (tlog-checkpoint): the same bytes as
//! `vaultd/journal/checkpoint.py` writes, which parses and verifies them.
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root>\n
//! \n
//! — <key name> <base64(key id || signature)>\n
//! ```
//!
//! The signature is over the body (the first three lines). The store writer signs one per group
//! commit: made here in one call with the head's check and signature, where Python took as long
//! again as the signature itself to lay out the same lines.

use crate::error::Error;
use base64ct::{Base64, Encoding};

const DASH: &str = "\u{2014} ";
/// A line of a note is at most this long (as `checkpoint.py` bounds the origin).
const MAX_LINE: usize = 1024;

/// The body of the checkpoint of a tree of `size` leaves with root `root`.
pub fn body(origin: &str, size: u64, root: &[u8; 32]) -> Result<String, Error> {
    if origin.is_empty() || origin.len() > MAX_LINE || origin.contains('\n') {
        return Err(Error::invalid("checkpoint origin: one non-empty line"));
    }
    Ok(format!("{origin}\n{size}\n{}\n", Base64::encode_string(root)))
}

/// The signed note: `body`, a blank line and one signature line by the key `key_name` (`key_id`:
/// its 4-byte id) with `signature` over `body`.
pub fn signed(body: &str, key_name: &str, key_id: &[u8], signature: &[u8]) -> Result<Vec<u8>, Error> {
    if key_name.is_empty() || key_name.len() > 256 || key_name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(Error::invalid("note key name: 1..256 characters, no spaces and no '+'"));
    }
    let mut blob = Vec::with_capacity(key_id.len() + signature.len());
    blob.extend_from_slice(key_id);
    blob.extend_from_slice(signature);
    Ok(format!("{body}\n{DASH}{key_name} {}\n", Base64::encode_string(&blob)).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let b = body("vaultd/test", 7, &[0u8; 32]).unwrap();
        assert_eq!(b, "vaultd/test\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
        let n = signed(&b, "vaultd/test", &[1, 2, 3, 4], &[0xff; 3]).unwrap();
        assert_eq!(n, format!("{b}\n\u{2014} vaultd/test AQIDBP///w==\n").into_bytes());
        assert!(body("a\nb", 1, &[0; 32]).is_err());
        assert!(body("", 1, &[0; 32]).is_err());
        assert!(signed(&b, "a b", &[0; 4], &[0; 64]).is_err());
    }
}
