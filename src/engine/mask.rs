//! Secrets in file diffs, masked by their place, never by searching for their value.
//!
//! A template is rendered twice: with the secrets (what is written) and with a placeholder for
//! each of them (what is shown). Which lines changed is computed on the real texts; every line
//! shown of the new file comes from the placeholder rendering, so no secret shows whatever its
//! value (a part of another secret, a single letter that is in every word).
//!
//! The file on disk may come from an older template or a hand edit, so its secrets are not
//! searched for either: the placeholder rendering tells where a secret goes (the key before
//! the placeholder: `database_password =`, `env = POSTGRES_PASSWORD=`, `admin:`), and each line
//! of the old file with such a key shows the key and a placeholder, not what follows it.

use similar::{DiffTag, TextDiff};

use crate::secret::MASK;

/// Where a secret goes: a line starting with `key` (white space ignored), followed by `shown`.
struct Place {
    key: String,
    shown: String,
}

/// The places of `shown` (the placeholder rendering) that hold a secret.
fn places(shown: &str) -> Vec<Place> {
    shown
        .lines()
        .filter_map(|line| {
            let before = &line[..line.find(MASK)?];
            let end = before.rfind(['=', ':']).map_or(before.len(), |i| i + 1);
            Some(Place {
                key: before[..end].split_whitespace().collect(),
                shown: line[end..].to_owned(),
            })
        })
        .collect()
}

/// `line` (of the file on disk) with what follows a secret's key masked.
fn mask_line(line: &str, places: &[Place]) -> String {
    for place in places {
        if let Some(end) = key_end(line, &place.key) {
            let eol = &line[line.trim_end_matches(['\n', '\r']).len()..];
            return format!("{}{}{eol}", &line[..end], place.shown);
        }
    }
    line.to_owned()
}

/// The byte offset in `line` just after `key`, when `line` starts with it (white space in
/// `line` ignored).
fn key_end(line: &str, key: &str) -> Option<usize> {
    let mut want = key.chars().peekable();
    for (i, c) in line.char_indices() {
        let Some(&k) = want.peek() else {
            return Some(i);
        };
        if c == k {
            want.next();
        } else if !c.is_whitespace() {
            return None;
        }
    }
    want.peek().is_none().then_some(line.len())
}

/// A unified diff from `old` to `new` that shows `new_shown` (the placeholder rendering of
/// `new`) and `old` with its secrets masked by place. `None` when `new` and `new_shown` do not
/// have the same lines (a secret with a line break): then no diff can be shown safely.
pub fn unified_diff(path: &str, old: &str, new: &str, new_shown: &str) -> Option<String> {
    let shown_lines: Vec<&str> = new_shown.split_inclusive('\n').collect();
    let diff = TextDiff::from_lines(old, new);
    if diff.new_slices().len() != shown_lines.len() {
        return None;
    }
    let places = places(new_shown);
    let old_lines: Vec<String> = diff
        .old_slices()
        .iter()
        .map(|l| mask_line(l, &places))
        .collect();
    let mut out = String::new();
    for group in diff.grouped_ops(3) {
        if group.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str(&format!("--- {path} (on disk)\n+++ {path} (new)\n"));
        }
        out.push_str(&format!(
            "{}\n",
            similar::udiff::UnifiedHunkHeader::new(&group)
        ));
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            let lines: Vec<(&str, &str)> = match tag {
                DiffTag::Equal => old_range.map(|i| (" ", old_lines[i].as_str())).collect(),
                DiffTag::Delete => old_range.map(|i| ("-", old_lines[i].as_str())).collect(),
                DiffTag::Insert => new_range.map(|i| ("+", shown_lines[i])).collect(),
                DiffTag::Replace => old_range
                    .map(|i| ("-", old_lines[i].as_str()))
                    .chain(new_range.map(|i| ("+", shown_lines[i])))
                    .collect(),
            };
            for (sign, line) in lines {
                out.push_str(sign);
                out.push_str(line);
                if !line.ends_with('\n') {
                    out.push_str("\n\\ No newline at end of file\n");
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_file_is_masked_by_the_keys_of_the_placeholder_rendering() {
        let shown = "a = 1\ndatabase_password = \"********\"\nenv = POSTGRES_PASSWORD=********\nadmin:********\n";
        let old = "a = 0\ndatabase_password=\"old-x\"\n  env=POSTGRES_PASSWORD=old-y\nadmin:$6$salt$hash\nbob:$6$keep\n";
        let new = "a = 1\ndatabase_password = \"x\"\nenv = POSTGRES_PASSWORD=x\nadmin:$6$new\n";
        let d = unified_diff("/f", old, new, shown).unwrap();
        for secret in ["old-x", "old-y", "salt", "$6$new", "\"x\"", "=x"] {
            assert!(!d.contains(secret), "{secret} in\n{d}");
        }
        assert!(d.contains("-database_password= \"********\"\n"), "{d}");
        assert!(d.contains("-  env=POSTGRES_PASSWORD=********\n"), "{d}");
        assert!(d.contains("+database_password = \"********\"\n"), "{d}");
        assert!(d.contains("-bob:$6$keep\n"), "{d}");
        assert!(
            d.starts_with("--- /f (on disk)\n+++ /f (new)\n@@ -1,5 +1,4 @@\n"),
            "{d}"
        );
    }

    #[test]
    fn without_secrets_it_is_the_plain_unified_diff() {
        let (old, new) = (
            "a\nb\nc\nd\ne\nf\ng\nh\ni\n",
            "a\nb\nX\nd\ne\nf\ng\nh\ni\nj",
        );
        let plain = TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header("/f (on disk)", "/f (new)")
            .to_string();
        assert_eq!(unified_diff("/f", old, new, new).unwrap(), plain);
    }

    #[test]
    fn a_secret_with_a_line_break_hides_the_diff() {
        assert!(unified_diff("/f", "", "k = a\nb\n", "k = ********\n").is_none());
    }
}
