//! WITH_ANTIFLOOD: an address refused over and over (calls, a REGISTER scan, password
//! guesses) is banned, its requests unanswered, and the ban shared with the other edges
//! over dmq; a trunk's own burst is never counted.

use super::hairpin::NO_HAIRPIN_CHECK;
use super::{
    authenticated_invite, digest_credentials, no_redis, refused_until_banned, start_shipped,
    Credentials, DmqEdges,
};
use crate::support;
use std::time::{Duration, Instant};

/// `WITH_ANTIFLOOD`: an unknown address refused more than PIKE_DENSITY times in 2 s is
/// banned for BAN_TIME s (its requests go unanswered, so a scanner learns nothing and
/// costs no reply), while a trunk's own burst of calls is never counted.
#[test]
fn the_shipped_config_bans_an_address_it_refuses_over_and_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let defines = [
        "WITH_ANTIFLOOD",
        "PIKE_DENSITY=5",
        "BAN_TIME=3",
        NO_HAIRPIN_CHECK,
    ]
    .map(String::from);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (dnis, wait) = ("12125550123", Duration::from_secs(1));
    let stranger = "127.0.0.7";
    refused_until_banned(&k, stranger, "INVITE", 403);
    // T1's burst, over the density, is its own business (its CPS limit's).
    for _ in 0..20 {
        let reply = k.request_to("127.0.0.1", dnis, "INVITE", "");
        assert_eq!(reply.code, 200, "{}", k.log());
    }
    std::thread::sleep(Duration::from_secs(4));
    let reply = k.request_within(wait, stranger, dnis, "INVITE", "");
    assert_eq!(
        reply.map(|r| r.code),
        Some(403),
        "the ban outlived BAN_TIME"
    );
}

/// `WITH_ANTIFLOOD` with `DMQ_ADDRESS`: a ban made on one edge holds on the other, which
/// joined the first over dmq; a KDMQ from outside `DMQ_NETWORK` is dropped unanswered.
#[test]
fn the_shipped_config_shares_its_bans_with_the_other_edges() {
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let edges = DmqEdges::start(&data, &["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=30"]);
    let (a, b) = (&edges.a, &edges.b);
    let stranger = "127.0.0.7";
    refused_until_banned(a, stranger, "INVITE", 403);
    let wait = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b
        .kamcmd(&["htable.dump", "ipban"])
        .unwrap()
        .contains(stranger)
    {
        assert!(
            Instant::now() < deadline,
            "the ban never reached B:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = b.request_within(wait, stranger, "12125550123", "INVITE", "");
    assert!(reply.is_none(), "banned on A, answered by B: {reply:?}");
    // A trunk still gets in through B.
    assert_eq!(b.request("INVITE", "").code, 200, "{}", b.log());
    // dmq answers a KDMQ from the edges' network, and no other.
    let kdmq = |source| b.request_within(wait, source, "htable", "KDMQ", "");
    assert!(kdmq("127.0.0.1").is_some(), "{}", b.log());
    assert!(kdmq("127.0.0.9").is_none());
}

/// `WITH_ANTIFLOOD`: a REGISTER scan (hunting for extensions) is refused with a 405 and
/// banned like a stranger's calls; a trunk's out-of-dialog REGISTER now and then is not.
#[test]
fn the_shipped_config_bans_a_register_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let defines = ["WITH_ANTIFLOOD", "PIKE_DENSITY=5", "BAN_TIME=3"].map(String::from);
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    refused_until_banned(&k, "127.0.0.7", "REGISTER", 405);
    for _ in 0..3 {
        let reply = k.request_to("127.0.0.1", "12125550123", "REGISTER", "");
        assert_eq!(reply.code, 405, "{}", k.log());
    }
}

/// `WITH_ANTIFLOOD` with `WITH_AUTH`: wrong passwords count towards a ban, challenges to
/// requests without credentials do not (every call of a credentials trunk starts with
/// one); the trunk itself still gets in from elsewhere with its right password.
#[test]
fn the_shipped_config_bans_an_address_guessing_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let data = support::dataset::Data::with_gateways();
    let _vendor = support::vendor::Vendor::start(data.cheap.0, support::vendor::Plays::Answers);
    let realm = support::dataset::REALM;
    let defines = [
        "WITH_AUTH".to_string(),
        format!("AUTH_REALM=\"{realm}\""),
        "WITH_ANTIFLOOD".into(),
        "PIKE_DENSITY=5".into(),
    ];
    let k = start_shipped(dir.path(), &data, &no_redis(), &defines);
    let (dnis, wait) = ("12125550123", Duration::from_secs(1));
    for _ in 0..20 {
        let reply = k.request_to("127.0.0.7", dnis, "INVITE", "");
        assert_eq!(reply.code, 407, "{}", k.log());
    }
    let guesser = "127.0.0.8";
    let guess = |password| Credentials {
        user: "t3user",
        password,
        realm,
    };
    let refused = (0..30)
        .map_while(|_| {
            let answer = digest_credentials(&k, guesser, dnis, &guess("guessed"));
            k.request_within(wait, guesser, dnis, "INVITE", &answer)
        })
        .inspect(|reply| assert_eq!(reply.code, 407, "{}", k.log()))
        .count();
    assert!(
        (5..30).contains(&refused),
        "{refused} guesses before the ban"
    );
    let reply = k.request_within(wait, guesser, dnis, "INVITE", "");
    assert!(reply.is_none(), "banned, answered {reply:?}");
    let reply = authenticated_invite(&k, "127.0.0.9", dnis, &guess(support::dataset::PASSWORD));
    assert_eq!(reply.code, 200, "{}", k.log());
}
