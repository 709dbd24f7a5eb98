//! The output README.md shows for the walkthrough, read from the README
//! itself: each ```text block that follows a `<!-- walkthrough-output:
//! NAME -->` comment is what the step NAME prints for people. The
//! walkthrough test compares what the commands print with it, line for
//! line, with only what differs between runs masked (times, ids, codes).

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};

const MARKER: &str = "<!-- walkthrough-output: ";

/// The outputs README.md shows, by name.
pub struct ReadmeOutputs(HashMap<String, String>);

impl ReadmeOutputs {
    /// Reads them from the workspace's README.md.
    pub fn load() -> Result<ReadmeOutputs> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut outputs = HashMap::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let Some(rest) = line.strip_prefix(MARKER) else {
                continue;
            };
            let name = rest.trim_end_matches("-->").trim().to_string();
            ensure!(
                lines.next() == Some("```text"),
                "README.md: the output {name:?} is not followed by a ```text block"
            );
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            outputs.insert(name, block.join("\n"));
        }
        Ok(ReadmeOutputs(outputs))
    }

    /// Fails unless `actual` is, line for line, what README.md shows for
    /// `name`.
    pub fn check(&self, name: &str, actual: &str) -> Result<()> {
        let Some(shown) = self.0.get(name) else {
            bail!("README.md shows no output named {name:?}");
        };
        let (shown, actual) = (comparable(shown), comparable(actual.trim_end()));
        if shown != actual {
            bail!(
                "README.md's output {name:?} differs from what convene printed.\n\
                 README (masked):\n{shown}\nprinted (masked):\n{actual}"
            );
        }
        Ok(())
    }
}

/// `text` with what differs between runs masked: RFC 3339 times, hex of
/// 16 digits or more (group and device ids), invite and link codes.
pub fn comparable(text: &str) -> String {
    text.lines()
        .map(|line| line.split(' ').map(mask_word).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn mask_word(word: &str) -> String {
    if word.starts_with("cvn2_") {
        return "<invite>".into();
    }
    let trimmed = word.trim_matches(|c: char| matches!(c, '[' | ']' | ',' | ':' | ')' | '('));
    let is_time = trimmed.len() == 20
        && trimmed.ends_with('Z')
        && trimmed.as_bytes().get(10) == Some(&b'T')
        && trimmed[..4].bytes().all(|b| b.is_ascii_digit());
    let is_hex = trimmed.len() >= 16 && trimmed.bytes().all(|b| b.is_ascii_hexdigit());
    match (is_time, is_hex) {
        (true, _) => word.replace(trimmed, "<time>"),
        (_, true) => word.replace(trimmed, "<id>"),
        _ => word.to_string(),
    }
}

#[test]
fn what_differs_between_runs_is_masked_and_nothing_else() {
    assert_eq!(
        comparable("Cohort 2026: [2026-12-01T09:00:00Z] ana: hello 0123"),
        "Cohort 2026: [<time>] ana: hello 0123"
    );
    assert_eq!(
        comparable("9f3c2a7e41d08b65c3e1f0a2d4b6c8e0  cohort \"x\"\n  cvn2_abc"),
        "<id>  cohort \"x\"\n  <invite>"
    );
}
