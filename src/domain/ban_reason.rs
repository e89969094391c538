//! The text a ban is stored with, written and read back in one place: the panel turns
//! it into a sentence, so its shape is not left to each writer.

const MANUAL: &str = "manual: ";
const BREACH: &str = "breach: ";
const WITHIN: &str = " failures within ";
const REPEAT: &str = ", repeat offender";

/// What a stored reason says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BanReason<'a> {
    /// A ban rule: `failures` failures within `within` (as the admin wrote it).
    Rule { failures: &'a str, within: &'a str, repeat: bool },
    /// An admin's, with the reason they gave.
    Manual(&'a str),
    /// The breach detector's, with what it saw.
    Breach(&'a str),
    /// Anything else (the IPv6 prefix rule, older versions): shown as stored.
    Other(&'a str),
}

impl BanReason<'_> {
    pub fn rule(failures: u32, within: &str, repeat: bool) -> String {
        format!("{failures}{WITHIN}{within}{}", if repeat { REPEAT } else { "" })
    }

    pub fn manual(text: &str) -> String {
        format!("{MANUAL}{text}")
    }

    pub fn breach(text: &str) -> String {
        format!("{BREACH}{text}")
    }

    pub fn read(reason: &str) -> BanReason<'_> {
        if let Some(text) = reason.strip_prefix(MANUAL) {
            return BanReason::Manual(text);
        }
        if let Some(text) = reason.strip_prefix(BREACH) {
            return BanReason::Breach(text);
        }
        match reason.split_once(WITHIN) {
            Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                let (within, repeat) = rest.strip_suffix(REPEAT).map_or((rest, false), |w| (w, true));
                BanReason::Rule { failures: n, within, repeat }
            }
            _ => BanReason::Other(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_what_was_written() {
        let rule = BanReason::rule(12, "1d", true);
        assert_eq!(rule, "12 failures within 1d, repeat offender");
        assert_eq!(BanReason::read(&rule), BanReason::Rule { failures: "12", within: "1d", repeat: true });
        assert_eq!(BanReason::read(&BanReason::manual("seen in pcap")), BanReason::Manual("seen in pcap"));
        let breach = BanReason::breach("logged into 2001 after guessing (3 failures within 2 s)");
        assert_eq!(
            BanReason::read(&breach),
            BanReason::Breach("logged into 2001 after guessing (3 failures within 2 s)")
        );
        assert_eq!(BanReason::read("3 bans in 2001:db8::/64"), BanReason::Other("3 bans in 2001:db8::/64"));
    }
}
