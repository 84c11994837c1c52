//! The node's ear: one connection that `LISTEN`s on the cluster's
//! channels and turns each notification into a [`Notice`].
//!
//! Channels: `weft_work` (runs may wait for a node), `weft_events`
//! (`run:seq,...`, runs that advanced), `weft_names` (cached lookups went
//! stale), `weft_runs` (`moved RUN BY`, a run taken over). When the
//! connection drops, notifications sent meanwhile are lost: the listener
//! says so ([`Notice::Missed`], then [`Notice::Work`]) once it listens
//! again, and whoever waits on one looks at the store instead.

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config};

use super::{describe, tls};
use crate::model::RunId;
use crate::store::cluster::Notice;

const CHANNELS: &str = "LISTEN weft_work; LISTEN weft_events; LISTEN weft_names; LISTEN weft_runs";

/// Listens until every receiver of `notices` is gone.
pub(super) async fn run(config: Config, tls: tls::Connector, notices: broadcast::Sender<Notice>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        match listen(&config, &tls, &notices, &mut first).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?backoff, "the cluster's notices are cut off");
                if notices.send(Notice::Missed).is_err() && notices.receiver_count() == 0 {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One connection's worth of listening; `Ok` when nobody listens any more.
async fn listen(
    config: &Config,
    tls: &tls::Connector,
    notices: &broadcast::Sender<Notice>,
    first: &mut bool,
) -> Result<(), String> {
    let (client, mut connection) = config.connect(tls.clone()).await.map_err(|e| describe(&e))?;
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if heard.send((n.channel().to_string(), n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "the listening connection ended");
                    return;
                }
            }
        }
    });
    client.batch_execute(CHANNELS).await.map_err(|e| describe(&e))?;
    if !std::mem::take(first) {
        // What was said while nobody listened is lost.
        let _ = notices.send(Notice::Missed);
        let _ = notices.send(Notice::Work);
    }
    while let Some((channel, payload)) = hearing.recv().await {
        if let Some(notice) = parse(&channel, &payload)
            && notices.send(notice).is_err()
            && notices.receiver_count() == 0
        {
            driver.abort();
            return Ok(());
        }
    }
    drop(client);
    Err("the listening connection ended".into())
}

/// A notification as a notice; `None` for one that does not parse.
fn parse(channel: &str, payload: &str) -> Option<Notice> {
    match channel {
        "weft_work" => Some(Notice::Work),
        "weft_names" => Some(Notice::Names),
        "weft_events" => {
            let advanced = payload
                .split(',')
                .filter_map(|entry| {
                    let (run, seq) = entry.split_once(':')?;
                    Some((RunId(run.parse().ok()?), seq.parse().ok()?))
                })
                .collect();
            Some(Notice::Advanced(advanced))
        }
        "weft_runs" => {
            let mut words = payload.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("moved"), Some(run), Some(by)) => Some(Notice::Moved {
                    run: RunId(run.parse().ok()?),
                    by: by.parse().ok()?,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse_into_notices() {
        assert_eq!(
            parse("weft_events", "12:3,7:0"),
            Some(Notice::Advanced(vec![(RunId(12), 3), (RunId(7), 0)]))
        );
        assert_eq!(
            parse("weft_runs", "moved 12 4"),
            Some(Notice::Moved { run: RunId(12), by: 4 })
        );
        assert_eq!(parse("weft_runs", "moved x 4"), None);
        assert_eq!(parse("weft_work", "dead"), Some(Notice::Work));
        assert_eq!(parse("elsewhere", ""), None);
    }
}
