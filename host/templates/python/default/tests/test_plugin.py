"""The plugin's compiled component, run by a real UCMS host with a temporary database."""

import os
import unittest

from ucms_sdk.testing import TestPlugin

PLUGIN = os.path.join(os.path.dirname(__file__), "..")


class PluginTest(unittest.TestCase):
    def test_hello_greets_anyone(self):
        with TestPlugin(PLUGIN) as plugin:
            response = plugin.get("/hello?name=Ada")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.json()["message"], "Hello from @NAME@, Ada!")

    def test_notes_need_the_write_permission(self):
        with TestPlugin(PLUGIN) as plugin:
            refused = plugin.post("/notes", json={"text": "first"})
            self.assertEqual(refused.status, 401)

            created = plugin.post("/notes", json={"text": "first"}, as_user=["notes.write"])
            self.assertEqual(created.status, 201, created.body)
            self.assertTrue(any("1 notes stored" in line for line in created.logs), created.logs)

            self.assertEqual(plugin.kv("notes"), [{"text": "first"}])
            self.assertEqual(plugin.get("/notes").json(), [{"text": "first"}])


if __name__ == "__main__":
    unittest.main()
