//! The two counters of a group's life, kept apart by type because both are
//! `u64` and mixing them up is a silent bug: the MLS epoch (RFC 9420
//! section 8.1, advanced by each commit) and the position of an entry in
//! the relay's log of the group (advanced by every commit and message).

/// An MLS epoch: the number of commits the group has seen since it was
/// created (RFC 9420 section 8.1, `GroupContext.epoch`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch a commit made in this one starts.
    pub fn next(self) -> Epoch {
        Epoch(self.0.saturating_add(1))
    }

    /// The epoch as the wire carries it.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for Epoch {
    fn from(epoch: u64) -> Self {
        Epoch(epoch)
    }
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Epoch({})", self.0)
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The position of an entry in the relay's log of one group: 1 for the
/// first entry, each commit or message one more; 0 means "nothing yet".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Position(pub u64);

impl Position {
    /// The position of the entry after this one.
    pub fn next(self) -> Position {
        Position(self.0.saturating_add(1))
    }

    /// The position as the wire carries it.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for Position {
    fn from(position: u64) -> Self {
        Position(position)
    }
}

impl std::fmt::Debug for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Position({})", self.0)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
