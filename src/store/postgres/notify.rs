//! The node's voice: what its commits did, told to every node with
//! `NOTIFY`, a few times a second at most rather than once per commit.
//!
//! PostgreSQL takes one database-wide lock for every transaction that
//! notifies, until it has committed. Notifying in (or right after) every
//! group commit made the nodes of a cluster take turns: the cluster bench
//! measured three nodes doing half the work of one, and the same three
//! nodes without notifications doing as much as one. So the writer hands
//! its notices to this task, which gathers what arrives within
//! [`GATHER`], merges it (each run once, at its newest event), and sends
//! it as one statement on a pooled connection, in a transaction that does
//! not wait for a flush (notifications are not durable anyway). A notice
//! lost here, because the database is unreachable or the node dies, is
//! made up for by the nodes' once-a-second look.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::fence::MAX_PAYLOAD;

/// How long notices are gathered before they are sent.
const GATHER: Duration = Duration::from_millis(20);

const NOTIFY: &str = "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true))
    SELECT pg_notify(c, p) FROM quick, UNNEST($1::text[], $2::text[]) AS x(c, p)";

/// What a commit has to tell.
#[derive(Debug, Default)]
pub(super) struct Notices {
    /// Runs advanced, each to this event.
    pub advanced: Vec<(u64, u32)>,
    /// A run was stored without a lease: any node may claim it.
    pub work: bool,
    /// What a name, a key or a tenant means changed.
    pub names: bool,
}

impl Notices {
    pub(super) fn is_empty(&self) -> bool {
        self.advanced.is_empty() && !self.work && !self.names
    }
}

/// Sends the notices it is given until every sender is gone.
pub(super) async fn run(pool: deadpool_postgres::Pool, mut given: mpsc::UnboundedReceiver<Notices>) {
    while let Some(first) = given.recv().await {
        tokio::time::sleep(GATHER).await;
        let mut newest: HashMap<u64, u32> = HashMap::new();
        let (mut work, mut names) = (false, false);
        let mut take = |notices: Notices| {
            for (run, seq) in notices.advanced {
                let at = newest.entry(run).or_insert(seq);
                *at = (*at).max(seq);
            }
            work |= notices.work;
            names |= notices.names;
        };
        take(first);
        while let Ok(more) = given.try_recv() {
            take(more);
        }
        let mut channels = Vec::new();
        let mut payloads = Vec::new();
        for payload in payloads_of(newest) {
            channels.push("weft_events");
            payloads.push(payload);
        }
        for (wanted, channel) in [(work, "weft_work"), (names, "weft_names")] {
            if wanted {
                channels.push(channel);
                payloads.push(String::new());
            }
        }
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let statement = client.prepare_cached(NOTIFY).await.map_err(|e| e.to_string())?;
            client
                .execute(&statement, &[&channels, &payloads])
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = sent.await {
            tracing::debug!(error = %e, "cannot notify the other nodes; they will look again within a second");
        }
    }
}

/// `run:seq` entries, comma-separated, in payloads of at most
/// [`MAX_PAYLOAD`] bytes.
fn payloads_of(newest: HashMap<u64, u32>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut payload = String::new();
    for (run, seq) in newest {
        let entry = format!("{run}:{seq}");
        if !payload.is_empty() && payload.len() + entry.len() + 1 > MAX_PAYLOAD {
            payloads.push(std::mem::take(&mut payload));
        }
        if !payload.is_empty() {
            payload.push(',');
        }
        payload.push_str(&entry);
    }
    if !payload.is_empty() {
        payloads.push(payload);
    }
    payloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_hold_each_run_once_and_stay_under_the_limit() {
        let newest: HashMap<u64, u32> = (0..2000u64).map(|run| (run + 1_000_000, 7)).collect();
        let payloads = payloads_of(newest);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_PAYLOAD));
        assert_eq!(payloads.iter().map(|p| p.split(',').count()).sum::<usize>(), 2000);
        assert_eq!(payloads_of(HashMap::from([(12, 3)])), ["12:3"]);
    }
}
