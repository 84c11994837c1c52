//! A step's `http:` and `secrets:`, checked and compiled: its allow-list
//! inside the tenant's, its header templates (`${{ secrets.NAME }}` and
//! plain text only), and its caps within the tenant's.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde_saphyr::Spanned;

use super::document::{HttpDoc, HttpLimitsDoc};
use super::validate::{Problems, duration, size};
use crate::sandbox::http::{AllowList, HttpLimits, UrlPattern};

/// What the server and the tenant let a step's HTTP ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCaps {
    /// The tenant's allow-list: every step pattern must be inside it.
    /// `None`: no cap (a local `weft run`, or `weft validate` without a
    /// tenant).
    pub allow: Option<AllowList>,
    /// The largest caps a step may have, which are also the defaults of a
    /// step that sets none.
    pub max: HttpLimits,
}

/// A step's outbound HTTP, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepHttp {
    /// Where it may go.
    pub allow: AllowList,
    /// Headers the host adds, with their templates.
    pub headers: Vec<HeaderRule>,
    /// Its caps.
    pub limits: HttpLimits,
}

/// One header the host sets on requests matching `on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    /// The requests it goes on.
    pub on: UrlPattern,
    /// Its name.
    pub name: HeaderName,
    /// Its value: text and secrets, in order.
    pub value: Vec<Piece>,
}

/// A piece of a header template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as written.
    Text(String),
    /// The value of the tenant's secret of this name.
    Secret(String),
}

impl StepHttp {
    /// The secrets its headers use.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.headers.iter().flat_map(|rule| {
            rule.value.iter().filter_map(|piece| match piece {
                Piece::Secret(name) => Some(name.as_str()),
                Piece::Text(_) => None,
            })
        })
    }
}

/// Whether `name` can name a secret (and so appear in a template).
pub fn is_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// A step's HTTP: `doc` (the step's) over `base` (the workflow's
/// defaults, or the server's), field by field.
pub(super) fn compile(
    doc: Option<&HttpDoc>,
    at: &str,
    base: &Arc<StepHttp>,
    caps: &HttpCaps,
    problems: &mut Problems,
) -> Arc<StepHttp> {
    let Some(doc) = doc else { return base.clone() };
    let mut http = StepHttp::clone(base);
    // Headers are checked against the list only when it is whole: against
    // a list with bad entries every header would look outside it.
    let mut allow_whole = true;
    if let Some(allow) = &doc.allow {
        match compile_allow(allow, &format!("{at}.allow"), caps, problems) {
            Some(list) => http.allow = list,
            None => allow_whole = false,
        }
    }
    if let Some(limits) = &doc.limits {
        compile_limits(limits, &format!("{at}.limits"), &mut http.limits, caps, problems);
    }
    if let Some(headers) = &doc.headers {
        let allow = allow_whole.then_some(&http.allow);
        http.headers = compile_headers(headers, &format!("{at}.headers"), allow, problems);
    }
    Arc::new(http)
}

/// The step's allow-list; `None` when an entry is not valid (each one
/// reported).
fn compile_allow(
    allow: &Spanned<Vec<String>>,
    at: &str,
    caps: &HttpCaps,
    problems: &mut Problems,
) -> Option<AllowList> {
    let list = match AllowList::parse(&allow.value) {
        Ok(list) => list,
        Err(bad) => {
            for (i, why) in bad {
                problems.at(format!("{at}[{i}]"), allow, why);
            }
            return None;
        }
    };
    if let Some(cap) = &caps.allow
        && let Some(outside) = list.outside(cap)
    {
        problems.at(
            at,
            allow,
            format!("{outside:?} is outside what the tenant may reach (its http_allow quota)"),
        );
    }
    Some(list)
}

fn compile_limits(doc: &HttpLimitsDoc, at: &str, limits: &mut HttpLimits, caps: &HttpCaps, problems: &mut Problems) {
    if let Some(requests) = &doc.requests {
        if requests.value > caps.max.requests {
            let message = format!("requests must be at most {} (the tenant's cap)", caps.max.requests);
            problems.at(format!("{at}.requests"), requests, message);
        }
        limits.requests = requests.value;
    }
    for (name, given, target, max) in [
        ("sent", &doc.sent, &mut limits.sent, caps.max.sent),
        ("received", &doc.received, &mut limits.received, caps.max.received),
    ] {
        let Some(given) = given else { continue };
        match size(&given.value) {
            Ok(bytes) if bytes > max => {
                let max = bytesize::ByteSize::b(max).display().iec();
                problems.at(
                    format!("{at}.{name}"),
                    given,
                    format!("{name} must be at most {max} (the tenant's cap)"),
                );
            }
            Ok(bytes) => *target = bytes,
            Err(message) => problems.at(format!("{at}.{name}"), given, message),
        }
    }
    for (name, given, target) in [
        ("connect_timeout", &doc.connect_timeout, &mut limits.connect_timeout),
        ("request_timeout", &doc.request_timeout, &mut limits.request_timeout),
    ] {
        let Some(given) = given else { continue };
        if let Some(d) = duration(given, &format!("{at}.{name}"), problems) {
            if d.is_zero() {
                problems.at(format!("{at}.{name}"), given, format!("{name} must be more than 0"));
            }
            *target = d;
        }
    }
}

type HeaderDoc = Spanned<std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>>;

/// The header rules; each must be inside `allow` (when it is known).
fn compile_headers(doc: &HeaderDoc, at: &str, allow: Option<&AllowList>, problems: &mut Problems) -> Vec<HeaderRule> {
    let mut rules = Vec::new();
    for (pattern, headers) in &doc.value {
        let here = format!("{at}[{pattern:?}]");
        let on = match UrlPattern::parse(pattern) {
            Ok(on) => on,
            Err(why) => {
                problems.at(&here, doc, why);
                continue;
            }
        };
        if let Some(allow) = allow
            && AllowList::parse(&[pattern])
                .ok()
                .and_then(|list| list.outside(allow))
                .is_some()
        {
            problems.at(
                &here,
                doc,
                format!("{pattern:?} is not inside the step's http.allow, so its headers would never be sent"),
            );
        }
        for (name, template) in headers {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                problems.at(format!("{here}.{name}"), doc, format!("{name:?} is not a header name"));
                continue;
            };
            if wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(&header) {
                problems.at(
                    format!("{here}.{name}"),
                    doc,
                    format!("{name} is set by the host's HTTP client and cannot be set"),
                );
                continue;
            }
            match pieces(template) {
                Ok(value) => rules.push(HeaderRule {
                    on: on.clone(),
                    name: header,
                    value,
                }),
                Err(why) => problems.at(format!("{here}.{name}"), doc, why),
            }
        }
    }
    rules
}

/// A header template's pieces: text, and `${{ secrets.NAME }}`.
fn pieces(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("{template:?}: a `${{{{` has no `}}}}`"))?;
        let expr = after[..end].trim();
        match expr.strip_prefix("secrets.") {
            Some(name) if is_secret_name(name) => pieces.push(Piece::Secret(name.to_string())),
            _ => {
                return Err(format!(
                    "{template:?}: header values may only use ${{{{ secrets.NAME }}}}, not `{expr}`"
                ));
            }
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    // The text must make a valid header value on its own.
    for piece in &pieces {
        if let Piece::Text(text) = piece
            && HeaderValue::from_str(text).is_err()
        {
            return Err(format!("{template:?} is not a valid header value"));
        }
    }
    Ok(pieces)
}

/// The step's `secrets:` list, checked.
pub(super) fn compile_secrets(names: &[Spanned<String>], at: &str, problems: &mut Problems) -> Vec<String> {
    let mut secrets = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if !is_secret_name(&name.value) {
            problems.at(
                format!("{at}[{i}]"),
                name,
                format!(
                    "{:?} is not a secret name: a letter or `_`, then letters, digits and `_`",
                    name.value
                ),
            );
        } else if !secrets.contains(&name.value) {
            secrets.push(name.value.clone());
        }
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_templates_hold_text_and_secrets_only() {
        assert_eq!(
            pieces("Bearer ${{ secrets.pay_key }}").unwrap(),
            vec![Piece::Text("Bearer ".into()), Piece::Secret("pay_key".into())]
        );
        assert_eq!(
            pieces("${{secrets.a}}:${{ secrets.b }}").unwrap(),
            vec![
                Piece::Secret("a".into()),
                Piece::Text(":".into()),
                Piece::Secret("b".into())
            ]
        );
        assert!(pieces("${{ input.token }}").unwrap_err().contains("only use"));
        assert!(pieces("${{ secrets.x").unwrap_err().contains("has no"));
        assert!(pieces("a\nb").unwrap_err().contains("not a valid header value"));
    }
}
