//! Live ingest through the pipeline into SQLite: a backlog caught up from the start.

use std::sync::Arc;
use std::time::Instant;

use sipwarden::asterisk::SourceKind;
use sipwarden::ingest::{self, StartAt};
use sipwarden::store::Store;
use tokio::sync::Notify;

pub fn backlog(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let log = args.next().ok_or_else(|| anyhow::anyhow!("usage: sipwarden-bench ingest LOG"))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("bench.db")).await?;
        let pipeline = super::kernel::bench_pipeline(&store, Arc::new(Notify::new()));
        let follower =
            ingest::follower_for(&store, log.clone().into(), Some(SourceKind::Messages), StartAt::Beginning)
                .await?;
        let mut followers = vec![follower];
        let lines = std::fs::read(&log)?.iter().filter(|b| **b == b'\n').count();
        let start = Instant::now();
        let failures = ingest::poll_all(&mut followers, &pipeline).await;
        let took = start.elapsed().as_secs_f64();
        println!("lines                     {lines}");
        println!("failures stored           {failures}");
        println!("caught up in              {took:.1} s");
        println!("lines/s                   {:.0}", lines as f64 / took);
        println!("failures/s                {:.0}", failures as f64 / took);
        Ok(())
    })
}
