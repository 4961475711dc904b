//! Requests within a call on the shipped config go to the call's other side and
//! nowhere else: a Request-URI, an alias in it or a Route naming another address (the
//! edge's own Redis) is refused 403, from either side; a target refresh moves where
//! they go; an answer from another host than the vendor's, naming that side's target,
//! is dropped.

use super::{no_redis, start_shipped};
use crate::support::udp::{
    final_reply, finals_within, header_of, next_request, raw_request, raw_socket, reply_to,
    send_raw, InDialog,
};
use crate::support::{self, Kamailio};
use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

/// A service the edge reaches that no request of a call may: a TCP listener (Redis's
/// kind) and a UDP socket on loopback, each watched for anything that arrives.
struct Bystander {
    tcp: TcpListener,
    udp: UdpSocket,
}

impl Bystander {
    fn start() -> Bystander {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        Bystander { tcp, udp }
    }

    fn tcp_port(&self) -> u16 {
        self.tcp.local_addr().unwrap().port()
    }

    fn udp_port(&self) -> u16 {
        self.udp.local_addr().unwrap().port()
    }

    /// Nothing connected to it, nothing was sent to it.
    fn untouched(&self, k: &Kamailio) {
        if let Ok((mut conn, _)) = self.tcp.accept() {
            let mut got = String::new();
            conn.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let _ = conn.read_to_string(&mut got);
            panic!("the edge connected to the TCP service: {got}\n{}", k.log());
        }
        let mut buf = [0u8; 65535];
        if let Ok(n) = self.udp.recv(&mut buf) {
            let got = String::from_utf8_lossy(&buf[..n]);
            panic!("the edge sent to the UDP service: {got}\n{}", k.log());
        }
    }
}

/// A body Redis would run line by line, had the request reached it.
const REDIS_LINES: &str =
    "Content-Type: text/plain\r\nContent-Length: 20\r\n\r\nDEL warp:cdr:raw\r\n\r\n";

/// A live call: the caller's INFO to another address and port than the vendor's
/// (over TCP, as Redis takes it; over UDP), or to the vendor's with an alias naming
/// another, is refused 403 and reaches nothing; its INFO to the vendor still passes.
#[test]
fn the_shipped_config_relays_no_request_of_a_caller_past_its_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let bystander = Bystander::start();
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "pinned");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("pinned", data.cheap.0), &invite);
    let vendor_uri = format!("sip:vendor@127.0.0.1:{}", data.cheap.0);
    let elsewhere = [
        format!("sip:x@127.0.0.1:{};transport=tcp", bystander.tcp_port()),
        format!("sip:x@127.0.0.1:{}", bystander.udp_port()),
        format!("{vendor_uri};alias=127.0.0.1~{}~2", bystander.tcp_port()),
        format!("{vendor_uri};alias=127.0.0.1~{}~1", bystander.udp_port()),
    ];
    for (cseq, target) in (2..).zip(&elsewhere) {
        let info = dialog
            .request("INFO", cseq, REDIS_LINES)
            .replacen(&vendor_uri, target, 1);
        send_raw(&sock, &k, &info);
        let reply = final_reply(&sock, &k, "pinned");
        assert_eq!(reply.code, 403, "{target}: {}", k.log());
    }
    bystander.untouched(&k);
    assert!(vendor.received("INFO").is_empty());
    send_raw(&sock, &k, &dialog.request("INFO", 9, REDIS_LINES));
    vendor.wait_for("INFO", &k);
}

/// The same from the vendor's side: its INFO to another address than the caller's is
/// refused 403 and reaches nothing; its INFO to the caller still passes.
#[test]
fn the_shipped_config_relays_no_request_of_a_vendor_past_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let bystander = Bystander::start();
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "pinned");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("pinned", data.cheap.0), &invite);
    let (vsock, vport) = raw_socket();
    let caller_uri = format!("sip:3035550100@127.0.0.1:{lport}");
    let elsewhere = [
        format!("sip:x@127.0.0.1:{};transport=tcp", bystander.tcp_port()),
        format!("{caller_uri};alias=127.0.0.1~{}~1", bystander.udp_port()),
    ];
    for (cseq, target) in (1..).zip(&elsewhere) {
        let info = dialog
            .vendor_request("INFO", cseq, vport)
            .replacen(&caller_uri, target, 1)
            .replace("Content-Length: 0\r\n\r\n", REDIS_LINES);
        send_raw(&vsock, &k, &info);
        let reply = final_reply(&vsock, &k, "pinned");
        assert_eq!(reply.code, 403, "{target}: {}", k.log());
    }
    bystander.untouched(&k);
    send_raw(&vsock, &k, &dialog.vendor_request("INFO", 5, vport));
    next_request(&sock, "INFO", "pinned", &k);
}

/// A target refresh moves where a side's requests go: the caller's re-INVITE naming a
/// new Contact, the vendor's re-INVITE naming one, and the caller's 200 to the vendor's
/// re-INVITE naming yet another (which the dialog module does not follow); each time
/// the other side's next request reaches the new Contact, and the old one is refused.
#[test]
fn the_shipped_config_follows_a_target_refresh_of_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "moved");
    let (dialog, _) = InDialog::answered(&sock, &k, lport, ("moved", data.cheap.0), &invite);
    let (vsock, vport) = raw_socket();
    let caller_uri = format!("sip:3035550100@127.0.0.1:{lport}");

    // The caller moves to another socket: its re-INVITE names it.
    let (moved, mport) = raw_socket();
    let moved_uri = format!("sip:3035550100@127.0.0.1:{mport}");
    let reinvite = dialog
        .request("INVITE", 2, "Content-Length: 0\r\n\r\n")
        .replacen(
            &format!("Contact: <{caller_uri}>"),
            &format!("Contact: <{moved_uri}>"),
            1,
        );
    send_raw(&sock, &k, &reinvite);
    assert_eq!(final_reply(&sock, &k, "moved").code, 200, "{}", k.log());
    let info = dialog
        .vendor_request("INFO", 1, vport)
        .replacen(&caller_uri, &moved_uri, 1);
    send_raw(&vsock, &k, &info);
    let got = next_request(&moved, "INFO", "moved", &k);
    send_raw(&moved, &k, &reply_to(&got, "200 OK", ""));
    assert_eq!(final_reply(&vsock, &k, "moved").code, 200, "{}", k.log());

    // The vendor moves to another socket: its re-INVITE names it, and the caller
    // answers it naming a third socket of its own.
    let (vmoved, vmport) = raw_socket();
    let reinvite = dialog
        .vendor_request("INVITE", 2, vmport)
        .replacen(&caller_uri, &moved_uri, 1);
    send_raw(&vmoved, &k, &reinvite);
    let got = next_request(&moved, "INVITE", "moved", &k);
    let (third, tport) = raw_socket();
    let third_uri = format!("sip:3035550100@127.0.0.1:{tport}");
    let ok = reply_to(&got, "200 OK", &format!("Contact: <{third_uri}>\r\n"));
    send_raw(&moved, &k, &ok);
    assert_eq!(final_reply(&vmoved, &k, "moved").code, 200, "{}", k.log());

    let to_vendor = format!("sip:vendor@127.0.0.1:{vmport}");
    let info = dialog
        .request("INFO", 3, "Content-Length: 0\r\n\r\n")
        .replacen(
            &format!("sip:vendor@127.0.0.1:{}", data.cheap.0),
            &to_vendor,
            1,
        );
    send_raw(&third, &k, &info);
    let got = next_request(&vmoved, "INFO", "moved", &k);
    // Answered, so that tm sends it no more.
    send_raw(&vmoved, &k, &reply_to(&got, "200 OK", ""));
    let info = dialog
        .vendor_request("INFO", 3, vmport)
        .replacen(&caller_uri, &third_uri, 1);
    send_raw(&vmoved, &k, &info);
    let got = next_request(&third, "INFO", "moved", &k);
    send_raw(&third, &k, &reply_to(&got, "200 OK", ""));
    assert_eq!(final_reply(&vmoved, &k, "moved").code, 200, "{}", k.log());
    // The caller's first Contact is no target any more.
    let info = dialog.vendor_request("INFO", 4, vmport);
    send_raw(&vmoved, &k, &info);
    assert_eq!(final_reply(&vmoved, &k, "moved").code, 403, "{}", k.log());
}

/// A vendor behind a proxy that record-routed the call: the caller's requests go to
/// that proxy (the Route past the edge's), which the dialog holds in the vendor's route
/// set; a Route naming another address in its place is refused 403 and reaches nothing.
#[test]
fn the_shipped_config_relays_a_request_to_the_vendors_proxy_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let bystander = Bystander::start();
    let gateway = UdpSocket::bind(("127.0.0.1", data.cheap.0)).unwrap();
    gateway
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let (proxy, pport) = raw_socket();
    let (sock, lport) = raw_socket();
    send_raw(
        &sock,
        &k,
        &raw_request(k.port, lport, "INVITE", "+12125550123", "proxied"),
    );
    let invite = next_request(&gateway, "INVITE", "proxied", &k);
    // The proxy's Record-Route above the edge's, as the proxy added it.
    let to = header_of(&invite, "To");
    let ok = reply_to(
        &invite,
        "200 OK",
        &format!("Contact: <sip:vendor@127.0.0.1:{}>\r\n", data.cheap.0),
    )
    .replacen(
        "Record-Route: ",
        &format!("Record-Route: <sip:127.0.0.1:{pport};lr>, "),
        1,
    )
    .replacen(&format!("To: {to}"), &format!("To: {to};tag=v"), 1);
    gateway
        .send_to(ok.as_bytes(), ("127.0.0.1", k.port))
        .unwrap();
    let answer = final_reply(&sock, &k, "proxied");
    assert_eq!(answer.code, 200, "{}", k.log());
    let record_route = answer.header("Record-Route").unwrap();
    let (to_proxy, edge) = record_route.split_once(", ").unwrap();
    let dialog = |route: &str| InDialog {
        edge: k.port,
        lport,
        call: "proxied",
        vendor: data.cheap.0,
        route: Some(format!("{edge}, {route}")),
        to: answer.header("To").unwrap().to_owned(),
    };
    send_raw(
        &sock,
        &k,
        &dialog(to_proxy).request("ACK", 1, "Content-Length: 0\r\n\r\n"),
    );
    next_request(&proxy, "ACK", "proxied", &k);

    let elsewhere = format!("<sip:127.0.0.1:{};lr;transport=tcp>", bystander.tcp_port());
    send_raw(
        &sock,
        &k,
        &dialog(&elsewhere).request("INFO", 2, REDIS_LINES),
    );
    assert_eq!(final_reply(&sock, &k, "proxied").code, 403, "{}", k.log());
    bystander.untouched(&k);
    send_raw(&sock, &k, &dialog(to_proxy).request("INFO", 3, REDIS_LINES));
    next_request(&proxy, "INFO", "proxied", &k);
}

/// The caller answers its own INVITE in its vendor's name (the edge's Via branch is
/// the caller's to work out), naming a Contact of its choosing: the forged 200 comes
/// from another host than the vendor's gateway (127.0.0.5) and is dropped, so the call
/// is not answered and its requests do not reach that Contact.
#[test]
fn the_shipped_config_drops_an_answer_from_another_host_than_its_vendors() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data {
        gateway_hosts: ("127.0.0.5", "127.0.0.1"),
        ..support::dataset::Data::with_gateways()
    };
    let plays = support::vendor::Plays::Rings;
    let vendor = support::vendor::Vendor::start_on("127.0.0.5", data.cheap.0, plays);
    let k = start_shipped(dir.path(), &data, &no_redis(), &[]);
    let bystander = Bystander::start();
    let (sock, lport) = raw_socket();
    let invite = raw_request(k.port, lport, "INVITE", "+12125550123", "forged");
    send_raw(&sock, &k, &invite);
    let at_vendor = vendor.wait_for("INVITE", &k).remove(0);
    let to = header_of(&at_vendor, "To");
    let contact = format!("Contact: <sip:x@127.0.0.1:{}>\r\n", bystander.udp_port());
    let forged = reply_to(&at_vendor, "200 OK", &contact).replacen(
        &format!("To: {to}"),
        &format!("To: {to};tag=forged"),
        1,
    );
    send_raw(&sock, &k, &forged);
    let finals = finals_within(&sock, Duration::from_secs(1));
    assert!(finals.is_empty(), "{finals:?}\n{}", k.log());
    let dialog = InDialog {
        edge: k.port,
        lport,
        call: "forged",
        vendor: bystander.udp_port(),
        route: None,
        to: format!("{to};tag=forged"),
    };
    let info = dialog
        .request("INFO", 2, REDIS_LINES)
        .replacen("sip:vendor@", "sip:x@", 1);
    send_raw(&sock, &k, &info);
    bystander.untouched(&k);
}
