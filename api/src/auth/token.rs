//! API tokens: 8 random bytes of id and 32 random bytes of secret, shown to their holder once as
//! `agt_<id as 16 hex digits>_<secret as 43 base64url characters>`, and stored only as the
//! SHA-256 of a domain-separated secret. The id finds the record with one point read; the
//! secret's hash is compared in constant time.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// What every token starts with (so a leaked token is recognisable by secret scanners).
pub const TOKEN_PREFIX: &str = "agt_";
/// Length of a formatted token: prefix, 16 hex digits, `_`, 43 base64url characters.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 16 + 1 + 43;
/// Domain separation of the stored hash.
const HASH_DOMAIN: &[u8] = b"agritrace/api-token/v1\0";

/// The public part of a token: names its record, safe to log and to show in lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenId(pub [u8; 8]);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Why a token id or a token does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// Not 16 lowercase hex digits.
    #[error("a token id is 16 lowercase hex digits")]
    Id,
    /// Not `agt_<16 hex>_<43 base64url>`.
    #[error("not an agritrace API token (agt_<id>_<secret>)")]
    Token,
}

impl FromStr for TokenId {
    type Err = TokenFormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = text.as_bytes();
        if bytes.len() != 16 {
            return Err(TokenFormatError::Id);
        }
        let mut id = [0u8; 8];
        for (i, byte) in id.iter_mut().enumerate() {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                _ => None,
            };
            let (high, low) = (digit(bytes[2 * i]), digit(bytes[2 * i + 1]));
            *byte = (high.ok_or(TokenFormatError::Id)? << 4) | low.ok_or(TokenFormatError::Id)?;
        }
        Ok(Self(id))
    }
}

/// A whole token, as its holder presents it. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The public id.
    pub id: TokenId,
    secret: [u8; 32],
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}, secret hidden)", self.id)
    }
}

impl ApiToken {
    /// A new token from the operating system's random generator.
    ///
    /// # Errors
    /// If the system has no randomness to give.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 40];
        getrandom::fill(&mut bytes)?;
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        id.copy_from_slice(&bytes[..8]);
        secret.copy_from_slice(&bytes[8..]);
        Ok(Self {
            id: TokenId(id),
            secret,
        })
    }

    /// The token from its parts (tests, and parsing).
    #[must_use]
    pub fn from_parts(id: TokenId, secret: [u8; 32]) -> Self {
        Self { id, secret }
    }

    /// What is stored: SHA-256 over the domain and the secret.
    #[must_use]
    pub fn secret_hash(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(HASH_DOMAIN);
        hasher.update(self.secret);
        hasher.finalize().into()
    }

    /// Whether this token's secret hashes to `stored`, compared in constant time.
    #[must_use]
    pub fn matches(&self, stored: &[u8; 32]) -> bool {
        let hash = self.secret_hash();
        let mut difference = 0u8;
        for (a, b) in hash.iter().zip(stored) {
            difference |= a ^ b;
        }
        difference == 0
    }

    /// The token as shown once to its holder.
    #[must_use]
    pub fn reveal(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}_{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.secret)
        )
    }
}

impl FromStr for ApiToken {
    type Err = TokenFormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != TOKEN_LEN {
            return Err(TokenFormatError::Token);
        }
        let rest = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenFormatError::Token)?;
        let (id, secret) = rest.split_once('_').ok_or(TokenFormatError::Token)?;
        let id: TokenId = id.parse().map_err(|_| TokenFormatError::Token)?;
        let decoded = URL_SAFE_NO_PAD
            .decode(secret)
            .map_err(|_| TokenFormatError::Token)?;
        let secret: [u8; 32] = decoded.try_into().map_err(|_| TokenFormatError::Token)?;
        // Only the canonical encoding: re-encoding must give the same text.
        let token = Self { id, secret };
        if token.reveal() != text {
            return Err(TokenFormatError::Token);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_only_its_secret_matches() {
        let token = ApiToken::generate().expect("randomness");
        let text = token.reveal();
        assert_eq!(text.len(), TOKEN_LEN);
        let parsed: ApiToken = text.parse().expect("parses");
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash()));
        let other = ApiToken::from_parts(token.id, [7; 32]);
        assert!(!other.matches(&token.secret_hash()));
        assert!(!format!("{token:?}").contains(&text[21..]));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = ApiToken::from_parts(TokenId([1; 8]), [2; 32]).reveal();
        let mut cases = vec![
            String::new(),
            good[1..].to_owned(),
            good.replace("agt_", "agx_"),
            good.to_uppercase(),
            format!("{good}x"),
            good.replacen('_', "-", 2),
        ];
        // A non-canonical last base64 character (unused bits set).
        let mut chars: Vec<char> = good.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'B' { 'C' } else { 'B' };
        cases.push(chars.into_iter().collect());
        for case in cases {
            assert_eq!(
                case.parse::<ApiToken>(),
                Err(TokenFormatError::Token),
                "{case:?}"
            );
        }
    }

    #[test]
    fn token_ids_parse_strictly() {
        assert_eq!(
            "0102030405060708".parse::<TokenId>(),
            Ok(TokenId([1, 2, 3, 4, 5, 6, 7, 8]))
        );
        for bad in [
            "010203040506070",
            "01020304050607080",
            "010203040506070G",
            "0102030405060A08",
        ] {
            assert_eq!(bad.parse::<TokenId>(), Err(TokenFormatError::Id), "{bad}");
        }
    }
}
