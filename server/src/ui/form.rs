//! The filters form of the records, builds and stats pages: a GET form whose fields are
//! [`RecordsQuery`]'s, showing what was typed.

use maud::{html, Markup};

use super::filter::{RecordsQuery, SINCE};

fn input(name: &str, label: &str, size: u32, value: &str, placeholder: &str) -> Markup {
    html! {
        label { (label) input name=(name) size=(size) value=(value) placeholder=(placeholder); }
    }
}

fn select(name: &str, label: &str, current: &str, options: &[(&str, &str)]) -> Markup {
    html! {
        label {
            (label)
            select name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[*value == current] { (text) }
                }
            }
        }
    }
}

/// The form (GET to `action`), its fields holding `q`'s values.
pub fn filters(q: &RecordsQuery, action: &str) -> Markup {
    let mut since: Vec<(&str, &str)> = vec![("", "any time")];
    since.extend(SINCE.iter().map(|(v, l, _)| (*v, *l)));
    let severities = [("", "any"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")];
    html! {
        form.filters method="get" action=(action) {
            (input("classification", "classification", 28, &q.classification, "domain/probe/*"))
            (select("severity", "severity", &q.severity, &severities))
            (input("build", "build", 8, &q.build, ""))
            (input("machine_id", "machine id", 20, &q.machine_id, ""))
            (input("system_name", "system name", 14, &q.system_name, ""))
            (input("platform", "platform", 14, &q.platform, ""))
            (input("arch", "arch", 7, &q.arch, ""))
            (select("since", "received", &q.since, &since))
            (input("from", "from (UTC)", 16, &q.from, "YYYY-MM-DD HH:MM"))
            (input("to", "to (UTC)", 16, &q.to, "YYYY-MM-DD HH:MM"))
            (input("q", "payload contains", 20, &q.q, ""))
            button type="submit" { "Filter" }
            " "
            a href=(action) { "clear" }
        }
    }
}
