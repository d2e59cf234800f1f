//! Heal time after a partition: how long after the network heals a
//! service behind the cut is shown again (redial, handshake,
//! reconciliation, flooding).

use std::time::Duration;

use anyhow::{bail, Result};
use rarangi_client::Connection;
use rarangi_harness::{clock, fresh_addr, Change, Deadline, Proxy};

use super::reg;
use crate::cluster::{start, wait_all, watch_all};
use crate::report::{ms, Report};
use crate::stats::median_p99;

/// Cuts of each length in `cuts_s` (seconds), `runs` times each: a link
/// through a proxy goes silent, the far side's service is withdrawn, the
/// cut lasts its length, then heals; measured from the heal until the
/// watcher shows the service again.
pub async fn heal(r: &mut Report, cuts_s: &[u64], runs: usize) -> Result<()> {
    let mut body = String::from(
        "A link between two catalogues runs through a proxy (heartbeat 200 ms, dead-after 1000 ms). The proxy blackholes it (connections stay open, nothing passes) until the far side's service is withdrawn, keeps it cut for the stated time (counted from the cut), then heals (drops the blackholed connections). Measured from the heal until the watcher shows the service again: the redial (quick retries under a second after a lost link, 3 s connect timeout), the handshake and reconciliation.\n\n| cut s | runs | median ms | p99 ms |\n| --- | --- | --- | --- |\n",
    );
    let mut worst = 0.0f64;
    for &cut in cuts_s {
        let mut samples = Vec::new();
        for i in 0..runs {
            let b = start(&fresh_addr(), &[], 200, 1000)?;
            let hole = Proxy::start(&fresh_addr(), &b.addr).await?;
            let a = start(&fresh_addr(), std::slice::from_ref(&hole.addr), 200, 1000)?;
            let seen = watch_all(std::slice::from_ref(&a), "^tcp://heal").await?;
            let mut c = Connection::connect(&b.opts()).await?;
            let uri = format!("tcp://heal-{cut}-{i}:1/p");
            reg(&mut c, &uri).await?;
            if wait_all(&seen, &uri, Change::Added, Duration::from_secs(20))
                .await
                .is_none()
            {
                bail!("{uri} never arrived");
            }
            let t0 = clock::now();
            hole.cut();
            if wait_all(&seen, &uri, Change::Removed, Duration::from_secs(20))
                .await
                .is_none()
            {
                bail!("{uri} was not withdrawn during the cut");
            }
            let left = Duration::from_secs(cut).saturating_sub(t0.elapsed());
            tokio::time::sleep(left).await;
            let healed = clock::now();
            hole.heal();
            let limit = Duration::from_secs(120);
            let deadline = Deadline::after(limit).every(Duration::from_millis(1));
            let back = loop {
                let last = seen[0].arrivals(&uri, Change::Added).last().copied();
                if let Some(t) = last.filter(|t| *t > healed) {
                    break t - healed;
                }
                if !deadline.next().await {
                    break limit;
                }
            };
            samples.push(back);
        }
        let (m, p) = median_p99(&samples);
        worst = worst.max(p);
        body.push_str(&format!(
            "| {cut} | {} | {} | {} |\n",
            samples.len(),
            ms(m),
            ms(p)
        ));
    }
    r.targets.push((
        "heal under 2 s after the network heals (1-, 5-, 30-second cuts)".into(),
        format!("worst p99 {} ms", ms(worst)),
        worst < 2000.0,
    ));
    r.section("Heal after a partition", body);
    Ok(())
}
