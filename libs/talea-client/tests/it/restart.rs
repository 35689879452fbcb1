//! The retry policy against a real talead: a server restarted while a post is
//! retrying, and a post whose answer is lost after it committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use talea_api::{LedgerApi, PostTransactionRequest, SeqPage};
use talea_client::{RetryPolicy, TaleaClient};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, ROOT, Server};

/// BTC and the two accounts of book `demo`.
async fn setup(api: &dyn LedgerApi) {
    talea_testkit::ledger::seed(
        api,
        &["demo"],
        &[("hot-wallet", "asset"), ("customers:alice", "liability")],
    )
    .await
    .expect("seeds the ledger");
}

/// One BTC from `hot-wallet` to `customers:alice`.
fn deposit(key: &str) -> PostTransactionRequest {
    talea_testkit::ledger::transfer(key, "hot-wallet", "customers:alice", "1")
}

/// A client that counts its retries, with a generous deadline.
fn counting_client(base: &str) -> (TaleaClient, Arc<AtomicU32>) {
    let retries = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&retries);
    let client = TaleaClient::builder(base)
        .token(ROOT)
        .retry_policy(RetryPolicy {
            max_attempts: 1000,
            deadline: Duration::from_secs(30),
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(10),
        })
        .on_retry(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .expect("builds");
    (client, retries)
}

async fn transaction_count(api: &dyn LedgerApi) -> usize {
    api.events("demo", SeqPage::default())
        .await
        .expect("reads")
        .events
        .iter()
        .filter(|e| e.kind == "transaction")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_retrying_across_a_server_restart_lands_once() {
    let db = support::fresh_db().await;
    let server = Server::start(&db.url, "127.0.0.1:0".parse().expect("addr")).await;
    let addr = server.addr;
    let (client, retries) = counting_client(&server.base);
    setup(&client).await;
    server.stop().await;

    let posting = {
        let client = client.clone();
        tokio::spawn(async move { client.post_transaction("demo", deposit("dep-1")).await })
    };
    // The post is failing against the stopped server and retrying.
    talea_testkit::wait_until(Duration::from_secs(10), || {
        let n = retries.load(Ordering::SeqCst);
        async move { n >= 2 }
    })
    .await
    .expect("the post retries while the server is down");
    assert!(!posting.is_finished());

    // The same port again, as a restarted talead would have.
    let server = Server::start(&db.url, addr).await;
    let tx = posting
        .await
        .expect("the task completes")
        .expect("the post lands once the server is back");
    assert_eq!(tx.deduplicated, Some(false));
    assert_eq!(tx.seq, 3);

    let replay = client
        .post_transaction("demo", deposit("dep-1"))
        .await
        .expect("replays");
    assert_eq!(replay.deduplicated, Some(true));
    assert_eq!(replay.tx_id, tx.tx_id);
    assert_eq!(transaction_count(&client).await, 1);
    server.stop().await;
    db.drop_database().await.expect("drops");
}

/// Forwards connections to `upstream`. The first connection's answer is
/// swallowed: as soon as the server starts answering (so the post has
/// committed), both sides are closed, as a dying load balancer would.
async fn lossy_proxy(upstream: std::net::SocketAddr) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let lose_answer = std::mem::take(&mut first);
            tokio::spawn(async move {
                if lose_answer {
                    let (mut client_read, _client_write) = client.split();
                    let (mut server_read, mut server_write) = server.split();
                    let forward = tokio::io::copy(&mut client_read, &mut server_write);
                    let mut byte = [0u8; 1];
                    tokio::select! {
                        _ = forward => {}
                        _ = server_read.read(&mut byte) => {}
                    }
                    // Dropping both streams closes them without a reply.
                } else {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_answer_is_lost_comes_back_deduplicated() {
    let db = support::fresh_db().await;
    let server = Server::start(&db.url, "127.0.0.1:0".parse().expect("addr")).await;
    let direct = support::client(&server.base);
    setup(&direct).await;

    let (through_proxy, retries) = counting_client(&lossy_proxy(server.addr).await);
    let tx = through_proxy
        .post_transaction("demo", deposit("dep-lost"))
        .await
        .expect("the retry is answered");
    assert_eq!(retries.load(Ordering::SeqCst), 1, "one answer was lost");
    // The first attempt committed; the retry was answered with that commit.
    assert_eq!(tx.deduplicated, Some(true));
    assert_eq!(tx.seq, 3);
    assert_eq!(transaction_count(&direct).await, 1);
    let b = direct
        .balances("demo", "customers:alice", None)
        .await
        .expect("reads");
    assert_eq!(b.balances["BTC"], "1", "applied once");
    server.stop().await;
    db.drop_database().await.expect("drops");
}
