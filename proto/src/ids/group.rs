//! A group's identifier: the MLS group id (RFC 9420 section 8.1,
//! `GroupContext.group_id`), chosen by the group's creator and the key under
//! which the relay keeps the group's log, members and GroupInfo.

use std::borrow::Borrow;

use super::{IdError, MAX_GROUP_ID_LEN};

/// A group id: 1 to [`MAX_GROUP_ID_LEN`] bytes, checked when it is made, so
/// that a value of this type is always one the relay accepts. Public (the
/// relay sees it in every MLS frame); `Display` is the whole id in
/// lowercase hex, the form people and scripts pass back (`FromStr` reads
/// it).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(Vec<u8>);

impl GroupId {
    /// Reads a group id from a wire field.
    ///
    /// # Errors
    /// [`IdError::BadLength`] when `bytes` is empty or longer than
    /// [`MAX_GROUP_ID_LEN`].
    pub fn from_field(bytes: &[u8]) -> Result<Self, IdError> {
        GroupId::try_from(bytes.to_vec())
    }

    /// A group id this crate derived itself, of a length known to be valid.
    pub(crate) fn derived(bytes: Vec<u8>) -> Self {
        debug_assert!(!bytes.is_empty() && bytes.len() <= MAX_GROUP_ID_LEN);
        GroupId(bytes)
    }

    /// The id's bytes, as the wire and MLS carry them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The whole id in lowercase hex, as the CLI and `--json` show it.
    pub fn to_hex(&self) -> String {
        super::hex(&self.0)
    }
}

impl TryFrom<Vec<u8>> for GroupId {
    type Error = IdError;

    fn try_from(bytes: Vec<u8>) -> Result<Self, IdError> {
        if bytes.is_empty() || bytes.len() > MAX_GROUP_ID_LEN {
            return Err(IdError::BadLength {
                field: "group_id",
                max: MAX_GROUP_ID_LEN,
                actual: bytes.len(),
            });
        }
        Ok(GroupId(bytes))
    }
}

impl TryFrom<&[u8]> for GroupId {
    type Error = IdError;

    fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
        GroupId::from_field(bytes)
    }
}

/// A group id of 16 bytes: the length of a random cohort or network id,
/// always a valid one.
impl From<[u8; 16]> for GroupId {
    fn from(bytes: [u8; 16]) -> Self {
        GroupId(bytes.to_vec())
    }
}

impl From<GroupId> for Vec<u8> {
    fn from(id: GroupId) -> Vec<u8> {
        id.0
    }
}

impl From<GroupId> for bytes::Bytes {
    fn from(id: GroupId) -> bytes::Bytes {
        bytes::Bytes::from(id.0)
    }
}

impl std::ops::Deref for GroupId {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for GroupId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Lets maps keyed by `GroupId` be searched with a wire field's bytes
/// (`Vec<u8>` and `[u8]` hash alike).
impl Borrow<[u8]> for GroupId {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq<[u8]> for GroupId {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<&[u8]> for GroupId {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Vec<u8>> for GroupId {
    fn eq(&self, other: &Vec<u8>) -> bool {
        &self.0 == other
    }
}

impl PartialEq<GroupId> for Vec<u8> {
    fn eq(&self, other: &GroupId) -> bool {
        self == &other.0
    }
}

impl PartialEq<GroupId> for [u8] {
    fn eq(&self, other: &GroupId) -> bool {
        self == other.0.as_slice()
    }
}

impl PartialEq<GroupId> for &[u8] {
    fn eq(&self, other: &GroupId) -> bool {
        *self == other.0.as_slice()
    }
}

impl std::fmt::Debug for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupId({})", self.to_hex())
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for GroupId {
    type Err = IdError;

    /// Reads a group id written in hex (either case).
    fn from_str(text: &str) -> Result<Self, IdError> {
        let not_hex = || IdError::NotHex { field: "group_id" };
        if text.len() % 2 != 0 {
            return Err(not_hex());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|at| {
                text.get(at..at + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(not_hex)
            })
            .collect::<Result<Vec<u8>, IdError>>()?;
        GroupId::try_from(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_id_is_one_to_sixty_four_bytes() {
        assert!(GroupId::from_field(&[]).is_err());
        assert!(GroupId::from_field(&[7; MAX_GROUP_ID_LEN + 1]).is_err());
        let id = GroupId::from_field(&[7; MAX_GROUP_ID_LEN]).unwrap();
        assert_eq!(id.as_bytes(), &[7; MAX_GROUP_ID_LEN][..]);
    }

    #[test]
    fn a_map_keyed_by_group_id_is_searched_by_bytes() {
        let id = GroupId::from_field(b"cohort").unwrap();
        let map = std::collections::HashMap::from([(id.clone(), 1)]);
        assert_eq!(map.get(&b"cohort"[..]), Some(&1));
        assert_eq!(format!("{id:?}"), "GroupId(636f686f7274)");
    }

    #[test]
    fn a_group_id_reads_back_from_its_hex() {
        let id = GroupId::from_field(&[0, 1, 0xab, 0xff]).unwrap();
        assert_eq!(id.to_string(), "0001abff");
        assert_eq!("0001ABFF".parse::<GroupId>(), Ok(id));
        assert!("xyz".parse::<GroupId>().is_err());
        assert!("abc".parse::<GroupId>().is_err());
        assert!("".parse::<GroupId>().is_err());
        assert!("é0".parse::<GroupId>().is_err());
    }
}
