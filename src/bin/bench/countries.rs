//! The country database: how long it takes to load, the memory it takes, and lookups
//! per second in memory (addresses from a fixed seed, so runs compare).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};

/// `countries [GEOIP]` (default /usr/share/tor/geoip, its geoip6 beside it).
pub fn lookups(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let path = PathBuf::from(args.next().unwrap_or_else(|| "/usr/share/tor/geoip".into()));
    let rss_kib = || super::status_kib("VmRSS").unwrap_or(0);
    let before = rss_kib();
    let started = Instant::now();
    let table = sipwarden::geo::load(&path)?;
    let loaded = started.elapsed();
    let after = rss_kib();
    println!("database                  {}", path.display());
    println!("ranges                    {} IPv4, {} IPv6", table.v4.len(), table.v6.len());
    println!("load (read, parse, sort)  {:.0} ms", loaded.as_secs_f64() * 1e3);
    println!("memory of the ranges      {:.1} MiB", table.bytes() as f64 / 1_048_576.0);
    println!("resident memory added     {:.1} MiB", after.saturating_sub(before) as f64 / 1024.0);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for (label, v6_share) in [("IPv4", 0.0), ("IPv6", 1.0), ("mixed 80/20", 0.2)] {
        let addresses: Vec<IpAddr> = (0..1_000_000)
            .map(|_| {
                if rng.random_bool(v6_share) {
                    // Inside 2000::/4, where the allocated space is.
                    IpAddr::V6(Ipv6Addr::from((0x2u128 << 124) | (rng.random::<u128>() >> 4)))
                } else {
                    IpAddr::V4(Ipv4Addr::from(rng.random::<u32>()))
                }
            })
            .collect();
        let mut best = f64::MAX;
        let mut found = 0;
        for _ in 0..5 {
            let started = Instant::now();
            found = addresses.iter().filter(|ip| table.lookup(**ip).is_some()).count();
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "lookups/s, {label:<12}  {:.1} M (best of 5 over 1,000,000 addresses; {found} with a country)",
            addresses.len() as f64 / best / 1e6
        );
    }
    Ok(())
}
