//! Finding the group a person names: by its id (or an id prefix of at
//! least 4 hex digits), or by its name, whatever its case; when nothing
//! matches, the names closest to what was typed are suggested.

use crate::error::ClientError;
use crate::types::GroupSummary;

/// How alike (Jaro-Winkler, 0 to 1) a name must be to what was typed to
/// be suggested.
const SUGGEST_FROM: f64 = 0.8;
/// Names suggested at most.
const MAX_SUGGESTIONS: usize = 3;

/// The one group of `groups` that `query` names.
///
/// # Errors
/// [`ClientError::NoGroupMatches`] (with the closest names) when none
/// does; [`ClientError::InvalidArgument`] when several do.
pub(super) fn pick_group<'a>(
    groups: &'a [GroupSummary],
    query: &str,
) -> Result<&'a GroupSummary, ClientError> {
    let wanted = fold(query);
    let by_id: Vec<&GroupSummary> = groups
        .iter()
        .filter(|g| wanted.len() >= 4 && g.id.to_string().starts_with(&wanted))
        .collect();
    let found: Vec<&GroupSummary> = if by_id.is_empty() {
        groups.iter().filter(|g| fold(&g.name) == wanted).collect()
    } else {
        by_id
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(ClientError::NoGroupMatches {
            query: query.to_string(),
            suggestions: closest_names(groups, &wanted),
        }),
        _ => Err(ClientError::InvalidArgument(format!(
            "{query:?} matches several groups; use its id"
        ))),
    }
}

/// A name as it is compared: trimmed, lowercase, single spaces.
fn fold(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn closest_names(groups: &[GroupSummary], wanted: &str) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = groups
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(|g| {
            (
                strsim::jaro_winkler(&fold(&g.name), wanted),
                g.name.as_str(),
            )
        })
        .filter(|(score, _)| *score >= SUGGEST_FROM)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, name)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: u8, name: &str) -> GroupSummary {
        GroupSummary::for_tests(id, name, &[])
    }

    #[test]
    fn a_group_is_found_by_name_whatever_its_case_and_spacing() {
        let groups = [group(0xab, "Cohort 2026"), group(0xcd, "Fire chiefs")];
        assert_eq!(
            pick_group(&groups, "cohort 2026").unwrap().name,
            "Cohort 2026"
        );
        assert_eq!(
            pick_group(&groups, "  FIRE   chiefs ").unwrap().name,
            "Fire chiefs"
        );
        assert_eq!(pick_group(&groups, "CDCD").unwrap().name, "Fire chiefs");
    }

    #[test]
    fn a_name_nothing_matches_gets_the_closest_names_suggested() {
        let groups = [
            group(1, "Cohort 2026"),
            group(2, "Cohort 2025"),
            group(3, "NHS leads"),
        ];
        let err = pick_group(&groups, "cohort 2062").unwrap_err();
        match &err {
            ClientError::NoGroupMatches { suggestions, .. } => {
                assert_eq!(suggestions, &["Cohort 2026", "Cohort 2025"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(err.code(), "unknown_group");
        assert!(
            err.to_string().contains(r#"did you mean "Cohort 2026""#),
            "{err}"
        );
        let err = pick_group(&groups, "police").unwrap_err();
        assert!(
            matches!(&err, ClientError::NoGroupMatches { suggestions, .. } if suggestions.is_empty()),
            "{err:?}"
        );
    }
}
