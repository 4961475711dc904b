//! sipp as the customer's PBX (UAC) and as vendor gateways (UAS), on loopback.

use super::{binary, edge_address, uri_host};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The INVITE `<send>` of a call from `caller` to `callee` (sipp keywords allowed, as
/// `[field0]`), with `headers` (each ending in a line break and the indent) before
/// Max-Forwards; its `<send>` attributes in `attributes`.
pub fn invite(caller: &str, callee: &str, headers: &str, attributes: &str) -> String {
    format!(
        r#"  <send{attributes}>
    <![CDATA[
      INVITE sip:{callee}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:{callee}@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:{caller}@[local_ip]:[local_port]>
      {headers}Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#
    )
}

/// The `<send>` of the ACK (`cseq` 1) or the BYE (2) of the dialog an [`invite`] set
/// up: to the 200's Contact, along its Record-Route (the 200's `rrs`).
pub fn in_dialog(method: &str, cseq: u32, caller: &str, callee: &str, attributes: &str) -> String {
    format!(
        r#"  <send{attributes}>
    <![CDATA[
      {method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:{callee}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: {cseq} {method}
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#
    )
}

/// INVITE → 200 → ACK → pause → BYE through Kamailio, following its Record-Route, from
/// 3035550100 (PAI +17205550199) to the service number; with `media`, the INVITE
/// offers [`OFFER`]. With `auth`, the first INVITE is challenged (407, ACKed) and sent
/// again with sipp's answer (`-au`/`-ap`). With `callee_hangs_up`, the call ends with
/// the callee's BYE, answered 200, instead.
fn uac(auth: bool, media: bool, callee_hangs_up: bool) -> String {
    let (caller, callee) = ("3035550100", "[service]");
    let pai = "P-Asserted-Identity: <sip:+17205550199@[local_ip]>\n      ";
    let send_invite = |headers: &str| {
        let invite = invite(caller, callee, headers, " retrans=\"500\"");
        match media {
            true => invite.replacen(
                "Max-Forwards: 70\n      Content-Length: 0\n",
                &format!("Max-Forwards: 70\n      {OFFER}"),
                1,
            ),
            false => invite,
        }
    };
    let challenged = if auth {
        // The ACK of a non-2xx reply goes where the INVITE went, in its transaction
        // (the INVITE's branch, three messages back).
        format!(
            r#"{}  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send>
    <![CDATA[
      ACK sip:{callee}@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: <sip:{caller}@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:{callee}@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#,
            send_invite(pai)
        )
    } else {
        String::new()
    };
    let cseq = 1 + u32::from(auth);
    let hang_up = match callee_hangs_up {
        true => format!("  <recv request=\"BYE\" crlf=\"true\"/>\n{IN_DIALOG_OK}"),
        false => format!(
            "  <pause/>\n{}  <recv response=\"200\" crlf=\"true\"/>\n",
            in_dialog("BYE", cseq + 1, caller, callee, " retrans=\"500\"")
        ),
    };
    let answered = send_invite(&format!(
        "{pai}{}",
        if auth { "[authentication]\n      " } else { "" }
    ))
    .replace("CSeq: 1 INVITE", &format!("CSeq: {cseq} INVITE"));
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp uac">
{challenged}{answered}  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" rtd="true"/>
{}{hang_up}  <ResponseTimeRepartition value="10, 50, 100, 500"/>
</scenario>
"#,
        in_dialog("ACK", cseq, caller, callee, ""),
    )
}

/// The SDP offer of [`uac`] calls with media (`Uac::media`), audio on port 6000.
const OFFER: &str = "Content-Type: application/sdp\n      Content-Length: [len]\n\n      \
v=0\n      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]\n      s=-\n      \
c=IN IP[media_ip_type] [media_ip]\n      t=0 0\n      m=audio 6000 RTP/AVP 0\n      \
a=rtpmap:0 PCMU/8000\n";

/// One OPTIONS per call; the call fails unless it is answered 200.
const PROBE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp probe">
  <send>
    <![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:3035550100@[local_ip]:[local_port]>;tag=[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// A vendor gateway that answers every call, keeping the proxy's Record-Route so the
/// caller's ACK and BYE come back through it (sipp's built-in UAS drops it); `body` is
/// what follows the 200's Contact: its Content-* headers, the blank line and any SDP.
/// The 200 is retransmitted until the ACK comes, as a UAS does (RFC 3261 13.3.1.4):
/// nothing else would recover a lost one. A BYE is taken without the ACK before it
/// (lost, or relayed after the BYE by another worker), as a UAS must. With `hangs_up`
/// the gateway sends the BYE itself, 200 ms after the ACK.
fn uas_accepting(body: &str, hangs_up: bool) -> String {
    let (invite, end) = match hangs_up {
        false => (
            "  <recv request=\"INVITE\"/>\n",
            format!("  <recv request=\"BYE\"/>\n{IN_DIALOG_OK}"),
        ),
        true => (INVITE_KEPT, GATEWAY_BYE.to_owned()),
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp uas 200">
{invite}  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
{body}
    ]]>
  </send>
  <recv request="ACK"/>
{end}</scenario>
"#
    )
}

/// The 200 to a request inside the dialog (its To tagged already).
const IN_DIALOG_OK: &str = r#"  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"#;

/// The gateway's INVITE, its Record-Route kept for the gateway's own requests and its
/// From for their To.
const INVITE_KEPT: &str = r#"  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller"/>
    </action>
  </recv>
"#;

/// The gateway's BYE: to the caller's Contact, along the Record-Route.
const GATEWAY_BYE: &str = r#"  <pause milliseconds="200"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:gateway@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
      To: [$caller]
      [last_Call-ID:]
      CSeq: 1 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"#;

/// The 200 without a body.
const NO_SDP: &str = "      Content-Length: 0\n";

/// The 200 answering the caller's SDP offer (audio on port 7000).
const SDP_ANSWER: &str = "      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user2 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio 7000 RTP/AVP 0
      a=rtpmap:0 PCMU/8000
";

/// A vendor gateway that turns every call down with `status`, after ringing for 1.5 s
/// (an early dialog) if `ring`.
fn uas_declining(ring: bool, status: &str) -> String {
    let ringing = match ring {
        true => format!("{}  <pause milliseconds=\"1500\"/>\n", reply("180 Ringing")),
        false => String::new(),
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="warp uas {status}">
  <recv request="INVITE"/>
{ringing}{}  <recv request="ACK"/>
</scenario>
"#,
        reply(status)
    )
}

/// A bodiless reply to the INVITE, with the UAS's to-tag.
fn reply(status: &str) -> String {
    format!(
        r#"  <send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"#
    )
}

/// How a vendor gateway answers.
#[derive(Clone, Copy)]
pub enum Answer {
    /// 200, then ACK and BYE.
    Accept,
    /// As `Accept`, answering an SDP offer.
    AcceptMedia,
    /// 200, then ACK, and its own BYE (the callee hangs up: [`Uac::callee_hangs_up`]).
    AcceptThenHangUp,
    /// 503 to every INVITE.
    Unavailable,
    /// Rings for 1.5 s, then 486.
    RingThenBusy,
}

/// A sipp UAS on 127.0.0.1:`port` (or another address: [`Uas::start_on`]), logging
/// every message it sees; stopped on drop.
pub struct Uas {
    child: Child,
    log: PathBuf,
}

impl Uas {
    pub fn start(dir: &Path, port: u16, answer: Answer) -> Uas {
        Self::start_on(dir, "127.0.0.1", port, answer)
    }

    /// As [`Uas::start`], on `ip` (`::1`: a vendor gateway reached over IPv6).
    pub fn start_on(dir: &Path, ip: &str, port: u16, answer: Answer) -> Uas {
        Self::spawn(dir, ip, port, answer, true)
    }

    /// As [`Uas::start`] without the message log, for load: [`Uas::invites`] reads 0.
    #[allow(dead_code)] // the edge benchmark's vendor (benches/kamailio/edge.rs)
    pub fn untraced(dir: &Path, port: u16, answer: Answer) -> Uas {
        Self::spawn(dir, "127.0.0.1", port, answer, false)
    }

    fn spawn(dir: &Path, ip: &str, port: u16, answer: Answer, trace: bool) -> Uas {
        let log = dir.join(format!("uas-{port}.log"));
        let sf = dir.join(format!("uas-{port}.xml"));
        let scenario = match answer {
            Answer::Accept => uas_accepting(NO_SDP, false),
            Answer::AcceptMedia => uas_accepting(SDP_ANSWER, false),
            Answer::AcceptThenHangUp => uas_accepting(NO_SDP, true),
            Answer::Unavailable => uas_declining(false, "503 Service Unavailable"),
            Answer::RingThenBusy => uas_declining(true, "486 Busy Here"),
        };
        std::fs::write(&sf, scenario).unwrap();
        let mut sipp = Command::new(binary("sipp"));
        sipp.arg("-sf")
            .arg(sf)
            .args(["-i", ip, "-p", &port.to_string(), "-nostdin"]);
        if trace {
            sipp.args(["-trace_msg", "-message_file"]).arg(&log);
        } else {
            // Under load a burst of requests must not overflow the socket (64 kB).
            sipp.args(["-buff_size", "4194304"]);
        }
        let child = sipp
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp uas");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !udp_bound(ip, port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        Uas { child, log }
    }

    #[allow(dead_code)] // the edge benchmark pins its vendor to a CPU
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// INVITEs this gateway has received (retransmissions included).
    pub fn invites(&self) -> usize {
        self.invites_to("sip:")
    }

    /// INVITEs whose Request-URI starts with `uri` (retransmissions included).
    pub fn invites_to(&self, uri: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(&format!("\nINVITE {uri}"))
            .count()
    }
}

impl Drop for Uas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a socket is bound to UDP `ip`:`port`, `ip` 127.0.0.1 or ::1 (the kernel's
/// socket tables, the address as its words in host order).
fn udp_bound(ip: &str, port: u16) -> bool {
    let (table, address) = match ip {
        "::1" => ("/proc/net/udp6", "00000000000000000000000001000000"),
        _ => ("/proc/net/udp", "0100007F"),
    };
    let wanted = format!("{address}:{port:04X}");
    std::fs::read_to_string(table)
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(&wanted))
}

/// Calls from the customer's PBX (sipp UAC) through Kamailio.
pub struct Uac<'a> {
    pub target: u16,
    pub dir: &'a Path,
    pub calls: u32,
    pub rate: u32,
    /// How long each answered call lasts.
    pub hold_ms: u32,
    /// Local address (a trunk's IP ACL entry).
    pub source: &'a str,
    /// One OPTIONS per call instead of a whole call.
    pub probe: bool,
    /// Offer SDP (audio) in the INVITE.
    pub media: bool,
    /// Digest credentials (username, password) to answer a 407 with.
    pub auth: Option<(&'a str, &'a str)>,
    /// Each answered call is ended by the callee's BYE, not the caller's.
    pub callee_hangs_up: bool,
    pub extra: &'a [&'a str],
}

impl<'a> Uac<'a> {
    /// `calls` calls at `rate` per second from 127.0.0.1 (trunk T1), 200 ms each.
    pub fn new(target: u16, dir: &'a Path, calls: u32, rate: u32) -> Self {
        Uac {
            target,
            dir,
            calls,
            rate,
            hold_ms: 200,
            source: "127.0.0.1",
            probe: false,
            media: false,
            auth: None,
            callee_hangs_up: false,
            extra: &[],
        }
    }

    /// Starts the calls; `wait()` for sipp's verdict (0 = every call completed, 1 = at
    /// least one failed).
    pub fn spawn(&self) -> Calls {
        let sf = self.dir.join(format!("uac-{}.xml", self.source));
        let scenario = match self.probe {
            true => PROBE.to_owned(),
            false => uac(self.auth.is_some(), self.media, self.callee_hangs_up),
        };
        let credentials = self
            .auth
            .map(|(user, password)| ["-au", user, "-ap", password]);
        std::fs::write(&sf, scenario).unwrap();
        Command::new(binary("sipp"))
            .arg(format!(
                "{}:{}",
                uri_host(edge_address(self.source)),
                self.target
            ))
            .arg("-sf")
            .arg(&sf)
            .args(["-s", "12125550123", "-i", self.source, "-nostdin"])
            .args(["-d", &self.hold_ms.to_string()])
            .args(["-m", &self.calls.to_string(), "-r", &self.rate.to_string()])
            .args(["-timeout", "60s"])
            .args(credentials.iter().flatten())
            .args(self.extra)
            .current_dir(self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Calls)
            .expect("start sipp uac")
    }
}

/// A running sipp UAC, killed if dropped unfinished: a test that fails midway leaves
/// no sipp calling on (for up to its 60 s timeout) into the ports later tests use.
pub struct Calls(Child);

impl Calls {
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.0.wait()
    }

    /// sipp's verdict if it has finished, `None` while its calls go on.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.0.try_wait()
    }

    pub fn kill(&mut self) -> io::Result<()> {
        self.0.kill()
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Calls {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
