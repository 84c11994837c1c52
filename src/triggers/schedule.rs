//! What a schedule is: a cron expression read in a time zone, the
//! workflow and input it starts, and its overlap and catch-up policies;
//! and the state the scheduler keeps beside it (`scheduler.rs`).
//!
//! Cron expressions and their instants come from `croner` (five fields,
//! or six with seconds first), time zones and their daylight-saving
//! rules from `chrono-tz`; weft keeps no calendar code.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::Millis;

/// What a later fire does while the run of an earlier one is unfinished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Starts nothing; the fire is counted as skipped.
    #[default]
    Skip,
    /// Keeps the newest such fire and starts it when the run ends.
    BufferOne,
    /// Starts anyway.
    Allow,
}

/// What happens to instants that passed while no node could fire them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Nothing: missed instants are counted and dropped.
    #[default]
    Skip,
    /// The most recent missed instant fires, once.
    Latest,
}

/// A schedule as its owner writes it (`PUT /v1/schedules/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// When it fires: five cron fields (minute hour day-of-month month
    /// day-of-week), or six with seconds first; `@daily` and the like too.
    #[schema(min_length = 1, max_length = 256, example = "0 2 * * *")]
    pub cron: String,
    /// The IANA time zone the expression is read in; `UTC` by default.
    /// Daylight-saving changes follow the zone's rules.
    #[serde(default = "utc")]
    #[schema(min_length = 1, max_length = 64, example = "Europe/Paris")]
    pub timezone: String,
    /// The workflow each fire starts a run of (its newest definition).
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub workflow: String,
    /// The runs' input, checked against the workflow's `input_schema`.
    #[serde(default)]
    pub input: Map<String, Value>,
    /// What a fire does while the previous fire's run is unfinished.
    #[serde(default)]
    pub overlap: Overlap,
    /// What happens to instants missed while no node ran (see `grace`).
    #[serde(default)]
    pub catch_up: CatchUp,
    /// How late an instant may be seen and still fire as usual, as a
    /// duration (`30s`, `5m`); later, it counts as missed. 1 minute by
    /// default, at least 1 second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, example = "1m")]
    pub grace: Option<String>,
    /// A paused schedule fires nothing until resumed.
    #[serde(default)]
    pub paused: bool,
}

fn utc() -> String {
    "UTC".into()
}

/// The default [`ScheduleSpec::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// The most instants one pass fires for one schedule; more on-time
/// instants than this at once (a per-second schedule after a pause of
/// the process) are counted as missed.
const MAX_FIRES_AT_ONCE: usize = 10;
/// The most past instants one pass walks through.
const MAX_WALK: usize = 100_000;

/// What the scheduler keeps of a schedule between fires.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleState {
    /// The next instant it fires at (ms since the epoch).
    pub next_fire: Option<Millis>,
    /// The last instant it fired at.
    #[serde(default)]
    pub last_fire: Option<Millis>,
    /// The run the last fire started.
    #[serde(default)]
    pub last_run: Option<u64>,
    /// A fire kept by `overlap: buffer_one`, to start when the last run
    /// ends.
    #[serde(default)]
    pub buffered: Option<Millis>,
    /// Fires decided but whose runs may not be started yet: any node
    /// starts them, each keyed by its instant, once `claimed_at` is old.
    #[serde(default)]
    pub firing: Vec<Millis>,
    /// When `firing` was decided.
    #[serde(default)]
    pub claimed_at: Option<Millis>,
    /// Runs started.
    #[serde(default)]
    pub fired: u64,
    /// Fires that started nothing because the last run was unfinished.
    #[serde(default)]
    pub skipped: u64,
    /// Instants missed and not caught up.
    #[serde(default)]
    pub missed: u64,
    /// Why the last start failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the schedule was first set.
    pub created_at: Millis,
    /// When its definition last changed.
    pub updated_at: Millis,
}

/// A schedule with its state, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSchedule {
    /// As written.
    pub spec: ScheduleSpec,
    /// As the scheduler keeps it.
    pub state: ScheduleState,
}

impl StoredSchedule {
    /// Writes it as `tenant`'s schedule `name`, durably, if the stored one
    /// is as `expect` says; its new revision, or `None` when it is not.
    pub async fn put(
        &self,
        store: &dyn crate::store::Store,
        tenant: &str,
        name: &str,
        expect: crate::store::Expect,
    ) -> Result<Option<u64>, crate::store::StoreError> {
        let value = serde_json::to_value(self)
            .map_err(|e| crate::store::StoreError::Storage(format!("a schedule does not encode: {e}")))?;
        store
            .put_object(crate::store::ObjectKind::Schedule, tenant, name, &value, expect)
            .await
    }
}

/// A schedule that does not hold: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    /// The field at fault.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

fn refuse(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        message: message.into(),
    }
}

/// A schedule's expression and zone, ready to find instants.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    zone: Tz,
    grace: Duration,
}

impl ScheduleSpec {
    /// Checks the expression, the zone and the grace; the workflow and
    /// input are checked by the caller, who has the store.
    pub fn timing(&self) -> Result<Timing, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(self.cron.trim())
            .map_err(|e| {
                refuse(
                    "cron",
                    format!(
                        "{:?} is not a cron expression ({e}): write five fields (minute hour day-of-month month \
                         day-of-week), six with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly",
                        self.cron
                    ),
                )
            })?;
        let zone = Tz::from_str(&self.timezone).map_err(|_| {
            refuse(
                "timezone",
                format!(
                    "{:?} is not an IANA time zone: write one like UTC, Europe/Paris or America/New_York",
                    self.timezone
                ),
            )
        })?;
        let grace = match &self.grace {
            None => DEFAULT_GRACE,
            Some(text) => {
                let grace = humantime::parse_duration(text)
                    .map_err(|e| refuse("grace", format!("{text:?} is not a duration like 30s or 5m: {e}")))?;
                if grace < Duration::from_secs(1) {
                    return Err(refuse("grace", format!("{text:?} is under the least, 1s")));
                }
                grace
            }
        };
        let timing = Timing { cron, zone, grace };
        if timing.after(0).is_none() {
            return Err(refuse("cron", format!("{:?} never fires", self.cron)));
        }
        Ok(timing)
    }
}

impl Timing {
    /// The first instant strictly after `at`, if there is one.
    pub fn after(&self, at: Millis) -> Option<Millis> {
        let start = self.zone.from_utc_datetime(&utc_of(at)?.naive_utc());
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }

    /// The next `n` instants strictly after `at`, as RFC 3339 times in
    /// the schedule's zone.
    pub fn upcoming(&self, at: Millis, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        let mut from = at;
        while out.len() < n {
            let Some(next) = self.after(from) else { break };
            if let Some(time) = utc_of(next) {
                out.push(time.with_timezone(&self.zone).to_rfc3339());
            }
            from = next;
        }
        out
    }

    /// How late an instant may be seen and still fire as usual.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// What is due at `now` for a schedule whose next instant is
    /// `next_fire`: the instants to fire, how many were missed, and the
    /// next instant after `now`.
    pub fn due(&self, next_fire: Millis, now: Millis, catch_up: CatchUp) -> Due {
        let grace = self.grace.as_millis() as u64;
        let mut on_time = Vec::new();
        let mut latest_missed = None;
        let mut missed = 0u64;
        let mut at = Some(next_fire);
        let mut walked = 0usize;
        while let Some(instant) = at.filter(|&i| i <= now) {
            if now - instant <= grace && on_time.len() < MAX_FIRES_AT_ONCE {
                on_time.push(instant);
            } else {
                latest_missed = Some(instant);
                missed += 1;
            }
            walked += 1;
            if walked >= MAX_WALK {
                // A per-second schedule after a day's downtime: count no
                // further, and go on from now.
                break;
            }
            at = self.after(instant);
        }
        let fire = match latest_missed {
            Some(latest) if on_time.is_empty() && catch_up == CatchUp::Latest => {
                missed -= 1;
                vec![latest]
            }
            _ => on_time,
        };
        Due {
            fire,
            missed,
            next: self.after(now),
        }
    }
}

/// What [`Timing::due`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The instants to fire, oldest first.
    pub fire: Vec<Millis>,
    /// Instants dropped (missed, not caught up).
    pub missed: u64,
    /// The next instant after now.
    pub next: Option<Millis>,
}

fn utc_of(at: Millis) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(i64::try_from(at).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cron: &str, zone: &str) -> ScheduleSpec {
        ScheduleSpec {
            cron: cron.into(),
            timezone: zone.into(),
            workflow: "w".into(),
            input: Map::new(),
            overlap: Overlap::Skip,
            catch_up: CatchUp::Skip,
            grace: Some("2s".into()),
            paused: false,
        }
    }

    fn ms(rfc3339: &str) -> Millis {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis() as Millis
    }

    #[test]
    fn instants_follow_the_zone_across_a_daylight_saving_change() {
        let timing = spec("0 2 * * *", "Europe/Paris").timing().unwrap();
        // 02:00 Paris is 01:00 UTC in winter, 00:00 UTC in summer.
        assert_eq!(
            timing.after(ms("2026-01-10T12:00:00Z")),
            Some(ms("2026-01-11T01:00:00Z"))
        );
        assert_eq!(
            timing.after(ms("2026-07-10T12:00:00Z")),
            Some(ms("2026-07-11T00:00:00Z"))
        );
        assert_eq!(
            timing.upcoming(ms("2026-01-10T12:00:00Z"), 2),
            ["2026-01-11T02:00:00+01:00", "2026-01-12T02:00:00+01:00"]
        );
    }

    #[test]
    fn bad_expressions_zones_and_graces_name_their_field() {
        assert_eq!(spec("61 * * * *", "UTC").timing().unwrap_err().field, "cron");
        assert_eq!(spec("* * *", "UTC").timing().unwrap_err().field, "cron");
        assert_eq!(
            spec("* * * * *", "Mars/Olympus").timing().unwrap_err().field,
            "timezone"
        );
        let mut short = spec("* * * * *", "UTC");
        short.grace = Some("10ms".into());
        assert_eq!(short.timing().unwrap_err().field, "grace");
        assert!(
            spec("*/5 * * * * *", "UTC").timing().is_ok(),
            "six fields: seconds first"
        );
        assert!(spec("@daily", "UTC").timing().is_ok());
    }

    #[test]
    fn due_fires_on_time_instants_and_catches_up_per_policy() {
        let timing = spec("*/10 * * * * *", "UTC").timing().unwrap();
        let t0 = ms("2026-12-04T10:00:00Z");
        // On time: the instant seen within the grace fires.
        let due = timing.due(t0, t0 + 500, CatchUp::Skip);
        assert_eq!(due.fire, [t0]);
        assert_eq!((due.missed, due.next), (0, Some(t0 + 10_000)));
        // Seen a minute late: six instants missed.
        let now = t0 + 55_000;
        let skip = timing.due(t0, now, CatchUp::Skip);
        assert_eq!((skip.fire.len(), skip.missed, skip.next), (0, 6, Some(t0 + 60_000)));
        let latest = timing.due(t0, now, CatchUp::Latest);
        assert_eq!((latest.fire, latest.missed), (vec![t0 + 50_000], 5));
        // Late instants before an on-time one: the on-time one fires,
        // whatever the policy.
        let now = t0 + 51_000;
        let due = timing.due(t0, now, CatchUp::Latest);
        assert_eq!((due.fire, due.missed), (vec![t0 + 50_000], 5));
        // Nothing due yet.
        let due = timing.due(t0, t0 - 1, CatchUp::Latest);
        assert_eq!((due.fire.len(), due.missed, due.next), (0, 0, Some(t0)));
    }
}
