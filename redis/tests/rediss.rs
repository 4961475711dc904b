//! The client of a `rediss://` URL against a real redis-server's TLS port: it talks
//! when the server's certificate is of the CA given, and gets no answer when it is not.

use warp_testkit::{Redis, TestCa};

async fn ping(client: &redis::Client) -> redis::RedisResult<String> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut conn).await
}

#[tokio::test]
async fn a_rediss_client_talks_to_a_server_of_its_ca_and_to_no_other() {
    let (ours, theirs) = (
        TestCa::make("ours").unwrap(),
        TestCa::make("theirs").unwrap(),
    );
    let redis = Redis::start_tls(&ours).unwrap();
    let url = redis.tls_url.as_deref().unwrap();

    let trusted = warp_redis::client(url, Some(&ours.ca)).unwrap();
    assert_eq!(ping(&trusted).await.unwrap(), "PONG");

    let stranger = warp_redis::client(url, Some(&theirs.ca)).unwrap();
    let e = ping(&stranger).await.unwrap_err().to_string();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // The system's CAs know no test CA either.
    let system = warp_redis::client(url, None).unwrap();
    assert!(ping(&system).await.is_err());
}
