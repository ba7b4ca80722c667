//! Percent-encoding of AI values in GS1 Digital Link URIs (RFC 3986 §2.1 and §2.3; GS1 Digital
//! Link URI syntax 1.2: every character of set 82 other than the RFC 3986 unreserved ones
//! is percent-encoded, e.g. `/` as `%2F`, `&` as `%26`, `+` as `%2B`).
//!
//! Encoding is canonical: exactly the characters outside `A-Z a-z 0-9 - . _ ~` are encoded,
//! with upper-case hex digits (RFC 3986 §6.2.2.1). Decoding is lenient about what a client may
//! leave unencoded (any RFC 3986 `pchar`) but refuses malformed escapes, raw characters that a
//! URI cannot carry, and bytes that are not UTF-8. `+` is a plus sign, never a space: the
//! query of a Digital Link is not `application/x-www-form-urlencoded`.

/// Which part of a URI a raw string came from; decides which raw characters are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// A path segment (RFC 3986 `segment`: `pchar`s).
    PathSegment,
    /// A query parameter name or value, already split on `&` and `=` (RFC 3986 `query`:
    /// `pchar`s, `/` and `?`).
    Query,
}

/// Why a raw URI component does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PercentError {
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape at byte {position}: '%' must be followed by two hex digits")]
    BadEscape {
        /// Byte offset of the `%`, counted from 1.
        position: usize,
    },
    /// A raw character a URI cannot carry there (space, `"`, `<`, non-ASCII, ...).
    #[error("{found:?} at byte {position} must be percent-encoded")]
    RawChar {
        /// The character.
        found: char,
        /// Byte offset, counted from 1.
        position: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("percent-decoded bytes are not UTF-8")]
    NotUtf8,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

fn allowed_raw(b: u8, component: Component) -> bool {
    let pchar = is_unreserved(b) || is_sub_delim(b) || b == b':' || b == b'@';
    match component {
        Component::PathSegment => pchar,
        Component::Query => pchar || b == b'/' || b == b'?',
    }
}

/// Percent-encodes `value` for a Digital Link path segment or query value: every byte outside
/// the RFC 3986 unreserved set becomes `%XX` (upper-case hex).
pub fn encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if is_unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a raw URI component.
pub fn decode(raw: &str, component: Component) -> Result<String, PercentError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(PercentError::BadEscape { position: i + 1 }),
            }
            i += 3;
        } else if allowed_raw(b, component) {
            out.push(b);
            i += 1;
        } else {
            let found = raw
                .get(i..)
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{fffd}');
            return Err(PercentError::RawChar {
                found,
                position: i + 1,
            });
        }
    }
    String::from_utf8(out).map_err(|_| PercentError::NotUtf8)
}

#[cfg(test)]
mod tests {
    //! Known answers: the GS1 Digital Link toolkit's example lot `ABC&+123`, which the
    //! standard's tools write as `ABC%26%2B123`, and RFC 3986 §2.

    use super::*;

    #[test]
    fn encode_escapes_everything_but_unreserved() {
        assert_eq!(encode("ABC&+123"), "ABC%26%2B123");
        assert_eq!(encode("XYZ/987"), "XYZ%2F987");
        assert_eq!(encode("a-b.c_d"), "a-b.c_d");
        assert_eq!(
            encode("!\"%'()*,:;<=>?"),
            "%21%22%25%27%28%29%2A%2C%3A%3B%3C%3D%3E%3F"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn decode_accepts_escapes_and_raw_pchars() {
        assert_eq!(
            decode("ABC%26%2B123", Component::PathSegment),
            Ok("ABC&+123".to_owned())
        );
        assert_eq!(
            decode("abc%2f", Component::PathSegment),
            Ok("abc/".to_owned())
        );
        assert_eq!(decode("A+B", Component::Query), Ok("A+B".to_owned()));
        assert_eq!(decode("a/b?c", Component::Query), Ok("a/b?c".to_owned()));
        assert_eq!(
            decode("(x)*'!", Component::PathSegment),
            Ok("(x)*'!".to_owned())
        );
    }

    #[test]
    fn decode_refuses_what_a_uri_cannot_carry() {
        assert_eq!(
            decode("AB%2", Component::PathSegment),
            Err(PercentError::BadEscape { position: 3 })
        );
        assert_eq!(
            decode("%G1", Component::PathSegment),
            Err(PercentError::BadEscape { position: 1 })
        );
        assert_eq!(
            decode("a b", Component::Query),
            Err(PercentError::RawChar {
                found: ' ',
                position: 2
            })
        );
        assert_eq!(
            decode("a/b", Component::PathSegment),
            Err(PercentError::RawChar {
                found: '/',
                position: 2
            })
        );
        assert_eq!(
            decode("é", Component::PathSegment),
            Err(PercentError::RawChar {
                found: 'é',
                position: 1
            })
        );
        assert_eq!(
            decode("%FF", Component::PathSegment),
            Err(PercentError::NotUtf8)
        );
    }
}
