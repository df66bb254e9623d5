//! The plugin's compiled component, run by a real UCMS host with a temporary database, relaying
//! to a receiver this test runs on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use serde_json::json;
use ucms_testing::TestPlugin;

/// Accepts one HTTP request, answers `status`, and sends back its headers and body.
fn receiver(status: u16) -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        tx.send((head, String::from_utf8(body).unwrap())).unwrap();
    });
    (url, rx)
}

#[test]
fn an_event_is_relayed_with_the_token() {
    let (url, received) = receiver(204);
    let plugin = TestPlugin::builder()
        .setting("url", json!(url))
        .secret("token", "s3cret")
        .allow_private_egress()
        .start();
    let delivery = plugin.publish("orders.placed", json!({ "order": 42 }));
    assert!(delivery.delivered(), "{delivery:?}");

    let (head, body) = received.recv().unwrap();
    assert!(head.to_ascii_lowercase().contains("authorization: bearer s3cret"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["topic"], "orders.placed");
    assert_eq!(body["payload"], json!({ "order": 42 }));

    let counters = plugin.get("/deliveries").as_user(&["deliveries.read"]).send();
    assert_eq!(counters.json(), json!({ "delivered": 1, "failed": 0 }));
}

#[test]
fn a_failing_endpoint_fails_the_delivery() {
    let (url, _received) = receiver(500);
    let plugin = TestPlugin::builder()
        .setting("url", json!(url))
        .allow_private_egress()
        .start();
    let delivery = plugin.publish("orders.placed", json!({ "order": 7 }));
    assert!(!delivery.delivered(), "{delivery:?}");
    assert!(delivery.error().unwrap_or_default().contains("500"), "{delivery:?}");
    assert_eq!(plugin.kv("failed"), Some(json!(1)));
}
