//! The fixed vocabularies a certified profile uses: the UK public-service
//! sectors and the ITL1 regions and nations of the UK. Certificates carry
//! the codes; people see the names. docs/DIRECTORY.md lists both.
//!
//! The regions are the International Territorial Level 1 regions as the
//! Office for National Statistics publishes them (ITL 2025), with their
//! ONS codes; the sectors are the parts of UK public service the network's
//! leaders come from.

use std::fmt;

/// A UK public-service sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sector {
    /// Whitehall departments and their agencies.
    CentralGovernment,
    /// The Scottish and Welsh Governments and the Northern Ireland
    /// Executive.
    DevolvedGovernment,
    /// Councils and combined authorities.
    LocalGovernment,
    /// The NHS, public health and ambulance services.
    NhsAndHealth,
    /// Adult and children's social care.
    SocialCare,
    /// Police forces and national policing bodies.
    Police,
    /// Fire and rescue services.
    FireAndRescue,
    /// The armed forces and the defence establishment.
    ArmedForcesAndDefence,
    /// Schools, colleges and universities.
    Education,
    /// Courts, prisons, probation and youth justice.
    Justice,
    /// Public bodies at arm's length from ministers (regulators, agencies).
    ArmsLengthBodies,
    /// Housing and homelessness services.
    Housing,
    /// Public transport and highways bodies.
    Transport,
    /// Charities and voluntary bodies delivering public services.
    CharityAndVoluntary,
}

impl Sector {
    /// Every sector, in the order lists show them.
    pub const ALL: [Sector; 14] = [
        Sector::CentralGovernment,
        Sector::DevolvedGovernment,
        Sector::LocalGovernment,
        Sector::NhsAndHealth,
        Sector::SocialCare,
        Sector::Police,
        Sector::FireAndRescue,
        Sector::ArmedForcesAndDefence,
        Sector::Education,
        Sector::Justice,
        Sector::ArmsLengthBodies,
        Sector::Housing,
        Sector::Transport,
        Sector::CharityAndVoluntary,
    ];

    /// The code a certificate carries.
    pub fn code(self) -> &'static str {
        match self {
            Sector::CentralGovernment => "central-government",
            Sector::DevolvedGovernment => "devolved-government",
            Sector::LocalGovernment => "local-government",
            Sector::NhsAndHealth => "nhs-health",
            Sector::SocialCare => "social-care",
            Sector::Police => "police",
            Sector::FireAndRescue => "fire-rescue",
            Sector::ArmedForcesAndDefence => "armed-forces-defence",
            Sector::Education => "education",
            Sector::Justice => "justice",
            Sector::ArmsLengthBodies => "arms-length-bodies",
            Sector::Housing => "housing",
            Sector::Transport => "transport",
            Sector::CharityAndVoluntary => "charity-voluntary",
        }
    }

    /// The name people see.
    pub fn name(self) -> &'static str {
        match self {
            Sector::CentralGovernment => "Central government",
            Sector::DevolvedGovernment => "Devolved government",
            Sector::LocalGovernment => "Local government",
            Sector::NhsAndHealth => "NHS and health",
            Sector::SocialCare => "Social care",
            Sector::Police => "Police",
            Sector::FireAndRescue => "Fire and rescue",
            Sector::ArmedForcesAndDefence => "Armed forces and defence",
            Sector::Education => "Education",
            Sector::Justice => "Justice",
            Sector::ArmsLengthBodies => "Arm's-length bodies",
            Sector::Housing => "Housing",
            Sector::Transport => "Transport",
            Sector::CharityAndVoluntary => "Charity and voluntary",
        }
    }

    /// The sector with this code exactly (as a certificate carries it).
    pub fn from_code(code: &str) -> Option<Sector> {
        Sector::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The sector a person typed: its code or its name, in any case, with
    /// any spacing, hyphens or "&" for "and" ("fire and rescue",
    /// "Fire & Rescue", "fire-rescue"); or the one sector whose name starts
    /// with it ("fire", "nhs").
    pub fn parse(typed: &str) -> Result<Sector, UnknownTerm> {
        parse_term(typed, &Sector::ALL, |s| [s.code(), s.name()], "sector")
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ITL1 region or nation of the UK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Region {
    /// TLC North East (England).
    NorthEast,
    /// TLD North West (England).
    NorthWest,
    /// TLE Yorkshire and The Humber.
    YorkshireAndTheHumber,
    /// TLF East Midlands (England).
    EastMidlands,
    /// TLG West Midlands (England).
    WestMidlands,
    /// TLH East of England.
    EastOfEngland,
    /// TLI London.
    London,
    /// TLJ South East (England).
    SouthEast,
    /// TLK South West (England).
    SouthWest,
    /// TLL Wales.
    Wales,
    /// TLM Scotland.
    Scotland,
    /// TLN Northern Ireland.
    NorthernIreland,
}

impl Region {
    /// Every region, in ONS code order.
    pub const ALL: [Region; 12] = [
        Region::NorthEast,
        Region::NorthWest,
        Region::YorkshireAndTheHumber,
        Region::EastMidlands,
        Region::WestMidlands,
        Region::EastOfEngland,
        Region::London,
        Region::SouthEast,
        Region::SouthWest,
        Region::Wales,
        Region::Scotland,
        Region::NorthernIreland,
    ];

    /// The ONS ITL1 code, which a certificate carries.
    pub fn code(self) -> &'static str {
        match self {
            Region::NorthEast => "TLC",
            Region::NorthWest => "TLD",
            Region::YorkshireAndTheHumber => "TLE",
            Region::EastMidlands => "TLF",
            Region::WestMidlands => "TLG",
            Region::EastOfEngland => "TLH",
            Region::London => "TLI",
            Region::SouthEast => "TLJ",
            Region::SouthWest => "TLK",
            Region::Wales => "TLL",
            Region::Scotland => "TLM",
            Region::NorthernIreland => "TLN",
        }
    }

    /// The ONS name.
    pub fn name(self) -> &'static str {
        match self {
            Region::NorthEast => "North East (England)",
            Region::NorthWest => "North West (England)",
            Region::YorkshireAndTheHumber => "Yorkshire and The Humber",
            Region::EastMidlands => "East Midlands (England)",
            Region::WestMidlands => "West Midlands (England)",
            Region::EastOfEngland => "East of England",
            Region::London => "London",
            Region::SouthEast => "South East (England)",
            Region::SouthWest => "South West (England)",
            Region::Wales => "Wales",
            Region::Scotland => "Scotland",
            Region::NorthernIreland => "Northern Ireland",
        }
    }

    /// The region with this ONS code exactly.
    pub fn from_code(code: &str) -> Option<Region> {
        Region::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The region a person typed: its code or its name in any case and
    /// spacing, with or without "(England)" ("north east", "TLC"), or the
    /// one region whose name starts with it ("yorkshire").
    pub fn parse(typed: &str) -> Result<Region, UnknownTerm> {
        parse_term(
            typed,
            &Region::ALL,
            |r| [r.code(), r.name(), r.name().trim_end_matches(" (England)")],
            "region",
        )
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A sector or region no term of the vocabulary matches, or several do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{typed:?} is not a {vocabulary} (one of: {choices})")]
pub struct UnknownTerm {
    /// What was typed.
    pub typed: String,
    /// "sector" or "region".
    pub vocabulary: &'static str,
    /// The names to choose from, comma-separated.
    pub choices: String,
}

/// Lower case, "&" as "and", apostrophes dropped, anything else not a
/// letter or digit (spaces, hyphens, brackets) as one space.
fn fold(text: &str) -> String {
    let text = text
        .to_lowercase()
        .replace('&', " and ")
        .replace(['\'', '\u{2019}'], "");
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_term<T: Copy + fmt::Display, const N: usize>(
    typed: &str,
    all: &[T],
    terms: impl Fn(&T) -> [&'static str; N],
    vocabulary: &'static str,
) -> Result<T, UnknownTerm> {
    let folded = fold(typed);
    let exact = all
        .iter()
        .find(|item| terms(item).iter().any(|term| fold(term) == folded));
    if let Some(item) = exact {
        return Ok(*item);
    }
    let starting: Vec<&T> = all
        .iter()
        .filter(|item| {
            !folded.is_empty() && terms(item).iter().any(|t| fold(t).starts_with(&folded))
        })
        .collect();
    match starting.as_slice() {
        [one] => Ok(**one),
        _ => Err(UnknownTerm {
            typed: typed.to_string(),
            vocabulary,
            choices: all
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for sector in Sector::ALL {
            assert_eq!(Sector::from_code(sector.code()), Some(sector));
            assert_eq!(Sector::parse(sector.name()), Ok(sector));
        }
        for region in Region::ALL {
            assert_eq!(Region::from_code(region.code()), Some(region));
            assert_eq!(Region::parse(region.name()), Ok(region));
        }
    }

    #[test]
    fn what_people_type_finds_the_term() {
        assert_eq!(Sector::parse("Fire & Rescue"), Ok(Sector::FireAndRescue));
        assert_eq!(Sector::parse("fire"), Ok(Sector::FireAndRescue));
        assert_eq!(Sector::parse("NHS"), Ok(Sector::NhsAndHealth));
        assert_eq!(
            Sector::parse("arms length bodies"),
            Ok(Sector::ArmsLengthBodies)
        );
        assert_eq!(Region::parse("north east"), Ok(Region::NorthEast));
        assert_eq!(Region::parse("tli"), Ok(Region::London));
        assert_eq!(
            Region::parse("Yorkshire"),
            Ok(Region::YorkshireAndTheHumber)
        );
    }

    #[test]
    fn an_unknown_or_ambiguous_term_lists_the_choices() {
        let err = Sector::parse("banking").unwrap_err();
        assert!(err.to_string().contains("Police"), "{err}");
        // "north" starts both North East and North West (and Northern
        // Ireland): not a guess.
        assert!(Region::parse("north").is_err());
        assert!(Sector::parse("").is_err());
    }
}
