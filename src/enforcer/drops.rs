//! What the country rules dropped, for the panel. The kernel's counters are read by
//! resetting them (listing them would read every country range first), so the sums
//! since sipwarden started are kept here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::domain::{ClosableService, UnixMs};
use crate::firewall::{Firewall, FirewallError};

/// Packets dropped per service and list (`true`: the only-list) since `since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub since: UnixMs,
    pub packets: BTreeMap<(ClosableService, bool), u64>,
}

impl Tally {
    pub fn of(&self, service: ClosableService, only: bool) -> u64 {
        self.packets.get(&(service, only)).copied().unwrap_or(0)
    }
}

pub struct CountryDrops {
    firewall: Arc<dyn Firewall>,
    clock: Arc<dyn Clock>,
    tally: Mutex<Option<Tally>>,
}

impl CountryDrops {
    pub fn new(firewall: Arc<dyn Firewall>, clock: Arc<dyn Clock>) -> Self {
        CountryDrops { firewall, clock, tally: Mutex::new(None) }
    }

    /// Whether counting has begun (the first [`CountryDrops::take`] begins it).
    pub fn started(&self) -> bool {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Reads and resets the kernel's counters and adds them in. The first call only
    /// resets them: what a table kept from before this start is not counted. Blocks
    /// for an `nft` run.
    pub fn take(&self) -> Result<Tally, FirewallError> {
        let dropped = self.firewall.take_country_drops()?;
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sums) = tally.as_mut() else {
            let begun = Tally { since: self.clock.now(), packets: BTreeMap::new() };
            *tally = Some(begun.clone());
            return Ok(begun);
        };
        for d in dropped {
            *sums.packets.entry((d.service, d.only)).or_default() += d.packets;
        }
        Ok(sums.clone())
    }
}
