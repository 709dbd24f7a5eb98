//! A user's id: the handle staff give a person at enrolment, the same on
//! all of their devices, and what certificates, KeyPackages, inbox shares
//! and quotas are counted by.

use std::borrow::Borrow;

use super::{check_user_id, IdError};

/// A user id, checked when it is made ([`check_user_id`]: 1 to
/// [`super::MAX_USER_ID_LEN`] bytes of `a-z 0-9 . _ -`). Public; `Display`
/// is the id itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Reads a user id from a wire field or from what a person typed.
    ///
    /// # Errors
    /// [`IdError::BadLength`] or [`IdError::BadUserIdCharacter`], as
    /// [`check_user_id`] says.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        check_user_id(text)?;
        Ok(UserId(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as owned text (for a wire field).
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = IdError;

    fn try_from(text: String) -> Result<Self, IdError> {
        check_user_id(&text)?;
        Ok(UserId(text))
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl std::ops::Deref for UserId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `UserId` be searched with a wire field's text.
impl Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for UserId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for UserId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<UserId> for String {
    fn eq(&self, other: &UserId) -> bool {
        self == &other.0
    }
}

impl PartialEq<UserId> for str {
    fn eq(&self, other: &UserId) -> bool {
        self == other.0
    }
}

impl std::fmt::Debug for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_user_id_is_made() {
        assert_eq!(UserId::parse("jane.smith-2_x").unwrap(), "jane.smith-2_x");
        assert_eq!(UserId::parse("Jane"), Err(IdError::BadUserIdCharacter));
        assert!(UserId::try_from(String::new()).is_err());
        assert_eq!(
            format!("{:?}", UserId::parse("ann").unwrap()),
            "UserId(ann)"
        );
    }
}
