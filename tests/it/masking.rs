//! Issue 10 item 2: plans and results mask every secret of the run (the stored and the new
//! database password, the web UI password and its hash) by its place, never by searching the
//! text: whatever the passwords are (one a prefix, a suffix, a middle part or a repetition of
//! the other, equal, or a single letter found in every word), no piece of them shows and the
//! rest of the plan is intact.

use std::collections::BTreeSet;

use crate::fake_host::FakeHost;
use crate::golden::{run, WEBAPP};

/// (stored database password, new database password, web UI password).
const CASES: [(&str, &str, &str); 8] = [
    (
        "Correct-Horse-Battery-Staple-2026",
        "Staple",
        "Battery-Staple",
    ),
    ("Staple", "Correct-Horse-Battery-Staple-2026", "Horse"),
    ("Prefix-Kqv9-tail", "Prefix-Kqv9", "Prefix-Kqv9-tail"),
    ("Head-Wm4-Suffix", "Wm4-Suffix", "Suffix"),
    ("AbcdAbcdAbcdAbcd", "Abcd", "AbcdAbcd"),
    ("Same-Pw-7731", "Same-Pw-7731", "Same-Pw-7731"),
    ("telemetry", "postgres", "admin"),
    ("Old-Pw-Jx81", "x", "y"),
];

fn file(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{content}\n")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path.display().to_string()
}

fn copy(host: &FakeHost) -> FakeHost {
    let copy = FakeHost::fresh("debian", true);
    *copy.world.borrow_mut() = host.world.borrow().clone();
    copy
}

/// Every text a person or a program sees of `-a install` with `new`/`ui` on a host installed
/// with `old`/`old_ui`: the human plan, the JSON plan, and the JSON result of applying it
/// (whose diffs are those `-v` prints while applying).
fn outputs(old: &str, new: &str, old_ui: &str, ui: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let host = FakeHost::fresh("debian", true);
    let (old_f, old_ui_f) = (file(&dir, "old", old), file(&dir, "old-ui", old_ui));
    let (new_f, ui_f) = (file(&dir, "new", new), file(&dir, "ui", ui));
    let base = [
        "-a",
        "install",
        "-d",
        "debian",
        "-H",
        "localhost",
        "--ui-auth",
        "admin",
    ];
    let with = |pw: &str, ui: &str| {
        let mut args: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        args.extend(WEBAPP.iter().map(|s| s.to_string()));
        args.extend(["--db-password-file".into(), pw.to_owned()]);
        args.extend(["--ui-password-file".into(), ui.to_owned()]);
        args
    };
    let first = [with(&old_f, &old_ui_f), vec!["--yes".into()]].concat();
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let (code, out, err) = run(&host, &first);
    assert_eq!(code, 0, "install with {old:?}: {out}\n{err}");
    let mut texts = Vec::new();
    for (label, extra) in [
        ("human plan", vec!["--dry-run"]),
        ("JSON plan", vec!["--dry-run", "--format", "json"]),
        ("JSON result", vec!["--yes", "--format", "json"]),
    ] {
        let host = copy(&host);
        let args = [
            with(&new_f, &ui_f),
            extra.iter().map(|s| s.to_string()).collect(),
        ]
        .concat();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&host, &args);
        assert_eq!(code, 0, "{label} with {new:?}: {out}\n{err}");
        texts.push((label.to_owned(), format!("{out}\n{err}")));
    }
    texts
}

/// The pieces (at least 4 characters, or the whole secret) of `secret`.
fn pieces(secret: &str) -> BTreeSet<String> {
    let chars: Vec<char> = secret.chars().collect();
    let mut out = BTreeSet::from([secret.to_owned()]);
    for len in 4..=chars.len() {
        for start in 0..=chars.len() - len {
            out.insert(chars[start..start + len].iter().collect());
        }
    }
    out
}

/// Every piece of every secret is absent from every output, the places of the passwords show
/// masked, and the outputs are those of unrelated passwords with the same pattern (which are
/// equal): a one-letter password (`x`, in every `nginx`) garbles nothing.
#[test]
fn secrets_are_masked_by_place_whatever_their_values() {
    // What the output holds anyway (words of the files and the plan), with unrelated secrets.
    let neutral = outputs("Qz7NeutralOld", "Qz7NeutralNew", "Qz7UiOld", "Qz7UiNew");
    let surrounding: String = neutral.iter().map(|(_, t)| t.as_str()).collect();
    for (old, new, ui) in CASES {
        let texts = outputs(old, new, "Ui-Before-Pw9", ui);
        for secret in [old, new, ui, "Ui-Before-Pw9"] {
            if secret.chars().count() < 4 {
                continue; // a one-letter password is in every word: compared below
            }
            for piece in pieces(secret) {
                if surrounding.contains(&piece) {
                    continue;
                }
                for (label, text) in &texts {
                    assert!(
                        !text.contains(&piece),
                        "{label} of ({old:?}, {new:?}, {ui:?}) shows {piece:?} of {secret:?}:\n{text}"
                    );
                }
            }
        }
        if old != new {
            // The diffs show where the passwords are, masked.
            let plan = &texts[0].1;
            for line in [
                "+database_password = \"********\"",
                "-database_password = \"********\"",
                "+env = POSTGRES_PASSWORD=********",
                "-env = POSTGRES_PASSWORD=********",
            ] {
                assert!(plan.contains(line), "the plan lacks {line:?}:\n{plan}");
            }
        }
        // The same plans as with unrelated passwords in the same pattern.
        let alias = |s: &str| match s {
            s if s == old => "Qz7Old-A",
            s if s == new => "Qz7New-B",
            _ => "Qz7Ui-C",
        };
        let same_pattern = outputs(alias(old), alias(new), "Ui-Before-Pw9", alias(ui));
        for ((label, a), (_, b)) in texts.iter().zip(&same_pattern) {
            assert_eq!(
                a, b,
                "{label} of ({old:?}, {new:?}, {ui:?}) differs from one with unrelated passwords"
            );
        }
    }
}

/// On a fresh host the plan creates the files that hold secrets: it does not tell their size,
/// which would tell a secret's length.
#[test]
fn a_fresh_plan_does_not_tell_the_length_of_a_secret() {
    let plan = |pw: &str, ui: &str| {
        let dir = tempfile::tempdir().unwrap();
        let (pw, ui) = (file(&dir, "pw", pw), file(&dir, "ui", ui));
        let host = FakeHost::fresh("debian", true);
        let mut args = vec![
            "-a",
            "install",
            "-d",
            "debian",
            "-H",
            "localhost",
            "--dry-run",
        ];
        args.extend(WEBAPP);
        args.extend(["--ui-auth", "admin", "--ui-password-file", &ui]);
        args.extend(["--db-password-file", &pw]);
        let (code, out, err) = run(&host, &args);
        assert_eq!(code, 0, "{out}\n{err}");
        out
    };
    let short = plan("x", "y");
    assert!(
        short.contains("create /etc/telemetry/collector.toml (root:"),
        "{short}"
    );
    assert_eq!(
        short,
        plan("a-much-longer-password-Qz7", "another-long-one-Qz7")
    );
}
