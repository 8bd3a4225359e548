//! Wake-ups across replicas: a dedicated connection `LISTEN`s on `baton_work` and
//! `baton_run` and turns each notification into a [`StoreEvent`] on a broadcast channel.
//!
//! Write transactions send the notifications themselves (delivered when they commit), so
//! a node made ready through one replica wakes the claims held by every other. When the
//! connection drops, the listener reconnects with a capped exponential back-off and then
//! sends one [`StoreEvent::Work`]: notifications sent while it was away are lost, so every
//! held claim must look again.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Config};

use super::tls::PgTls;
use crate::StoreEvent;

/// Channel for "nodes may have become claimable, or agents have attempts to cancel".
pub(crate) const WORK_CHANNEL: &str = "baton_work";
/// Channel for "this run changed"; the payload is the run id.
pub(crate) const RUN_CHANNEL: &str = "baton_run";

/// Events buffered per receiver; one that falls further behind sees `Lagged` and should
/// treat it as "look at everything again".
pub(crate) const CAPACITY: usize = 1024;

/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often an idle listening connection is checked, so a dead one (a peer that vanished
/// without closing the socket) is noticed.
const PING_EVERY: Duration = Duration::from_secs(10);

/// Listens until the store is dropped (the task is aborted then), reconnecting as needed.
pub(crate) async fn listen(mut config: Config, tls: PgTls, events: broadcast::Sender<StoreEvent>) {
    let name = format!(
        "{}-listen",
        config.get_application_name().unwrap_or("baton")
    );
    config.application_name(name);
    let mut backoff = BACKOFF_MIN;
    let mut connected_before = false;
    loop {
        match listen_once(&config, &tls, &events, connected_before).await {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "database listener disconnected");
            }
        }
        connected_before = true;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: connect, `LISTEN`, forward notifications until it fails.
/// Returns `Ok` when the server closed the connection.
async fn listen_once(
    config: &Config,
    tls: &PgTls,
    events: &broadcast::Sender<StoreEvent>,
    reconnected: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut conn) = config.connect(tls.clone()).await?;
    let sql = format!("LISTEN {WORK_CHANNEL}; LISTEN {RUN_CHANNEL}");
    let subscribe = client.batch_execute(&sql);
    tokio::pin!(subscribe);
    // The connection only makes progress while polled, so drive it until LISTEN is done.
    loop {
        tokio::select! {
            done = &mut subscribe => { done?; break; }
            msg = std::future::poll_fn(|cx| conn.poll_message(cx)) => match msg {
                Some(Ok(m)) => forward(events, m),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
    if reconnected {
        tracing::info!("database listener reconnected");
        // Whatever was sent while away is lost: everyone must look again.
        let _ = events.send(StoreEvent::Work);
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = std::future::poll_fn(|cx| conn.poll_message(cx)) => match msg {
                Some(Ok(m)) => forward(events, m),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = ping.tick() => {
                let check = client.simple_query("");
                tokio::pin!(check);
                let deadline = tokio::time::sleep(PING_EVERY);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        done = &mut check => { done?; break; }
                        msg = std::future::poll_fn(|cx| conn.poll_message(cx)) => match msg {
                            Some(Ok(m)) => forward(events, m),
                            Some(Err(e)) => return Err(e),
                            None => return Ok(()),
                        },
                        _ = &mut deadline => {
                            tracing::warn!("database listener stopped answering");
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

fn forward(events: &broadcast::Sender<StoreEvent>, msg: AsyncMessage) {
    let AsyncMessage::Notification(n) = msg else {
        return;
    };
    let event = match n.channel() {
        WORK_CHANNEL => StoreEvent::Work,
        RUN_CHANNEL => StoreEvent::Run(n.payload().to_owned()),
        _ => return,
    };
    // No receiver yet (or any more) is fine: nobody is waiting.
    let _ = events.send(event);
}
