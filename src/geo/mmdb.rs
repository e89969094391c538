//! MaxMind-format databases (`.mmdb`: DB-IP Lite Country, GeoLite2 Country), read
//! once into the same [`Table`] as Tor's files: lookups and country rules then work
//! the same whatever the format, and no file stays open.

use std::net::IpAddr;

use maxminddb::{PathElement, Reader, WithinOptions};

use super::table::Table;
use crate::domain::Country;

/// The marker that starts an `.mmdb` file's metadata, near its end.
const METADATA_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
/// The metadata section is at most this far from the end (the format's own limit).
const METADATA_MAX: usize = 128 * 1024;

/// Whether `bytes` are a MaxMind-format database rather than Tor's text.
pub fn is_mmdb(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(METADATA_MAX)..];
    tail.windows(METADATA_MARKER.len()).any(|w| w == METADATA_MARKER)
}

/// Every network with a country, in address order, adjacent networks of one country
/// joined. A network whose record names no country (anonymous proxies, satellite
/// providers) counts as unreadable, as a Tor line with `??` does not.
pub fn read(bytes: Vec<u8>) -> Result<Table, maxminddb::MaxMindDbError> {
    let reader = Reader::from_source(bytes)?;
    let mut table = Table::default();
    let country_code = [PathElement::Key("country"), PathElement::Key("iso_code")];
    let registered = [PathElement::Key("registered_country"), PathElement::Key("iso_code")];
    for found in reader.networks(WithinOptions::default())? {
        let found = found?;
        let code: Option<String> = match found.decode_path(&country_code)? {
            Some(code) => Some(code),
            None => found.decode_path(&registered)?,
        };
        let Some(country) = code.as_deref().and_then(Country::parse) else {
            table.unreadable += 1;
            continue;
        };
        let net = found.network()?;
        match net.network() {
            IpAddr::V4(first) => {
                let start = u32::from(first);
                let end = start | u32::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
                table.v4.push_joined(start, end, country);
            }
            IpAddr::V6(first) => {
                let start = u128::from(first);
                let end = start | u128::MAX.checked_shr(u32::from(net.prefix())).unwrap_or(0);
                table.v6.push_joined(start, end, country);
            }
        }
    }
    table.unreadable += table.v4.finish() + table.v6.finish();
    Ok(table)
}
