use super::UnixMs;

/// What the dialplan shows of a call: its start on a channel and the channel's end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallEvent {
    Start(CallStart),
    /// The channel left the dialplan (hung up).
    End {
        channel: String,
    },
}

/// A channel entering the dialplan: who calls (the endpoint in the channel's name) and
/// the number dialled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallStart {
    /// `PJSIP/1002-00000006`: unique while Asterisk runs.
    pub channel: String,
    /// `PJSIP`, `SIP`, `IAX2`.
    pub tech: String,
    /// The endpoint or peer placing the call: the extension for an office phone.
    pub endpoint: String,
    /// What was dialled. Attacker-chosen for a cracked extension.
    pub number: String,
    pub context: String,
}

/// A call event with the time Asterisk logged it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatedCall {
    pub at: Option<UnixMs>,
    pub event: CallEvent,
}
