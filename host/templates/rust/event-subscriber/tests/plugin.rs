//! The plugin's compiled component, run by a real UCMS host with a temporary database.

use serde_json::json;
use ucms_testing::TestPlugin;

#[test]
fn a_published_event_is_counted() {
    let plugin = TestPlugin::start();
    let delivery = plugin.publish("content.published", json!({ "id": "post-1" }));
    assert!(delivery.delivered(), "{delivery:?}");
    assert_eq!(plugin.kv("count:content.published"), Some(json!(1)));

    let stats = plugin.get("/stats").send().json();
    assert_eq!(stats["published"], 1);
    assert_eq!(stats["recent"][0]["topic"], "content.published");
    assert_eq!(stats["recent"][0]["source"], "harness");
}

#[test]
fn the_trim_schedule_keeps_ten() {
    let plugin = TestPlugin::start();
    for i in 0..12 {
        assert!(plugin.publish("content.updated", json!({ "n": i })).delivered());
    }
    assert_eq!(plugin.kv("recent").unwrap().as_array().unwrap().len(), 12);
    plugin.tick("trim").expect("the tick succeeds");
    assert_eq!(plugin.kv("recent").unwrap().as_array().unwrap().len(), 10);
}
