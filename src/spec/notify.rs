//! A workflow's notifications (`notify:`): where weft POSTs a signed JSON
//! message when a run ends (or only when it fails, succeeds or is
//! cancelled) and when an approval escalates. Checked here with the rest
//! of the document; sent by `crate::notify`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::http::is_secret_name;
use super::validate::Problems;
use crate::model::{EventKind, RunStatus};

/// The most notification targets a workflow may name.
pub const MAX_TARGETS: usize = 8;

/// One notification target, as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyDoc {
    /// Where to POST: an `http://` or `https://` URL.
    #[schemars(with = "String")]
    pub url: Spanned<String>,
    /// What to tell: `ended` (any end), `succeeded`, `failed`,
    /// `cancelled`, `escalated` (an approval escalated). By default
    /// `[ended, escalated]`.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub on: Option<Spanned<Vec<String>>>,
    /// The tenant secret whose value signs each message
    /// (`X-Weft-Signature`, as inbound hooks are signed).
    #[schemars(with = "String")]
    pub secret: Spanned<String>,
}

/// What a target is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOn {
    /// Any end of the run.
    Ended,
    /// The run succeeded.
    Succeeded,
    /// The run failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// An approval step escalated.
    Escalated,
}

impl NotifyOn {
    const ALL: [(&'static str, NotifyOn); 5] = [
        ("ended", NotifyOn::Ended),
        ("succeeded", NotifyOn::Succeeded),
        ("failed", NotifyOn::Failed),
        ("cancelled", NotifyOn::Cancelled),
        ("escalated", NotifyOn::Escalated),
    ];

    /// Whether this covers `event`.
    pub fn covers(self, event: &EventKind) -> bool {
        match (self, event) {
            (NotifyOn::Ended, EventKind::RunFinished { .. }) => true,
            (NotifyOn::Succeeded, EventKind::RunFinished { status }) => *status == RunStatus::Succeeded,
            (NotifyOn::Failed, EventKind::RunFinished { status }) => *status == RunStatus::Failed,
            (NotifyOn::Cancelled, EventKind::RunFinished { status }) => *status == RunStatus::Cancelled,
            (NotifyOn::Escalated, EventKind::ApprovalEscalated { .. }) => true,
            _ => false,
        }
    }
}

/// One target, checked.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Where to POST.
    pub url: String,
    /// What it is told of.
    pub on: Vec<NotifyOn>,
    /// The secret that signs the messages.
    pub secret: String,
}

impl Notify {
    /// Whether this target is told of `event`.
    pub fn wants(&self, event: &EventKind) -> bool {
        self.on.iter().any(|on| on.covers(event))
    }
}

/// Checks the targets, reporting each problem.
pub(super) fn compile(docs: &Spanned<Vec<NotifyDoc>>, problems: &mut Problems) -> Vec<Notify> {
    if docs.value.len() > MAX_TARGETS {
        problems.at(
            "notify",
            docs,
            format!("{} targets is more than the {MAX_TARGETS} allowed", docs.value.len()),
        );
    }
    let mut out = Vec::new();
    for (i, doc) in docs.value.iter().enumerate() {
        let at = format!("notify[{i}]");
        let url = doc.url.value.trim();
        let parsed = url.parse::<http::Uri>().ok();
        let scheme_ok = parsed
            .as_ref()
            .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !scheme_ok {
            problems.at(
                format!("{at}.url"),
                &doc.url,
                format!("{url:?} is not an http:// or https:// URL with a host"),
            );
        }
        if !is_secret_name(&doc.secret.value) {
            problems.at(
                format!("{at}.secret"),
                &doc.secret,
                format!(
                    "{:?} is not a secret name: letters, digits and `_`, not starting with a digit",
                    doc.secret.value
                ),
            );
        }
        let on = match &doc.on {
            None => vec![NotifyOn::Ended, NotifyOn::Escalated],
            Some(on) => {
                let mut kinds = Vec::new();
                for name in &on.value {
                    match NotifyOn::ALL.iter().find(|(n, _)| n == name) {
                        Some((_, kind)) => kinds.push(*kind),
                        None => problems.at(
                            format!("{at}.on"),
                            on,
                            format!("{name:?} is not something to notify of: give one of ended, succeeded, failed, cancelled, escalated"),
                        ),
                    }
                }
                if on.value.is_empty() {
                    problems.at(
                        format!("{at}.on"),
                        on,
                        "name at least one of ended, succeeded, failed, cancelled, escalated",
                    );
                }
                kinds
            }
        };
        out.push(Notify {
            url: url.to_string(),
            on,
            secret: doc.secret.value.clone(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::model::{EventKind, RunStatus};
    use crate::spec::{SpecConfig, parse};

    fn problems(notify: &str) -> Vec<String> {
        let text = format!("name: n\nsteps:\n  - {{id: a, sleep: 1s}}\nnotify:\n{notify}");
        match parse(&text, &SpecConfig::default()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(|e| format!("{}: {}", e.path, e.message)).collect(),
        }
    }

    #[test]
    fn targets_are_checked_and_match_the_events_they_ask_for() {
        let text = "name: n\nsteps:\n  - {id: a, sleep: 1s}\nnotify:\n  - {url: 'https://ops.example.com/x', secret: k, on: [failed]}\n  - {url: 'http://h:8080/y', secret: k}\n";
        let workflow = parse(text, &SpecConfig::default()).unwrap();
        let failed = EventKind::RunFinished {
            status: RunStatus::Failed,
        };
        let succeeded = EventKind::RunFinished {
            status: RunStatus::Succeeded,
        };
        let escalated = EventKind::ApprovalEscalated {
            step: "a".into(),
            to: vec![],
        };
        let wants = |event: &EventKind| -> Vec<bool> { workflow.notify.iter().map(|n| n.wants(event)).collect() };
        assert_eq!(wants(&failed), [true, true]);
        assert_eq!(wants(&succeeded), [false, true]);
        assert_eq!(wants(&escalated), [false, true], "the default is [ended, escalated]");

        assert_eq!(
            problems("  - {url: 'ftp://x/y', secret: k}\n"),
            ["notify[0].url: \"ftp://x/y\" is not an http:// or https:// URL with a host"]
        );
        assert_eq!(
            problems("  - {url: 'https://x/y', secret: 9k}\n"),
            ["notify[0].secret: \"9k\" is not a secret name: letters, digits and `_`, not starting with a digit"]
        );
        let wrong = problems("  - {url: 'https://x/y', secret: k, on: [finished]}\n");
        assert!(
            wrong[0].starts_with("notify[0].on: \"finished\" is not something to notify of"),
            "{wrong:?}"
        );
        let unknown = problems("  - {url: 'https://x/y', secret: k, when: always}\n");
        assert!(unknown[0].contains("when"), "{unknown:?}");
    }
}
