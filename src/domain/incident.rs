use serde::{Deserialize, Serialize};

/// How urgent an incident is: a warning is told; a critical one is also acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What went wrong after a login succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// An account was logged into from an address that looks like it guessed the password.
    Breach,
    /// An extension places calls the way fraud does.
    TollFraud,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Breach => "breach",
            IncidentKind::TollFraud => "toll_fraud",
        }
    }
}

/// A warning and a critical level of one measure; a level of 0 is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    pub warning: u32,
    pub critical: u32,
}

impl Threshold {
    /// The severity `value` reaches.
    pub fn reached(&self, value: u32) -> Option<Severity> {
        if self.critical > 0 && value >= self.critical {
            Some(Severity::Critical)
        } else if self.warning > 0 && value >= self.warning {
            Some(Severity::Warning)
        } else {
            None
        }
    }
}

/// The levels that apply while the office is closed, in local time: from `from_minute`
/// after midnight up to `to_minute` (across midnight when `from_minute` is the later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterHours {
    pub from_minute: u16,
    pub to_minute: u16,
    pub calls_per_minute: Threshold,
    pub concurrent_international: Threshold,
    pub high_risk_calls: Threshold,
    pub same_prefix_calls: Threshold,
}

impl AfterHours {
    /// Whether `minute` (after local midnight) is after hours.
    pub fn covers(&self, minute: u16) -> bool {
        if self.from_minute <= self.to_minute {
            (self.from_minute..self.to_minute).contains(&minute)
        } else {
            minute >= self.from_minute || minute < self.to_minute
        }
    }
}

/// When an extension's calls look like toll fraud. OpenSIPS's fraud_detection is the
/// model: each measure with a warning and a critical level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FraudLimits {
    /// Calls started within one minute.
    pub calls_per_minute: Threshold,
    /// International calls in progress at once.
    pub concurrent_international: Threshold,
    /// Calls to high-risk destinations within one burst.
    pub high_risk_calls: Threshold,
    /// International calls to one destination prefix (the country code and the two
    /// digits after it) within an hour: fraud slow enough to pass the per-minute count.
    pub same_prefix_calls: Threshold,
    /// Numbers dialled abroad start with one of these (`00`, `011`, `+`).
    pub international_prefixes: Vec<String>,
    /// Numbers that start with an international prefix yet stay at home (`0049`, `+49`
    /// for an office in Germany).
    pub home_prefixes: Vec<String>,
    /// Destinations fraud pays for, as country codes and the digits after them
    /// (`882` matches `00882…`, `+882…`, `011882…`): satellite and international
    /// networks and the countries most sold for revenue-share fraud.
    pub high_risk_prefixes: Vec<String>,
    /// Contexts calls from trunks arrive in: their calls are not an extension's.
    pub inbound_contexts: Vec<String>,
    /// Other (stricter) levels for the hours the office is closed; `None`: the same
    /// levels day and night.
    pub after_hours: Option<AfterHours>,
}

impl Default for FraudLimits {
    fn default() -> Self {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        FraudLimits {
            calls_per_minute: Threshold { warning: 3, critical: 5 },
            concurrent_international: Threshold { warning: 2, critical: 3 },
            high_risk_calls: Threshold { warning: 1, critical: 2 },
            same_prefix_calls: Threshold { warning: 8, critical: 15 },
            international_prefixes: strings(&["00", "011", "+"]),
            home_prefixes: Vec::new(),
            high_risk_prefixes: strings(&[
                "881", "882", "883", "870", "979", "808", "888", "991", "247", "290", "675", "685", "686",
                "688", "690", "960", "221", "222", "223", "224", "225", "226", "227", "228", "229", "231",
                "232", "235", "236", "237", "239", "240", "241", "242", "243", "245", "252", "253", "261",
                "269", "371", "372", "381", "382", "387", "423", "670", "672", "673", "674", "676", "677",
                "678", "679", "680", "681", "682", "683", "687", "689", "691", "692", "850",
            ]),
            inbound_contexts: strings(&[
                "from-trunk",
                "from-pstn",
                "from-external",
                "from-sip-external",
                "from-did-direct",
                "ext-did",
            ]),
            after_hours: None,
        }
    }
}
