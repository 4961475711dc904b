//! Typed ng requests (rtpengine 10.5). Each turns into a dictionary with the key spellings
//! rtpengine documents; anything not modelled goes into a request's `extra` dictionary,
//! or through `Client::request` as a raw dictionary.

use crate::bencode::{Dict, Value};
use crate::error::{Error, Result};
use crate::replies::{Ack, CallList, CallStats, PlayMediaReply, SdpReply, Statistics};

/// A request with a typed reply.
pub trait Command {
    type Reply;
    fn to_dict(&self) -> Dict<'_>;
    fn parse_reply(reply: Dict<'static>) -> Result<Self::Reply>;
}

/// Turns `result` into `Ok(reply)` or the matching error.
pub fn check_result(reply: Dict<'static>) -> Result<Dict<'static>> {
    // Bytes, not text: a reason that is not UTF-8 is still the daemon's reason.
    match reply.get("result").and_then(Value::as_bytes) {
        Some(b"ok" | b"pong") => Ok(reply),
        Some(b"error") => Err(Error::Rtpengine(text(
            &reply,
            "error-reason",
            "(no reason)",
        ))),
        Some(b"load limit") => Err(Error::LoadLimit(text(&reply, "message", "(no message)"))),
        Some(other) => Err(Error::Protocol(format!(
            "result {:?}",
            String::from_utf8_lossy(other)
        ))),
        None => Err(Error::Protocol("reply has no result".into())),
    }
}

/// A string of the reply, lossily decoded; `absent` when there is none.
fn text(reply: &Dict<'_>, key: &str, absent: &str) -> String {
    match reply.get(key).and_then(Value::as_bytes) {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => absent.to_owned(),
    }
}

/// Which call (and optionally which party of it) a request is about.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub via_branch: Option<String>,
    /// Selects a party by its label instead of its tag.
    pub label: Option<String>,
    /// Selects a party by its media address.
    pub address: Option<String>,
    /// Applies to all parties (`flags: ["all"]`).
    pub all: bool,
}

impl Target {
    pub fn call(call_id: impl Into<String>) -> Target {
        Target {
            call_id: call_id.into(),
            ..Target::default()
        }
    }

    pub fn from_tag(mut self, tag: impl Into<String>) -> Target {
        self.from_tag = Some(tag.into());
        self
    }

    pub fn to_tag(mut self, tag: impl Into<String>) -> Target {
        self.to_tag = Some(tag.into());
        self
    }

    fn write<'a>(&'a self, d: &mut Dict<'a>, flags: &mut Vec<Value<'a>>) {
        d.insert("call-id", self.call_id.as_str());
        put(d, "from-tag", &self.from_tag);
        put(d, "to-tag", &self.to_tag);
        put(d, "via-branch", &self.via_branch);
        put(d, "label", &self.label);
        put(d, "address", &self.address);
        if self.all {
            flags.push("all".into());
        }
    }
}

fn put<'a>(d: &mut Dict<'a>, key: &'a str, value: &'a Option<String>) {
    if let Some(v) = value {
        d.insert(key, v.as_str());
    }
}

fn put_list<'a>(d: &mut Dict<'a>, key: &'a str, items: &'a [String]) {
    if !items.is_empty() {
        d.insert(key, list(items));
    }
}

fn list(items: &[String]) -> Value<'_> {
    Value::List(items.iter().map(|s| Value::from(s.as_str())).collect())
}

/// Starts a request dictionary; `extra` entries come last and win over typed ones.
fn base<'a>(command: &'a str) -> Dict<'a> {
    let mut d = Dict::new();
    d.insert("command", command);
    d
}

fn finish<'a>(mut d: Dict<'a>, flags: Vec<Value<'a>>, extra: &'a Dict<'static>) -> Dict<'a> {
    if !flags.is_empty() {
        d.insert("flags", Value::List(flags));
    }
    for (k, v) in extra.iter() {
        d.insert(k, v.clone());
    }
    d
}

// ------------------------------------------------------------------ ping

#[derive(Debug, Clone, Copy, Default)]
pub struct Ping;

impl Command for Ping {
    type Reply = ();
    fn to_dict(&self) -> Dict<'_> {
        base("ping")
    }
    fn parse_reply(reply: Dict<'static>) -> Result<()> {
        match reply.get_str("result") {
            Some("pong") => Ok(()),
            other => Err(Error::Protocol(format!("ping answered {other:?}"))),
        }
    }
}

// ------------------------------------------------------------------ offer / answer

/// Parses an option value by its wire spelling (case-insensitive), for CLIs and configs.
macro_rules! wire_names {
    ($ty:ident: $($variant:ident),+) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                $ty::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let names: Vec<_> = $ty::ALL.iter().map(|v| v.as_str()).collect();
                        format!("{s:?}: expected one of {}", names.join(", "))
                    })
            }
        }
    };
}

wire_names!(Ice: Remove, Force, Default, ForceRelay, Optional);
wire_names!(TransportProtocol: RtpAvp, RtpAvpf, RtpSavp, RtpSavpf, UdpTlsRtpSavp, UdpTlsRtpSavpf, Accept);
wire_names!(Dtls: Off, Passive, Active);

/// `ICE` handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ice {
    Remove,
    Force,
    Default,
    ForceRelay,
    Optional,
}

impl Ice {
    pub fn as_str(self) -> &'static str {
        match self {
            Ice::Remove => "remove",
            Ice::Force => "force",
            Ice::Default => "default",
            Ice::ForceRelay => "force-relay",
            Ice::Optional => "optional",
        }
    }
}

/// `transport-protocol` of the rewritten SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportProtocol {
    RtpAvp,
    RtpAvpf,
    RtpSavp,
    RtpSavpf,
    UdpTlsRtpSavp,
    UdpTlsRtpSavpf,
    /// In an answer: accept whatever the offer asked for.
    Accept,
}

impl TransportProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportProtocol::RtpAvp => "RTP/AVP",
            TransportProtocol::RtpAvpf => "RTP/AVPF",
            TransportProtocol::RtpSavp => "RTP/SAVP",
            TransportProtocol::RtpSavpf => "RTP/SAVPF",
            TransportProtocol::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            TransportProtocol::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
            TransportProtocol::Accept => "accept",
        }
    }
}

/// `DTLS` role / switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtls {
    Off,
    Passive,
    Active,
}

impl Dtls {
    pub fn as_str(self) -> &'static str {
        match self {
            Dtls::Off => "off",
            Dtls::Passive => "passive",
            Dtls::Active => "active",
        }
    }
}

/// The `codec` dictionary: lists of codec specs such as `PCMU`, `opus/48000/2`, or `all`.
#[derive(Debug, Clone, Default)]
pub struct Codecs {
    pub strip: Vec<String>,
    pub except: Vec<String>,
    pub offer: Vec<String>,
    pub transcode: Vec<String>,
    pub mask: Vec<String>,
    pub consume: Vec<String>,
    pub accept: Vec<String>,
    pub set: Vec<String>,
}

impl Codecs {
    fn to_value(&self) -> Option<Value<'_>> {
        let mut d = Dict::new();
        put_list(&mut d, "strip", &self.strip);
        put_list(&mut d, "except", &self.except);
        put_list(&mut d, "offer", &self.offer);
        put_list(&mut d, "transcode", &self.transcode);
        put_list(&mut d, "mask", &self.mask);
        put_list(&mut d, "consume", &self.consume);
        put_list(&mut d, "accept", &self.accept);
        put_list(&mut d, "set", &self.set);
        (!d.is_empty()).then_some(Value::Dict(d))
    }
}

/// Everything `offer` and `answer` share. `answer` needs `call.to_tag`.
#[derive(Debug, Clone, Default)]
pub struct MediaRequest {
    pub call: Target,
    pub sdp: String,
    /// Plain flags, e.g. `trust address`, `symmetric`, `inject DTMF`, `detect DTMF`,
    /// `strict source`, `port latching`, `generate mid`, `always transcode`.
    pub flags: Vec<String>,
    /// `origin`, `session connection`, `SDP version`, `username`, `session name`, `zero address`.
    pub replace: Vec<String>,
    /// Two logical interface names (from-side, to-side).
    pub direction: Vec<String>,
    pub ice: Option<Ice>,
    pub transport_protocol: Option<TransportProtocol>,
    /// `offer`, `require`, `demux`, `accept`, `reject`.
    pub rtcp_mux: Vec<String>,
    pub dtls: Option<Dtls>,
    /// e.g. `off`, `no-AES_CM_128_HMAC_SHA1_32`, `only-…`, `pad`.
    pub sdes: Vec<String>,
    pub record_call: Option<bool>,
    pub received_from: Option<(String, String)>,
    pub media_address: Option<String>,
    /// `IP4` or `IP6`.
    pub address_family: Option<String>,
    pub codec: Codecs,
    pub ptime: Option<i64>,
    pub tos: Option<i64>,
    /// `DTMF-security`: `drop`, `silence`, `tone`, `random`, `zero`, `DTMF`, `off`.
    pub dtmf_security: Option<String>,
    pub metadata: Option<String>,
    /// e.g. `load limit`, so overload is answered with `result: load limit`.
    pub supports: Vec<String>,
    pub extra: Dict<'static>,
}

impl MediaRequest {
    pub fn new(call: Target, sdp: impl Into<String>) -> MediaRequest {
        MediaRequest {
            call,
            sdp: sdp.into(),
            ..MediaRequest::default()
        }
    }

    pub fn flag(mut self, flag: impl Into<String>) -> MediaRequest {
        self.flags.push(flag.into());
        self
    }

    fn to_dict<'a>(&'a self, command: &'a str) -> Dict<'a> {
        let mut d = base(command);
        let mut flags: Vec<Value<'a>> = self.flags.iter().map(|f| f.as_str().into()).collect();
        self.call.write(&mut d, &mut flags);
        d.insert("sdp", self.sdp.as_str());
        put_list(&mut d, "replace", &self.replace);
        put_list(&mut d, "direction", &self.direction);
        if let Some(ice) = self.ice {
            d.insert("ICE", ice.as_str());
        }
        if let Some(tp) = self.transport_protocol {
            d.insert("transport-protocol", tp.as_str());
        }
        put_list(&mut d, "rtcp-mux", &self.rtcp_mux);
        if let Some(dtls) = self.dtls {
            d.insert("DTLS", dtls.as_str());
        }
        put_list(&mut d, "SDES", &self.sdes);
        if let Some(rec) = self.record_call {
            d.insert("record-call", if rec { "yes" } else { "no" });
        }
        if let Some((family, addr)) = &self.received_from {
            d.insert("received-from", [family.as_str(), addr.as_str()]);
        }
        put(&mut d, "media-address", &self.media_address);
        put(&mut d, "address-family", &self.address_family);
        if let Some(codec) = self.codec.to_value() {
            d.insert("codec", codec);
        }
        if let Some(p) = self.ptime {
            d.insert("ptime", p);
        }
        if let Some(t) = self.tos {
            d.insert("TOS", t);
        }
        put(&mut d, "DTMF-security", &self.dtmf_security);
        put(&mut d, "metadata", &self.metadata);
        put_list(&mut d, "supports", &self.supports);
        finish(d, flags, &self.extra)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Offer(pub MediaRequest);

#[derive(Debug, Clone, Default)]
pub struct Answer(pub MediaRequest);

impl Command for Offer {
    type Reply = SdpReply;
    fn to_dict(&self) -> Dict<'_> {
        self.0.to_dict("offer")
    }
    fn parse_reply(reply: Dict<'static>) -> Result<SdpReply> {
        SdpReply::parse(reply)
    }
}

impl Command for Answer {
    type Reply = SdpReply;
    fn to_dict(&self) -> Dict<'_> {
        self.0.to_dict("answer")
    }
    fn parse_reply(reply: Dict<'static>) -> Result<SdpReply> {
        SdpReply::parse(reply)
    }
}

// ------------------------------------------------------------------ delete / query / list / statistics

#[derive(Debug, Clone, Default)]
pub struct Delete {
    pub call: Target,
    /// Unknown call is an error instead of `ok` with a warning.
    pub fatal: bool,
    /// Seconds until rtpengine forgets the call (its default is `--delete-delay`, 30 s).
    pub delete_delay: Option<i64>,
    pub extra: Dict<'static>,
}

impl Command for Delete {
    type Reply = CallStats;
    fn to_dict(&self) -> Dict<'_> {
        let mut d = base("delete");
        let mut flags = Vec::new();
        self.call.write(&mut d, &mut flags);
        if self.fatal {
            flags.push("fatal".into());
        }
        if let Some(delay) = self.delete_delay {
            d.insert("delete-delay", delay);
        }
        finish(d, flags, &self.extra)
    }
    fn parse_reply(reply: Dict<'static>) -> Result<CallStats> {
        Ok(CallStats::parse(reply))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Query(pub Target);

impl Command for Query {
    type Reply = CallStats;
    fn to_dict(&self) -> Dict<'_> {
        let mut d = base("query");
        let mut flags = Vec::new();
        self.0.write(&mut d, &mut flags);
        finish(d, flags, &NO_EXTRA)
    }
    fn parse_reply(reply: Dict<'static>) -> Result<CallStats> {
        Ok(CallStats::parse(reply))
    }
}

static NO_EXTRA: Dict<'static> = Dict::EMPTY;

#[derive(Debug, Clone, Copy, Default)]
pub struct List {
    /// rtpengine returns at most 32 call-ids unless told otherwise.
    pub limit: Option<i64>,
}

impl Command for List {
    type Reply = CallList;
    fn to_dict(&self) -> Dict<'_> {
        let mut d = base("list");
        if let Some(l) = self.limit {
            d.insert("limit", l);
        }
        d
    }
    fn parse_reply(reply: Dict<'static>) -> Result<CallList> {
        CallList::parse(reply)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct GetStatistics;

impl Command for GetStatistics {
    type Reply = Statistics;
    fn to_dict(&self) -> Dict<'_> {
        base("statistics")
    }
    fn parse_reply(reply: Dict<'static>) -> Result<Statistics> {
        Statistics::parse(reply)
    }
}

// ------------------------------------------------------------------ per-call operations

/// Commands that take a call (or party) selector and answer a plain `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOp {
    StartRecording,
    StopRecording,
    BlockDtmf,
    UnblockDtmf,
    BlockMedia,
    UnblockMedia,
    SilenceMedia,
    UnsilenceMedia,
    StartForwarding,
    StopForwarding,
    StopMedia,
}

impl CallOp {
    pub fn command(self) -> &'static str {
        match self {
            CallOp::StartRecording => "start recording",
            CallOp::StopRecording => "stop recording",
            CallOp::BlockDtmf => "block DTMF",
            CallOp::UnblockDtmf => "unblock DTMF",
            CallOp::BlockMedia => "block media",
            CallOp::UnblockMedia => "unblock media",
            CallOp::SilenceMedia => "silence media",
            CallOp::UnsilenceMedia => "unsilence media",
            CallOp::StartForwarding => "start forwarding",
            CallOp::StopForwarding => "stop forwarding",
            CallOp::StopMedia => "stop media",
        }
    }
}

#[derive(Debug, Clone)]
pub struct CallCommand {
    pub op: CallOp,
    pub call: Target,
    pub extra: Dict<'static>,
}

impl CallCommand {
    pub fn new(op: CallOp, call: Target) -> CallCommand {
        CallCommand {
            op,
            call,
            extra: Dict::new(),
        }
    }
}

impl Command for CallCommand {
    type Reply = Ack;
    fn to_dict(&self) -> Dict<'_> {
        let mut d = base(self.op.command());
        let mut flags = Vec::new();
        self.call.write(&mut d, &mut flags);
        finish(d, flags, &self.extra)
    }
    fn parse_reply(reply: Dict<'static>) -> Result<Ack> {
        Ok(Ack::parse(&reply))
    }
}

/// What `play media` plays.
#[derive(Debug, Clone)]
pub enum MediaSource {
    /// A file readable by the rtpengine daemon.
    File(String),
    /// The audio file's bytes.
    Blob(Vec<u8>),
    /// A row of the daemon's media database.
    DbId(i64),
}

#[derive(Debug, Clone)]
pub struct PlayMedia {
    pub call: Target,
    pub source: MediaSource,
    pub repeat_times: Option<i64>,
}

impl Command for PlayMedia {
    type Reply = PlayMediaReply;
    fn to_dict(&self) -> Dict<'_> {
        let mut d = base("play media");
        let mut flags = Vec::new();
        self.call.write(&mut d, &mut flags);
        match &self.source {
            MediaSource::File(f) => d.insert("file", f.as_str()),
            MediaSource::Blob(b) => d.insert("blob", b.as_slice()),
            MediaSource::DbId(id) => d.insert("db-id", *id),
        }
        if let Some(n) = self.repeat_times {
            d.insert("repeat-times", n);
        }
        finish(d, flags, &NO_EXTRA)
    }
    fn parse_reply(reply: Dict<'static>) -> Result<PlayMediaReply> {
        Ok(PlayMediaReply {
            duration_ms: reply.get_int("duration"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::encode_dict;

    #[test]
    fn offer_uses_documented_keys() {
        let mut req =
            MediaRequest::new(Target::call("c1").from_tag("ft"), "v=0\r\n").flag("trust address");
        req.ice = Some(Ice::Remove);
        req.transport_protocol = Some(TransportProtocol::RtpAvp);
        req.replace = vec!["origin".into()];
        req.codec.strip = vec!["all".into()];
        req.codec.offer = vec!["PCMU".into()];
        req.record_call = Some(true);
        req.extra.insert("label", "caller");
        let offer = Offer(req);
        let d = offer.to_dict();
        assert_eq!(d.get_str("command"), Some("offer"));
        assert_eq!(d.get_str("call-id"), Some("c1"));
        assert_eq!(d.get_str("ICE"), Some("remove"));
        assert_eq!(d.get_str("transport-protocol"), Some("RTP/AVP"));
        assert_eq!(d.get_str("record-call"), Some("yes"));
        assert_eq!(d.get_str("label"), Some("caller"));
        let codec = d.get_dict("codec").unwrap();
        assert_eq!(codec.get_list("strip").unwrap()[0].as_str(), Some("all"));
        let wire = encode_dict(&d);
        assert!(wire.ends_with(b"5:flagsl13:trust addresse5:label6:callere"));
    }

    #[test]
    fn option_values_parse_by_wire_name() {
        assert_eq!("force-relay".parse::<Ice>(), Ok(Ice::ForceRelay));
        assert_eq!(
            "rtp/savpf".parse::<TransportProtocol>(),
            Ok(TransportProtocol::RtpSavpf)
        );
        assert!("sideways".parse::<Dtls>().unwrap_err().contains("passive"));
    }

    #[test]
    fn results_map_to_errors() {
        let mut e = Dict::new();
        e.insert("result", "error");
        e.insert("error-reason", "Ran out of ports");
        assert!(matches!(check_result(e), Err(Error::Rtpengine(r)) if r == "Ran out of ports"));
        let mut l = Dict::new();
        l.insert("result", "load limit");
        assert!(matches!(check_result(l), Err(Error::LoadLimit(_))));
        assert!(matches!(check_result(Dict::new()), Err(Error::Protocol(_))));
    }

    #[test]
    fn selector_all_becomes_a_flag() {
        let mut t = Target::call("c");
        t.all = true;
        let cmd = CallCommand::new(CallOp::UnblockMedia, t);
        let d = cmd.to_dict();
        assert_eq!(d.get_str("command"), Some("unblock media"));
        assert_eq!(d.get_list("flags").unwrap()[0].as_str(), Some("all"));
    }
}
