//! The plugin's compiled component, run by a real UCMS host with a temporary database.

use serde_json::json;
use ucms_testing::TestPlugin;

#[test]
fn the_page_reads_its_summary() {
    let plugin = TestPlugin::start();
    let first = plugin.get("/summary").as_user(&["dashboard.view"]).send();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json(), json!({ "message": "Welcome!", "views": 1 }));
}

#[test]
fn editing_needs_its_own_permission() {
    let plugin = TestPlugin::start();
    let viewer = plugin
        .put("/message")
        .as_user(&["dashboard.view"])
        .json(json!({ "message": "Hi" }))
        .send();
    assert_eq!(viewer.status, 403);
    let editor = plugin
        .put("/message")
        .as_user(&["dashboard.view", "dashboard.edit"])
        .json(json!({ "message": "Hi" }))
        .send();
    assert_eq!(editor.status, 204, "{}", editor.text());
    assert_eq!(plugin.kv("message"), Some(json!("Hi")));
}

#[test]
fn the_page_is_in_the_folder() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/admin/index.html");
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("\"/api/@NAME@\"") && html.contains("/summary"));
}
