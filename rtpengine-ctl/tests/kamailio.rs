//! Kamailio 5.6's own rtpengine module pointed at the proxy: a sipp call through Kamailio
//! completes offer, answer and delete on an rtpengine node behind the proxy.

mod common;

use common::{qos_entries, start_redis, Rtpengine};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use warp_rtpengine::proxy::config::{ListenSpec, ProxyConfig};
use warp_rtpengine::proxy::Proxy;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM first: Kamailio's main process then stops the workers it forked,
        // which a SIGKILL would leave running as orphans.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_rtpengine_module_completes_a_sipp_call_through_the_proxy() {
    let redis = start_redis();
    let node = Rtpengine::start_with(60, &["--log-level=6"]);
    let proxy = Proxy::start(ProxyConfig {
        listen: vec![ListenSpec {
            addr: "127.0.0.1:0".parse().unwrap(),
            set: 0,
        }],
        nodes: vec![format!("n1={}", node.ng).parse().unwrap()],
        redis_url: Some(redis.url.clone()),
        ..ProxyConfig::default()
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let free = || warp_testkit::free_udp_port().unwrap();
    let (sip, uas, uac) = (free(), free(), free());
    let cfg = include_str!("kamailio/kamailio.cfg.in")
        .replace("@SIP_PORT@", &sip.to_string())
        .replace("@UAS_PORT@", &uas.to_string())
        .replace("@NG_PORT@", &proxy.ng_addrs[0].port().to_string());
    let cfg_path = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let kam_log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
    let _kamailio = Running(
        Command::new("kamailio")
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-w"])
            .arg(dir.path())
            .args(["-Y", &dir.path().display().to_string(), "-P"])
            .arg(dir.path().join("kamailio.pid"))
            .stdout(Stdio::null())
            .stderr(kam_log)
            .spawn()
            .expect("kamailio must be installed"),
    );
    let _uas = Running(
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &uas.to_string(),
                "-m",
                "1",
                "-nostdin",
            ])
            .args(["-timeout", "20s"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp (Debian package sip-tester) must be installed"),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let target = format!("127.0.0.1:{sip}");
    let uac_run = tokio::task::spawn_blocking(move || {
        Command::new("sipp")
            .args([
                "-sn",
                "uac",
                &target,
                "-i",
                "127.0.0.1",
                "-p",
                &uac.to_string(),
            ])
            .args([
                "-m",
                "1",
                "-d",
                "500",
                "-nostdin",
                "-timeout",
                "20s",
                "-timeout_error",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let kam_log = std::fs::read_to_string(dir.path().join("kamailio.log")).unwrap_or_default();
    assert!(
        uac_run.status.success(),
        "sipp uac failed: {}\nkamailio: {kam_log}",
        String::from_utf8_lossy(&uac_run.stdout)
    );

    // offer + answer + delete reached the node through the proxy; delete produced QoS.
    let entries = qos_entries(&redis, 1).await;
    assert_eq!(
        entries.len(),
        1,
        "one final QoS record; kamailio: {kam_log}\nrtpengine: {}",
        node.log()
    );
    let f = &entries[0].1;
    assert_eq!(f["node"], "n1");
    assert_eq!(f["event"], "final");
    let qos: serde_json::Value = serde_json::from_str(&f["qos"]).unwrap();
    assert_eq!(
        qos["legs"].as_array().unwrap().len(),
        2,
        "offer and answer both reached the node: {qos}"
    );
    let n1 = proxy.handler.pool.by_name("n1").unwrap();
    assert_eq!(n1.metrics.active_calls(), 0, "delete unpinned the call");
    assert!(n1.metrics.requests() >= 3, "ping, offer, answer, delete");
}
