//! The plugin's compiled component, run by a real UCMS host with a temporary database.

use serde_json::json;
use ucms_testing::TestPlugin;

#[test]
fn items_are_created_read_updated_and_deleted() {
    let plugin = TestPlugin::start();
    let created = plugin
        .post("/items")
        .as_user(&["items.write"])
        .json(json!({ "title": "Write the docs" }))
        .send();
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();

    // Stored as a document in the plugin's `items` collection.
    let stored = plugin.document("items", &id).expect("the item is stored");
    assert_eq!(stored["data"]["title"], "Write the docs");

    let listed = plugin.get("/items").send().json();
    assert_eq!(listed["items"][0]["title"], "Write the docs");

    let updated = plugin
        .put(&format!("/items/{id}"))
        .as_user(&["items.write"])
        .header("if-match", "1")
        .json(json!({ "title": "Write the docs", "done": true }))
        .send();
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["revision"], 2);

    // A stale revision is refused.
    let stale = plugin
        .put(&format!("/items/{id}"))
        .as_user(&["items.write"])
        .header("if-match", "1")
        .json(json!({ "title": "Overwritten" }))
        .send();
    assert_eq!(stale.status, 409, "{}", stale.text());

    let deleted = plugin.delete(&format!("/items/{id}")).as_user(&["items.write"]).send();
    assert_eq!(deleted.status, 204);
    assert_eq!(plugin.get(&format!("/items/{id}")).send().status, 404);
}

#[test]
fn writing_needs_the_permission() {
    let plugin = TestPlugin::start();
    let anonymous = plugin.post("/items").json(json!({ "title": "x" })).send();
    assert_eq!(anonymous.status, 401);
    let without = plugin
        .post("/items")
        .as_user(&[])
        .json(json!({ "title": "x" }))
        .send();
    assert_eq!(without.status, 403);
    assert!(plugin.documents("items").is_empty());
}
