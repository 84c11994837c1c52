//! The grammar of allow-lists (docs/architecture.md, "Outbound HTTP"):
//! which URLs a step may request, and which private addresses those URLs
//! may resolve to.
//!
//! An entry is either a URL pattern, `scheme://host[:port][/path-prefix]`
//! (the host exact, an IP literal, or `*.` and a domain for any one label
//! in front of it), or an address or range without a scheme (`10.0.0.0/8`,
//! `127.0.0.1`), which allows no URL by itself.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

const LABEL: &str = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
const IPV4: &str =
    "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?:\\.(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}";
const PORT: &str = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
const SEGMENT: &str = "[A-Za-z0-9._~-]*[A-Za-z0-9_~-][A-Za-z0-9._~-]*";

/// The entries of a tenant's `http_allow` quota, as a regular expression
/// (ECMA-262 and Rust's `regex` alike): a subset of what
/// [`AllowList::parse`] reads (no IPv6, no trailing dots, no
/// percent-encoding), so that the API can declare it in its schema and a
/// client can know an entry is good before sending it.
pub fn quota_entry_pattern() -> String {
    format!(
        "^(?:https?://(?:\\*\\.{LABEL}(?:\\.{LABEL})+|{LABEL}(?:\\.{LABEL})*)(?::{PORT})?(?:/{SEGMENT})*/?|{IPV4}(?:/(?:3[0-2]|[12]?[0-9]))?)$"
    )
}

/// `http` or `https`: nothing else is ever requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    /// The port a URL without one means.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// A name, lowercase, without a trailing dot.
    Name(String),
    /// `*.` and this suffix: any one label in front of it.
    AnyLabelOf(String),
    /// An IP literal.
    Ip(IpAddr),
}

/// One URL pattern of an allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    scheme: Scheme,
    host: Host,
    port: u16,
    /// Path segments the request's path must start with (none: any path).
    segments: Vec<String>,
    /// As written, for messages.
    text: String,
}

/// Where a request goes, as the allow-list sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its scheme.
    pub scheme: Scheme,
    /// Its host: a lowercase name without a trailing dot, or an IP literal
    /// (IPv6 without brackets).
    pub host: String,
    /// The host as an address, when it is an IP literal.
    pub ip: Option<IpAddr>,
    /// Its port (the scheme's default when the URL has none).
    pub port: u16,
    /// Its path, without the query.
    pub path: String,
}

impl Target {
    /// The target of a request URI, or why it cannot be requested.
    pub fn of(uri: &http::Uri) -> Result<Target, String> {
        let scheme = uri
            .scheme_str()
            .and_then(Scheme::parse)
            .ok_or_else(|| "only http and https URLs can be requested".to_string())?;
        let authority = uri.authority().ok_or("the URL has no host")?;
        if authority.as_str().contains('@') {
            return Err("URLs with a user name or password are refused".into());
        }
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let ip = host.parse::<IpAddr>().ok();
        let path = uri.path().to_string();
        if has_dot_segment(&path) {
            return Err(format!("the path {path:?} has a `.` or `..` segment"));
        }
        Ok(Target {
            scheme,
            port: authority.port_u16().unwrap_or(scheme.default_port()),
            host,
            ip,
            path,
        })
    }

    /// `scheme://host:port/path`, for messages and records (no query).
    pub fn url(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        match self.port == self.scheme.default_port() {
            true => format!("{}://{host}{}", self.scheme, self.path),
            false => format!("{}://{host}:{}{}", self.scheme, self.port, self.path),
        }
    }
}

/// A segment that is `.` or `..`, written plainly or percent-encoded,
/// which a server might resolve to a path the pattern does not allow.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    }) || path.to_ascii_lowercase().contains("%2f")
        || path.contains('\\')
}

impl UrlPattern {
    /// Parses `scheme://host[:port][/path-prefix]`.
    pub fn parse(text: &str) -> Result<UrlPattern, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("{text:?} has no scheme (write https://{text})"))?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| format!("{text:?}: the scheme must be http or https"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(format!("{text:?}: a pattern cannot hold a user name or password"));
        }
        if path.contains(['?', '#', '*']) {
            return Err(format!(
                "{text:?}: a path prefix cannot hold `?`, `#` or `*` (queries are not matched; the prefix is matched segment by segment)"
            ));
        }
        let (host, port) = split_port(authority).map_err(|why| format!("{text:?}: {why}"))?;
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let host = if let Some(suffix) = host.strip_prefix("*.") {
            if !is_domain(suffix) || !suffix.contains('.') {
                return Err(format!(
                    "{text:?}: a wildcard must stand for the first label of a domain with at least two labels, as in *.example.org"
                ));
            }
            Host::AnyLabelOf(suffix.to_string())
        } else if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Host::Ip(ip)
        } else if is_domain(&host) {
            Host::Name(host)
        } else {
            return Err(format!("{text:?}: {host:?} is not a host name"));
        };
        if has_dot_segment(path) {
            return Err(format!("{text:?}: the path has a `.` or `..` segment"));
        }
        Ok(UrlPattern {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
            segments: segments(path),
            text: text.to_string(),
        })
    }

    /// Whether a request to `target` is allowed by this pattern.
    pub fn matches(&self, target: &Target) -> bool {
        self.scheme == target.scheme
            && self.port == target.port
            && match &self.host {
                Host::Name(name) => target.ip.is_none() && *name == target.host,
                Host::AnyLabelOf(suffix) => {
                    target.ip.is_none()
                        && target
                            .host
                            .strip_suffix(suffix.as_str())
                            .and_then(|label| label.strip_suffix('.'))
                            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
                }
                Host::Ip(ip) => target.ip == Some(*ip),
            }
            && segments(&target.path).starts_with(&self.segments)
    }

    /// Whether everything this pattern allows, `wider` allows too.
    pub fn within(&self, wider: &UrlPattern) -> bool {
        self.scheme == wider.scheme
            && self.port == wider.port
            && self.segments.starts_with(&wider.segments)
            && match (&self.host, &wider.host) {
                (Host::AnyLabelOf(mine), Host::AnyLabelOf(theirs)) => mine == theirs,
                (Host::AnyLabelOf(_), _) => false,
                (Host::Name(name), Host::AnyLabelOf(suffix)) => name
                    .strip_suffix(suffix.as_str())
                    .and_then(|label| label.strip_suffix('.'))
                    .is_some_and(|label| !label.is_empty() && !label.contains('.')),
                (mine, theirs) => mine == theirs,
            }
    }

    /// The address this pattern names, for an IP-literal host.
    fn ip(&self) -> Option<IpAddr> {
        match self.host {
            Host::Ip(ip) => Some(ip),
            _ => None,
        }
    }
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A parsed allow-list: the URLs it allows and the private addresses it
/// names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    urls: Vec<UrlPattern>,
    ranges: Vec<IpNet>,
}

impl AllowList {
    /// Parses every entry; the problems, each with its entry's index.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, Vec<(usize, String)>> {
        let mut list = AllowList::default();
        let mut problems = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref().trim();
            if entry.contains("://") {
                match UrlPattern::parse(entry) {
                    Ok(pattern) => list.urls.push(pattern),
                    Err(why) => problems.push((i, why)),
                }
            } else if let Some(range) = parse_range(entry) {
                list.ranges.push(range);
            } else {
                problems.push((
                    i,
                    format!(
                        "{entry:?} is neither a URL pattern (https://api.example.com[:port][/prefix]) nor an address or range (10.0.0.0/8)"
                    ),
                ));
            }
        }
        if problems.is_empty() { Ok(list) } else { Err(problems) }
    }

    /// Whether it allows nothing.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The pattern allowing `target`, if any.
    pub fn allowing(&self, target: &Target) -> Option<&UrlPattern> {
        self.urls.iter().find(|pattern| pattern.matches(target))
    }

    /// Whether it names `ip` explicitly: an IP-literal pattern of that
    /// address, or a range holding it.
    pub fn names(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.urls.iter().any(|pattern| pattern.ip().map(canonical) == Some(ip))
            || self.ranges.iter().any(|range| range.contains(&ip))
    }

    /// The entries of this list that `cap` allows: a step's list under
    /// its tenant's list as it is now, which may have narrowed since the
    /// workflow was pushed.
    pub fn inside(&self, cap: &AllowList) -> AllowList {
        AllowList {
            urls: self
                .urls
                .iter()
                .filter(|pattern| cap.urls.iter().any(|wider| pattern.within(wider)))
                .cloned()
                .collect(),
            ranges: self
                .ranges
                .iter()
                .filter(|range| {
                    let single = AllowList {
                        urls: Vec::new(),
                        ranges: vec![**range],
                    };
                    single.outside(cap).is_none()
                })
                .copied()
                .collect(),
        }
    }

    /// The first entry of this list that `cap` does not allow, written as
    /// it was: a list is within its cap when every URL pattern is within
    /// one of the cap's and every range within one of the cap's ranges.
    pub fn outside(&self, cap: &AllowList) -> Option<String> {
        for pattern in &self.urls {
            if !cap.urls.iter().any(|wider| pattern.within(wider)) {
                return Some(pattern.text.clone());
            }
        }
        for range in &self.ranges {
            let covered = cap.ranges.iter().any(|wider| wider.contains(range))
                || cap
                    .urls
                    .iter()
                    .filter_map(UrlPattern::ip)
                    .any(|ip| range.prefix_len() == range.max_prefix_len() && canonical(ip) == range.addr());
            if !covered {
                return Some(range.to_string());
            }
        }
        None
    }
}

/// An address (`127.0.0.1`, `::1`) or a range (`10.0.0.0/8`).
fn parse_range(text: &str) -> Option<IpNet> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net.trunc());
    }
    text.parse::<IpAddr>().ok().map(|ip| IpNet::from(canonical(ip)))
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`) are IPv4 addresses.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn split_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address needs its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("{port:?} is not a port"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

fn is_domain(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::of(&url.parse().unwrap()).unwrap()
    }

    fn allows(pattern: &str, url: &str) -> bool {
        UrlPattern::parse(pattern).unwrap().matches(&target(url))
    }

    #[test]
    fn exact_hosts_default_ports_and_path_prefixes() {
        assert!(allows("https://api.example.com", "https://api.example.com/charge?x=1"));
        assert!(allows("https://API.example.com.", "https://api.EXAMPLE.com:443/"));
        assert!(!allows("https://api.example.com", "http://api.example.com/"));
        assert!(!allows("https://api.example.com", "https://api.example.com:8443/"));
        assert!(!allows("https://api.example.com", "https://evil-api.example.com/"));
        assert!(allows("https://x.org:8443/v1/", "https://x.org:8443/v1/pay"));
        assert!(allows("https://x.org:8443/v1", "https://x.org:8443/v1"));
        assert!(!allows("https://x.org:8443/v1", "https://x.org:8443/v10"));
        assert!(!allows("https://x.org/v1", "https://x.org/"));
    }

    #[test]
    fn a_wildcard_stands_for_one_label() {
        assert!(allows("https://*.example.org", "https://a.example.org/"));
        assert!(!allows("https://*.example.org", "https://example.org/"));
        assert!(!allows("https://*.example.org", "https://a.b.example.org/"));
        assert!(!allows("https://*.example.org", "https://aexample.org/"));
        assert!(UrlPattern::parse("https://*.org").is_err());
        assert!(UrlPattern::parse("https://a.*.org").is_err());
    }

    #[test]
    fn ip_literals_match_only_themselves() {
        assert!(allows("http://127.0.0.1:8080", "http://127.0.0.1:8080/x"));
        assert!(!allows("http://127.0.0.1:8080", "http://localhost:8080/x"));
        assert!(allows("http://[::1]:80", "http://[::1]/"));
    }

    #[test]
    fn dot_segments_encoded_slashes_and_user_info_are_refused() {
        for url in [
            "https://x.org/v1/../admin",
            "https://x.org/v1/%2e%2E/admin",
            "https://x.org/v1/./a",
            "https://x.org/v1%2fadmin",
            "https://user:pw@x.org/",
        ] {
            assert!(Target::of(&url.parse().unwrap()).is_err(), "{url}");
        }
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        assert!(UrlPattern::parse("api.example.com").unwrap_err().contains("no scheme"));
        assert!(UrlPattern::parse("ftp://x.org").unwrap_err().contains("http or https"));
        assert!(UrlPattern::parse("https://x.org:99999").unwrap_err().contains("port"));
        assert!(UrlPattern::parse("https://x.org/a?b").unwrap_err().contains("queries"));
        let problems = AllowList::parse(&["https://ok.org", "nonsense"]).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, 1);
    }

    #[test]
    fn a_list_within_its_cap() {
        let cap = AllowList::parse(&["https://*.example.org", "https://api.x.com/v1", "10.0.0.0/8"]).unwrap();
        let inside =
            AllowList::parse(&["https://pay.example.org/v2", "https://api.x.com/v1/a", "10.1.0.0/16"]).unwrap();
        assert_eq!(inside.outside(&cap), None);
        for wider in [
            "https://*.x.com",
            "https://api.x.com",
            "http://pay.example.org",
            "11.0.0.0/8",
        ] {
            let list = AllowList::parse(&[wider]).unwrap();
            assert_eq!(list.outside(&cap).as_deref(), Some(wider), "{wider}");
        }
        // Narrowed to a cap: only what the cap allows is kept.
        let asked = AllowList::parse(&[
            "https://pay.example.org",
            "https://api.x.com",
            "10.1.0.0/16",
            "11.0.0.1",
        ])
        .unwrap();
        let kept = asked.inside(&cap);
        assert_eq!(
            kept,
            AllowList::parse(&["https://pay.example.org", "10.1.0.0/16"]).unwrap()
        );
        assert!(asked.inside(&AllowList::default()).is_empty());
    }

    #[test]
    fn the_quota_pattern_admits_only_what_parses() {
        let pattern = regex::Regex::new(&quota_entry_pattern()).unwrap();
        for good in [
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.example.org:8443/v1/",
            "10.0.0.0/8",
            "192.168.1.7",
        ] {
            assert!(pattern.is_match(good), "{good}");
            assert!(AllowList::parse(&[good]).is_ok(), "{good}");
        }
        for bad in [
            "",
            "https://*.org",
            "https://x.org/../a",
            "https://x.org:0",
            "https://x.org:65536",
            "10.0.0.0/33",
            "ftp://x.org",
            "https://-x.org",
        ] {
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn names_addresses_and_ranges_only() {
        let list = AllowList::parse(&["http://127.0.0.1:9", "10.0.0.0/8", "https://x.org"]).unwrap();
        assert!(list.names("127.0.0.1".parse().unwrap()));
        assert!(list.names("::ffff:127.0.0.1".parse().unwrap()));
        assert!(list.names("10.2.3.4".parse().unwrap()));
        assert!(!list.names("127.0.0.2".parse().unwrap()));
        assert!(!list.names("192.168.1.1".parse().unwrap()));
    }
}
