//! Agent attributes from the flags: Mesos' `--attributes` text (`rack:r1;zone:2`), and
//! mesos-lite's per-agent `--agent_attributes` (`rack:r1|rack:r2`).
//!
//! Values are typed as the Mesos agent types them: all spaces removed, then `[a-b,…]`
//! is RANGES, a number is SCALAR, anything else TEXT; sets (`{…}`) are not allowed.

use anyhow::{Result, bail};

use crate::wire::{Attribute, Range, Ranges, ValueType};

/// Parses `name:value;name:value` (`;` or newlines separate, empty parts are skipped).
pub fn parse(text: &str) -> Result<Vec<Attribute>> {
    let mut out: Vec<Attribute> = Vec::new();
    for token in text.split([';', '\n']).filter(|t| !t.trim().is_empty()) {
        let Some((name, value)) = token.split_once(':') else {
            bail!("invalid attribute key:value pair '{token}'");
        };
        let name = name.trim();
        if name.is_empty() || value.trim().is_empty() {
            bail!("invalid attribute key:value pair '{token}'");
        }
        let attribute = parse_value(name, value)
            .map_err(|e| anyhow::anyhow!("failed to parse attribute {name} text {value}: {e}"))?;
        add(&mut out, attribute);
    }
    Ok(out)
}

/// Adds `attribute`, replacing one of the same name.
fn add(list: &mut Vec<Attribute>, attribute: Attribute) {
    match list.iter_mut().find(|a| a.name == attribute.name) {
        Some(existing) => *existing = attribute,
        None => list.push(attribute),
    }
}

fn parse_value(name: &str, text: &str) -> std::result::Result<Attribute, String> {
    let value: String = text.chars().filter(|c| *c != ' ').collect();
    for (open, close) in [('[', ']'), ('{', '}'), ('(', ')')] {
        if !brackets_match(&value, open, close) {
            return Err("mismatched brackets".into());
        }
    }
    if value.starts_with('[') {
        let bounds: Vec<&str> = value
            .split(['[', ']', '-', ',', '\n'])
            .filter(|t| !t.is_empty())
            .collect();
        if bounds.is_empty() || bounds.len() % 2 != 0 {
            return Err("expecting one or more \"ranges\"".into());
        }
        let mut ranges = Vec::new();
        for pair in bounds.chunks(2) {
            let (Ok(begin), Ok(end)) = (pair[0].parse::<u64>(), pair[1].parse::<u64>()) else {
                return Err(format!(
                    "expecting non-negative integers in '{}-{}'",
                    pair[0], pair[1]
                ));
            };
            ranges.push(Range { begin, end });
        }
        return Ok(Attribute {
            name: name.to_owned(),
            r#type: ValueType::Ranges,
            ranges: Some(Ranges {
                range: mesos_v1::resources::normalize_ranges(ranges),
            }),
            ..Attribute::default()
        });
    }
    if value.contains('[') {
        return Err("unexpected '[' found".into());
    }
    if value.starts_with('{') {
        return Err("sets are not supported for attributes".into());
    }
    if value.contains('{') {
        return Err("unexpected '{' found".into());
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Attribute::scalar(name, v)),
        _ => Ok(Attribute::text(name, value)),
    }
}

/// Every `open` has its `close` after it, and none closes what was not opened.
fn brackets_match(text: &str, open: char, close: char) -> bool {
    let mut depth = 0i32;
    for c in text.chars() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth < 0 {
                return false;
            }
        }
    }
    depth == 0
}

/// The attributes of each of `count` agents: `--attributes` for all, merged with the
/// agent's own entry of `--agent_attributes` (`|`-separated, one per agent), whose
/// attributes replace those of the same name.
pub fn per_agent(
    common: Option<&str>,
    per_agent: Option<&str>,
    count: usize,
) -> Result<Vec<Vec<Attribute>>> {
    let common = match common {
        Some(text) => parse(text)?,
        None => Vec::new(),
    };
    let own: Vec<Vec<Attribute>> = match per_agent {
        None => vec![Vec::new(); count],
        Some(text) => {
            let entries: Vec<&str> = text.split('|').collect();
            if entries.len() != count {
                bail!(
                    "--agent_attributes has {} entries ('|'-separated) but there are {count} agents",
                    entries.len()
                );
            }
            entries.into_iter().map(parse).collect::<Result<_>>()?
        }
    };
    Ok(own
        .into_iter()
        .map(|mine| {
            let mut all = common.clone();
            for a in mine {
                add(&mut all, a);
            }
            all
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_values_as_mesos_does() -> Result<()> {
        let attrs = parse(
            "rack:r1;zone:2; os : ubuntu 22 ;\nports:[31000-31005, 31006-31010,40000-40000]",
        )?;
        assert_eq!(attrs[0], Attribute::text("rack", "r1"));
        assert_eq!(attrs[1], Attribute::scalar("zone", 2.0));
        assert_eq!(
            attrs[2],
            Attribute::text("os", "ubuntu22"),
            "spaces removed"
        );
        assert_eq!(attrs[3].r#type, ValueType::Ranges);
        assert_eq!(
            attrs[3].ranges.as_ref().map(|r| r.range.clone()),
            Some(vec![
                Range {
                    begin: 31000,
                    end: 31010
                },
                Range {
                    begin: 40000,
                    end: 40000
                }
            ]),
            "coalesced"
        );
        assert_eq!(parse("a:1;a:x")?, vec![Attribute::text("a", "x")]);
        assert!(parse("")?.is_empty());
        Ok(())
    }

    #[test]
    fn rejects_what_mesos_rejects() {
        for bad in [
            "rack",
            ":r1",
            "rack:",
            "s:{a,b}",
            "r:[1-2",
            "r:[1-x]",
            "r:a[1]",
            "r:[1-2-3]",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn per_agent_entries_extend_and_override_the_common_ones() -> Result<()> {
        let attrs = per_agent(Some("dc:x;rack:r0"), Some("rack:r1|zone:b"), 2)?;
        assert_eq!(
            attrs[0],
            vec![Attribute::text("dc", "x"), Attribute::text("rack", "r1")]
        );
        assert_eq!(
            attrs[1],
            vec![
                Attribute::text("dc", "x"),
                Attribute::text("rack", "r0"),
                Attribute::text("zone", "b")
            ]
        );
        assert_eq!(per_agent(None, None, 3)?, vec![Vec::new(); 3]);
        assert!(
            per_agent(None, Some("a:1|b:2"), 3).is_err(),
            "one entry per agent"
        );
        assert_eq!(
            per_agent(None, Some("|a:1"), 2)?[0],
            Vec::new(),
            "empty entry"
        );
        Ok(())
    }
}
