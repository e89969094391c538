//! The country database: how long it takes to load, the memory it takes, lookups per
//! second in memory (addresses from a fixed seed, so runs compare), and, as root, how
//! long an allow-list of the 27 EU countries for SIP takes to reach nft (in a network
//! namespace of its own).

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
    if sipwarden::firewall::nft_available() {
        eu_allow_list(&table)?;
    } else {
        println!("(not root or no nft: the EU allow-list load is not measured)");
    }
    Ok(())
}

const EU: &str = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE";

/// SIP only from the EU, as the enforcer builds it, into a fresh namespace's nft: the
/// first load, a replacement (another rule, the table there), the check that finds it
/// unchanged, and listing the bans' table beside it.
fn eu_allow_list(table: &sipwarden::geo::Table) -> anyhow::Result<()> {
    use sipwarden::domain::ClosableService;
    use sipwarden::firewall::countries::Generation;
    use sipwarden::firewall::{Firewall, KernelBan, countries, render};
    use sipwarden::geo::rules::{CountryRules, ServiceCountries};

    let ns = super::kernel::Namespace::named("-geo")?;
    let fw = ns.backend();
    fw.apply(&sipwarden::firewall::render::full_ruleset(&Default::default(), &[]))?;
    let ports = sipwarden::firewall::ServicePorts::default();
    let mut rules = CountryRules::default();
    rules.set(ClosableService::Sip, ServiceCountries::parse(EU, "").map_err(anyhow::Error::msg)?);
    let started = Instant::now();
    let access = sipwarden::enforcer::resolve_countries(&rules, table, &ports, Vec::new());
    let fingerprint = access.fingerprint("bench");
    let resolved = started.elapsed();
    let mut loads = Vec::new();
    let mut generation = Generation::A;
    for _ in 0..3 {
        let load = countries::load(&access, &fingerprint, generation);
        let started = Instant::now();
        fw.load_countries(&load)?;
        loads.push(started.elapsed().as_secs_f64() * 1e3);
        generation = generation.other();
    }
    let started = Instant::now();
    let held = fw.countries_fingerprint()?.map(|s| countries::Stamp::parse(&s).built_from);
    let checked = started.elapsed();
    anyhow::ensure!(held.as_deref() == Some(fingerprint.as_str()), "fingerprint not read back: {held:?}");
    let started = Instant::now();
    fw.list()?;
    let listed = started.elapsed();
    // A ban and its release with the table there, beside 1,000 other bans: nft must
    // not read the ranges first.
    let held: Vec<KernelBan> = (0..1000u32)
        .map(|i| KernelBan::address(Ipv4Addr::from(0xC633_0000 + i).into(), Some(3600)))
        .collect();
    fw.apply(&render::add_bans(&held))?;
    let (mut bans, mut releases) = (Vec::new(), Vec::new());
    for i in 0..5u8 {
        let ip = std::net::IpAddr::from([203, 0, 113, i + 1]);
        let started = Instant::now();
        fw.apply(&render::add_bans(&[KernelBan::address(ip, Some(3600))]))?;
        bans.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        for step in render::ban_changes(&[], &[ip.into()], &held) {
            fw.apply(&step)?;
        }
        releases.push(started.elapsed().as_secs_f64() * 1e3);
    }
    anyhow::ensure!(fw.list()?.bans.len() == held.len(), "a release took other bans with it");
    println!(
        "EU allow-list for SIP     {} ranges ({} IPv4, {} IPv6) merged from the database in {:.0} ms",
        access.ranges(),
        access.services[0].only.as_ref().map_or(0, |o| o.v4.len()),
        access.services[0].only.as_ref().map_or(0, |o| o.v6.len()),
        resolved.as_secs_f64() * 1e3
    );
    println!("  into nft, first load    {:.0} ms", loads[0]);
    println!("  replaced (table there)  {:.0} ms, {:.0} ms", loads[1], loads[2]);
    println!("  unchanged check         {:.1} ms (the fingerprint set only)", checked.as_secs_f64() * 1e3);
    println!("  bans' table listed      {:.1} ms beside it", listed.as_secs_f64() * 1e3);
    println!("  a ban beside it         {}", spread(&bans));
    println!("  a release beside it     {}", spread(&releases));
    Ok(())
}

/// "min – max ms (n runs)".
fn spread(ms: &[f64]) -> String {
    let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ms.iter().copied().fold(0.0, f64::max);
    format!("{min:.1} – {max:.1} ms ({} runs)", ms.len())
}
