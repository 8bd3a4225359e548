//! Leads of the server routines (the reaper) among replicas: one row per routine in
//! `leads`, held by one server until its term ends on the database's clock.
//!
//! Taking, renewing and passing on a lead is one `INSERT … ON CONFLICT DO UPDATE … WHERE`:
//! the row lock serialises replicas trying at once, and the condition is checked on the
//! newest row, so two holders never both see `true` for the same term.

use super::db::Db;
use crate::Result;

/// Takes or renews `holder`'s lead of `routine` until `ttl_ms` from now; true when `holder`
/// leads it now. Another holder's lead passes on only once its term ran out.
pub(crate) async fn try_lead(
    db: &Db<'_>,
    routine: &str,
    holder: &str,
    ttl_ms: u64,
) -> Result<bool> {
    let until = db
        .now
        .saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
    let row = db
        .query_opt(
            "taking a lead",
            "INSERT INTO leads (routine, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (routine) DO UPDATE \
               SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
               WHERE leads.holder = EXCLUDED.holder OR leads.expires_at <= $4 \
             RETURNING holder",
            &[&routine, &holder, &until, &db.now],
        )
        .await?;
    Ok(row.is_some())
}

/// Ends `holder`'s lead of `routine` now, if it has it, so another holder may take it.
pub(crate) async fn resign_lead(db: &Db<'_>, routine: &str, holder: &str) -> Result<()> {
    db.execute(
        "giving up a lead",
        "DELETE FROM leads WHERE routine = $1 AND holder = $2",
        &[&routine, &holder],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::testing::{TestClock, fresh_pg_store, pg_url};

    #[tokio::test]
    async fn one_holder_leads_until_its_term_ends_or_it_resigns() {
        let Some(url) = pg_url() else {
            use std::io::Write as _;
            // Past the test harness's capture, so that a plain `cargo test` shows it.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no BATON_TEST_PG_URL): postgres test one_holder_leads_until_its_term_ends_or_it_resigns"
            );
            return;
        };
        let clock = TestClock::new();
        let (store, _schema) = fresh_pg_store(&url).await;
        let store = store.with_clock(clock.as_fn());

        assert!(store.try_lead("reaper", "a", 5_000).await.unwrap());
        assert!(!store.try_lead("reaper", "b", 5_000).await.unwrap());
        // Another routine is another lead.
        assert!(store.try_lead("retention", "b", 5_000).await.unwrap());
        // Renewing moves the term on.
        clock.advance(4_000);
        assert!(store.try_lead("reaper", "a", 5_000).await.unwrap());
        clock.advance(4_000);
        assert!(!store.try_lead("reaper", "b", 5_000).await.unwrap());
        // A holder that stops renewing loses the lead once its term ran out.
        clock.advance(1_000);
        assert!(store.try_lead("reaper", "b", 5_000).await.unwrap());
        assert!(!store.try_lead("reaper", "a", 5_000).await.unwrap());
        // Resigning hands it over at once; resigning a lead one does not hold changes nothing.
        store.resign_lead("reaper", "a").await.unwrap();
        assert!(!store.try_lead("reaper", "a", 5_000).await.unwrap());
        store.resign_lead("reaper", "b").await.unwrap();
        assert!(store.try_lead("reaper", "a", 5_000).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn holders_trying_at_once_get_one_lead() {
        let Some(url) = pg_url() else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no BATON_TEST_PG_URL): postgres test holders_trying_at_once_get_one_lead"
            );
            return;
        };
        let (store, _schema) = fresh_pg_store(&url).await;
        let tries = (0..16).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.try_lead("reaper", &format!("h{i}"), 60_000).await })
        });
        let mut leaders = 0;
        for t in tries {
            if t.await.unwrap().unwrap() {
                leaders += 1;
            }
        }
        assert_eq!(leaders, 1);
    }
}
