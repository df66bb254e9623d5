//! The plugin's compiled component, run by a real UCMS host with a temporary database.

use serde_json::json;
use ucms_testing::TestPlugin;

#[test]
fn hello_greets_anyone() {
    let plugin = TestPlugin::start();
    let response = plugin.get("/hello?name=Ada").send();
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["message"], "Hello from @NAME@, Ada!");
}

#[test]
fn notes_need_the_write_permission() {
    let plugin = TestPlugin::start();
    let refused = plugin.post("/notes").json(json!({ "text": "first" })).send();
    assert_eq!(refused.status, 401, "anonymous callers are refused");

    let created = plugin
        .post("/notes")
        .as_user(&["notes.write"])
        .json(json!({ "text": "first" }))
        .send();
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.logs.iter().any(|l| l.contains("1 notes stored")), "{:?}", created.logs);

    // What the plugin stored, read straight from its key-value space.
    assert_eq!(plugin.kv("notes"), Some(json!([{ "text": "first" }])));
    assert_eq!(plugin.get("/notes").send().json(), json!([{ "text": "first" }]));
}
