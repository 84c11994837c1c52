//! Reopening an ended run from the store: a retry of what failed, or a
//! reset from a step that succeeded (docs/architecture.md, "Pause and
//! reset").

use super::Actor;
use crate::engine::EngineError;
use crate::engine::run_state::{ActiveRun, Effects};
use crate::model::{Millis, RunId, RunStatus};

impl Actor {
    /// Reopens an ended run from the store: retries it (`from` is
    /// `None`: a failed or cancelled run), or resets it to run again from
    /// step `from`.
    pub(super) async fn restart(&mut self, id: RunId, from: Option<&str>, now: Millis) -> Result<Effects, EngineError> {
        let refuse = |reason: String| match from {
            None => EngineError::CannotRetry { run: id, reason },
            Some(_) => EngineError::CannotReset { run: id, reason },
        };
        if self.runs.contains_key(&id) || self.parked.contains(&id) {
            return Err(refuse("it is still running".into()));
        }
        let record = self.shared.store.run(id).await?.ok_or(EngineError::UnknownRun(id))?;
        match (from, record.status) {
            (_, RunStatus::Running) => return Err(refuse("it is still running".into())),
            (None, RunStatus::Succeeded) => {
                return Err(refuse(
                    "it succeeded; only failed or cancelled runs can be retried (reset it to run steps again)".into(),
                ));
            }
            _ => {}
        }
        let stored = match self.take_over(id).await? {
            Some(stored) => stored,
            None => self.read_rest(record).await?,
        };
        let (run, fx) = match from {
            None => ActiveRun::retry(stored, now),
            Some(from) => ActiveRun::reset(stored, from, now),
        }
        .map_err(refuse)?;
        self.insert(run);
        Ok(fx)
    }
}
