//! Trunks identified by digest credentials: `warp_authenticated()` ahead of the source
//! address, `$warp(ha1)` for the auth module's check, and which credentials count; the
//! shipped config's WITH_AUTH takes an IP ACL trunk by its address whatever credentials it
//! sends.

use super::{
    authenticated_invite, challenge, digest_credentials, md5_hex, no_redis, start_on,
    start_on_test_data, start_shipped, Credentials, ROUTE,
};
use crate::support::{self, Script};
use std::time::Duration;

/// Challenges requests from 127.0.0.9 or carrying `X-Want-Auth` (user `*`, password
/// `secret`), then routes as [`ROUTE`] does.
fn auth_route() -> String {
    format!(
        "loadmodule \"auth.so\"\nrequest_route {{\n\
         if ($si == \"127.0.0.9\" || is_present_hf(\"X-Want-Auth\")) {{\n\
             if (!pv_proxy_authenticate(\"warp.test\", \"secret\", \"0\")) {{\n\
                 proxy_challenge(\"warp.test\", \"0\");\n\
                 exit;\n\
             }}\n\
             warp_authenticated();\n\
         }}\n{ROUTE}\n}}\n"
    )
}

#[test]
fn authenticated_credentials_identify_the_trunk_before_the_source_address() {
    let cfg = auth_route();
    let (_data, k) = start_on_test_data(Script::Cfg(&cfg));
    // By source address: 127.0.0.1 is T1 (C1).
    let reply = k.request("INVITE", "");
    assert_eq!(reply.header("X-Warp-Trunk"), Some("T1"));
    let as_user = |user| Credentials {
        user,
        password: "secret",
        realm: "warp.test",
    };
    let dnis = "12125550123";
    let trunk_of = |source, user| {
        let reply = authenticated_invite(&k, source, dnis, &as_user(user));
        (reply.code, reply.header("X-Warp-Trunk").map(str::to_owned))
    };
    // From T1's address, authenticated as T3's user: T3 (C2).
    assert_eq!(trunk_of("127.0.0.1", "t3user"), (200, Some("T3".into())));
    let reply = authenticated_invite(&k, "127.0.0.1", dnis, &as_user("t3user"));
    assert_eq!(reply.header("X-Warp-BAN"), Some("C2"));
    // T3 asks for credentials alone: from an address no trunk lists too.
    assert_eq!(trunk_of("127.0.0.9", "t3user"), (200, Some("T3".into())));
    // T4 asks for both: its credentials from its address, and from no other.
    assert_eq!(trunk_of("127.0.0.4", "t4user"), (200, Some("T4".into())));
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &as_user("t4user"));
    assert_eq!(
        (reply.code, reply.header("X-Warp-Why")),
        (
            403,
            Some("trunk T4 takes credentials only from its addresses, not 127.0.0.9 (IP_AND_CREDENTIALS)")
        ),
        "{}",
        k.log()
    );
    // Neither takes its address alone: T4's is not enough, T3's is no ACL.
    let reply = k.request_from("127.0.0.4", "INVITE", "");
    assert_eq!(
        (reply.code, reply.header("X-Warp-Why")),
        (403, Some("trunk T4 needs credentials (IP_AND_CREDENTIALS)"))
    );
    let reply = k.request_from("127.0.0.5", "INVITE", "");
    assert_eq!(
        (reply.code, reply.header("X-Warp-Why")),
        (403, Some("no enabled trunk for source 127.0.0.5"))
    );
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &as_user("nobody"));
    assert_eq!(reply.code, 403, "authenticated, but no trunk has this user");
    assert!(
        reply.header("X-Warp-Why") == Some("no enabled trunk for user nobody"),
        "{}",
        k.log()
    );
}

/// `$warp(ha1)` is the password hash of the credentials a request offers, from the
/// snapshot: for a username it knows, with a password set, in the realm it was hashed
/// in; `$null` otherwise, and for credentials the core's digest parser refuses.
#[test]
fn warp_ha1_is_the_offered_credentials_password_hash() {
    let (_data, k) = start_on_test_data(Script::Native(
        r#"append_to_reply("X-Ha1: $warp(ha1)\r\n"); sl_send_reply("200", "OK");"#,
    ));
    let ha1_of = |header: &str, user: &str, realm: &str| {
        let credentials = format!(
            "{header}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"abc\", \
             uri=\"sip:x@127.0.0.1\", response=\"0123456789abcdef0123456789abcdef\"\r\n"
        );
        k.request("INVITE", &credentials)
            .header("X-Ha1")
            .map(str::to_owned)
    };
    let expected = md5_hex(&format!(
        "t3user:{}:{}",
        support::dataset::REALM,
        support::dataset::PASSWORD
    ));
    let realm = support::dataset::REALM;
    assert_eq!(
        ha1_of("Proxy-Authorization", "t3user", realm),
        Some(expected.clone())
    );
    assert_eq!(ha1_of("Authorization", "t3user", realm), Some(expected));
    // The whole username: the core's user part (`t3`) names nobody.
    let whole = md5_hex(&format!(
        "t3@pbx.test:{realm}:{}",
        support::dataset::PASSWORD
    ));
    assert_eq!(
        ha1_of("Proxy-Authorization", "t3@pbx.test", realm),
        Some(whole)
    );
    let null = Some("<null>".to_owned());
    assert_eq!(ha1_of("Proxy-Authorization", "t3user", "elsewhere"), null);
    assert_eq!(ha1_of("Proxy-Authorization", "t3nopass", realm), null);
    assert_eq!(ha1_of("Proxy-Authorization", "nobody", realm), null);
    let none = k.request("INVITE", "").header("X-Ha1").map(str::to_owned);
    assert_eq!(none, null);
    let garbled = k.request("INVITE", "Proxy-Authorization: Digest ,,,=\"\r\n");
    assert_eq!(garbled.header("X-Ha1"), Some("<null>"), "{}", k.log());
    assert!(!k.log().contains("panic"), "{}", k.log());
}

/// Checks credentials against `$warp(ha1)` in `realm` as the shipped cfg does (what
/// `warp_authenticated()` refuses is a 403 Not Vouched), challenges requests carrying
/// `X-Want-Auth` without any, then routes as [`ROUTE`] does.
fn ha1_auth_route(realm: &str) -> String {
    format!(
        "loadmodule \"auth.so\"\nrequest_route {{\n\
         if (is_present_hf(\"Proxy-Authorization\")) {{\n\
             if ($warp(ha1) == $null || !pv_auth_check(\"{realm}\", \"$warp(ha1)\", \"1\", \"0\")) {{\n\
                 auth_challenge(\"{realm}\", \"0\");\n\
                 exit;\n\
             }}\n\
             if (!warp_authenticated()) {{\n\
                 sl_send_reply(\"403\", \"Not Vouched\");\n\
                 exit;\n\
             }}\n\
         }} else if (is_present_hf(\"X-Want-Auth\")) {{\n\
             auth_challenge(\"{realm}\", \"0\");\n\
             exit;\n\
         }}\n{ROUTE}\n}}\n"
    )
}

/// A digest username is looked up, and identifies its trunk, whole: as the UA hashed
/// it into ha1, and as the API stores it. The core's user part of `t3@pbx.test` is
/// `t3`, which no trunk has: looked up by that, the trunk could never authenticate.
#[test]
fn a_digest_username_with_an_at_sign_authenticates_whole() {
    let realm = support::dataset::REALM;
    let (_data, k) = start_on_test_data(Script::Cfg(&ha1_auth_route(realm)));
    let dnis = "12125550123";
    let as_user = |user| Credentials {
        user,
        password: support::dataset::PASSWORD,
        realm,
    };
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &as_user("t3@pbx.test"));
    assert_eq!(
        (reply.code, reply.header("X-Warp-Trunk")),
        (200, Some("T3")),
        "{}",
        k.log()
    );
    // Nor does a username's user part stand for it: `t3user@pbx.test` is nobody's.
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &as_user("t3user@pbx.test"));
    assert_eq!(reply.code, 407, "{}", k.log());
}

/// A request may carry credentials for several realms (RFC 3261 22.3: a proxy on the
/// way, say the customer's own SBC, challenged it too). `$warp(ha1)` is the hash of
/// the first credentials the snapshot has one for, as the auth module checks the
/// first in its realm: the first header of all, another proxy's, kept the trunk out.
#[test]
fn credentials_after_another_realms_authenticate() {
    let realm = support::dataset::REALM;
    let (_data, k) = start_on_test_data(Script::Cfg(&ha1_auth_route(realm)));
    let dnis = "12125550123";
    let ours = Credentials {
        user: "t3user",
        password: support::dataset::PASSWORD,
        realm,
    };
    let headers = digest_credentials(&k, "127.0.0.9", dnis, &ours).replace(
        "Proxy-Authorization:",
        "Proxy-Authorization: Digest username=\"pbx\", realm=\"sbc.example\", \
         nonce=\"abc\", uri=\"sip:x@sbc.example\", response=\"0123456789abcdef0123456789abcdef\"\r\n\
         Proxy-Authorization:",
    );
    let reply = k.request_to("127.0.0.9", dnis, "INVITE", &headers);
    assert_eq!(
        (reply.code, reply.header("X-Warp-Trunk")),
        (200, Some("T3")),
        "{}",
        k.log()
    );
}

/// Checked against `$warp(ha1)`, credentials count only under the username that hash
/// was looked up for. The auth module checks the first credentials in its realm,
/// `$warp(ha1)` the first it has a hash for: a trunk that knows its own password,
/// hashed in another realm, could put its credentials first and another user's, in
/// the edge's realm and answered with its own hash, second.
#[test]
fn credentials_checked_against_another_users_ha1_are_not_vouched_for() {
    let (_data, k) = start_on_test_data(Script::Cfg(&ha1_auth_route("edge.test")));
    let dnis = "12125550123";
    let (nonce, _) = challenge(&k, "127.0.0.4", dnis);
    let uri = format!("sip:{dnis}@127.0.0.1:{}", k.port);
    let (realm, password) = (support::dataset::REALM, support::dataset::PASSWORD);
    // T3's own credentials in its own realm first, then T4's user in the edge's realm,
    // answered with T3's hash, from T4's address.
    let t3_ha1 = md5_hex(&format!("t3user:{realm}:{password}"));
    let response = md5_hex(&format!(
        "{t3_ha1}:{nonce}:{}",
        md5_hex(&format!("INVITE:{uri}"))
    ));
    let headers = format!(
        "Proxy-Authorization: Digest username=\"t3user\", realm=\"{realm}\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{}\", algorithm=MD5\r\n\
         Proxy-Authorization: Digest username=\"t4user\", realm=\"edge.test\", nonce=\"{nonce}\", \
         uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n",
        "0".repeat(32)
    );
    let reply = k.request_to("127.0.0.4", dnis, "INVITE", &headers);
    assert_eq!(
        (
            reply.code,
            reply.reason.as_str(),
            reply.header("X-Warp-Trunk")
        ),
        (403, "Not Vouched", None),
        "{}",
        k.log()
    );
    assert!(
        k.log()
            .contains("credentials of user t4user were checked against the ha1 of user t3user"),
        "{}",
        k.log()
    );
}

/// Credentials checked against one snapshot's `$warp(ha1)` identify a trunk in a later
/// snapshot only while it has that same hash for the username: reloaded in between
/// with the username now another customer's (and its password theirs), the old
/// owner's password must not make the call the new owner's.
#[test]
fn credentials_identify_a_trunk_only_while_the_snapshot_has_the_hash_they_were_checked_against() {
    let realm = support::dataset::REALM;
    let cfg = ha1_auth_route(realm).replace(
        "if (!warp_authenticated())",
        "if (is_present_hf(\"X-Sleep\")) { usleep(\"800000\"); }\n\
         if (!warp_authenticated())",
    );
    let cfg = format!("loadmodule \"cfgutils.so\"\n{cfg}");
    let data = support::dataset::Data::default();
    let (_dir, snap, k) = start_on(&data, Script::Cfg(&cfg));
    // Generation 2: `t3user` is T1's (C1's), with C1's own password.
    let mut moved = data.dataset();
    for t in &mut moved.trunks {
        let taken = t.credentials.iter().position(|c| c.username == "t3user");
        if let Some(i) = taken {
            t.credentials.remove(i);
        }
    }
    let t1 = moved.trunks.iter_mut().find(|t| t.id == "T1").unwrap();
    t1.auth = warp_core::model::TrunkAuth::Credentials;
    t1.credentials.push(warp_core::model::Credential {
        username: "t3user".into(),
        realm: realm.into(),
        ha1: Some(md5_hex(&format!("t3user:{realm}:another secret"))),
    });
    let dnis = "12125550123";
    let old_password = Credentials {
        user: "t3user",
        password: support::dataset::PASSWORD,
        realm,
    };
    let headers = digest_credentials(&k, "127.0.0.9", dnis, &old_password) + "X-Sleep: 1\r\n";
    let reply = std::thread::scope(|s| {
        let call = s.spawn(|| k.request_to("127.0.0.9", dnis, "INVITE", &headers));
        // Published and reloaded while the script sleeps between the check and routing.
        std::thread::sleep(Duration::from_millis(300));
        let bytes = warp_core::snapshot::compile(&moved, 2).unwrap();
        warp_core::snapshot::publish(&bytes, &snap).unwrap();
        assert_eq!(k.rpc("warp.reload")["generation"], "2");
        call.join().unwrap()
    });
    assert_eq!(
        (reply.code, reply.header("X-Warp-Trunk")),
        (403, None),
        "{}",
        k.log()
    );
    assert_eq!(
        reply.header("X-Warp-Why"),
        Some("user t3user was checked against a password hash the snapshot no longer has"),
        "{}",
        k.log()
    );
}

/// The auth module marks the credentials it looks at before it checks them: a wrong
/// password must not pick a trunk in a script that goes on to the address (IP) trunks
/// when the check fails. Only credentials the script vouched for count.
#[test]
fn credentials_identify_a_trunk_only_once_the_script_vouched_for_them() {
    let cfg = format!(
        "loadmodule \"auth.so\"\nrequest_route {{\n\
         if (is_present_hf(\"Proxy-Authorization\")) {{\n\
             if (pv_proxy_authenticate(\"warp.test\", \"secret\", \"0\")) {{\n\
                 warp_authenticated();\n\
             }}\n\
         }} else if (is_present_hf(\"X-Want-Auth\")) {{\n\
             proxy_challenge(\"warp.test\", \"0\");\n\
             exit;\n\
         }}\n{ROUTE}\n}}\n"
    );
    let (_data, k) = start_on_test_data(Script::Cfg(&cfg));
    let with = |password| Credentials {
        user: "t3user",
        password,
        realm: "warp.test",
    };
    let dnis = "12125550123";
    // Right: T3 by its user, from T1's address.
    let reply = authenticated_invite(&k, "127.0.0.1", dnis, &with("secret"));
    assert_eq!(
        (reply.code, reply.header("X-Warp-Trunk")),
        (200, Some("T3"))
    );
    // Wrong: the address decides (T1), and from an address no trunk lists, nobody.
    let reply = authenticated_invite(&k, "127.0.0.1", dnis, &with("WRONG"));
    assert_eq!(
        (reply.code, reply.header("X-Warp-Trunk")),
        (200, Some("T1"))
    );
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &with("WRONG"));
    assert_eq!(reply.code, 403, "{}", k.log());
}

/// A PBX on an IP_ACL trunk that sends credentials unasked (cached from another proxy,
/// or left from before its trunk went IP-only) is taken by its address: credentials the
/// snapshot cannot check are no reason to challenge it. They are where an address is
/// not enough: no trunk's, or an IP_AND_CREDENTIALS trunk's. No vendor sees any.
#[test]
fn the_shipped_config_takes_an_ip_acl_trunk_by_its_address_whatever_credentials_it_sends() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let realm = support::dataset::REALM;
    let defines = ["WITH_AUTH".to_string(), format!("AUTH_REALM=\"{realm}\"")];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let stray = format!(
        "Proxy-Authorization: Digest username=\"pbx\", realm=\"{realm}\", nonce=\"abc\", \
         uri=\"sip:x@127.0.0.1\", response=\"{}\"\r\n",
        "0".repeat(32)
    );
    let dnis = "12125550123";
    let reply = k.request_to("127.0.0.1", dnis, "INVITE", &stray);
    assert_eq!(reply.code, 200, "{}", k.log());
    for source in ["127.0.0.4", "127.0.0.9"] {
        let reply = k.request_to(source, dnis, "INVITE", &stray);
        assert_eq!(reply.code, 407, "{source}: {}", k.log());
    }
    // T3's checked credentials are not passed on either.
    let t3 = Credentials {
        user: "t3user",
        password: support::dataset::PASSWORD,
        realm,
    };
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &t3);
    assert_eq!(reply.code, 200, "{}", k.log());
    let relayed = vendor.received("INVITE");
    assert_eq!(relayed.len(), 2, "{relayed:#?}");
    for invite in relayed {
        assert!(!invite.contains("Proxy-Authorization"), "{invite}");
    }
}
