// The public marketplace in Chromium: search by text and category, a plugin page, sign up, sign
// out and in, a review, the rating updating, an edit. Run by the Rust test
// `registry/server/tests/marketplace.rs` (marketplace_in_chromium), which starts a registry with
// signed packages and passes MARKET_URL, SCREENSHOTS and CHROMIUM.
import assert from "node:assert/strict";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.MARKET_URL;
const shots = process.env.SCREENSHOTS;
assert.ok(base && shots, "set MARKET_URL and SCREENSHOTS");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  // Anything the Content-Security-Policy refused, or any script error, fails the run.
  page.on("console", (m) => {
    // The wrong password below is answered with 401, which Chromium reports on the console.
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const shot = (name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  const step = (what) => console.log(`- ${what}`);

  step("browse");
  await page.goto(`${base}/`);
  await assert.doesNotReject(page.getByRole("heading", { level: 1, name: "Plugins for UCMS" }).waitFor());
  assert.equal(await page.locator("#results > li").count(), 3);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await shot("home");

  step("search by text, then narrow by category");
  await page.getByLabel("Text").fill("visitors");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.waitForURL(/q=visitors/);
  assert.equal(await page.locator("#results > li").count(), 2);
  // The category menu submits on change (market.js).
  await Promise.all([
    page.waitForURL(/category=content/),
    page.getByLabel("Category").selectOption("content"),
  ]);
  const found = await page.locator("#results h3 a").allTextContents();
  assert.deepEqual(found, ["greeter"]);
  assert.match(await page.locator("#results-heading").textContent(), /1 plugin found/);
  await shot("search");

  step("open a plugin page");
  await page.goto(`${base}/?q=hello`);
  await page.locator("#results h3 a", { hasText: "hello" }).click();
  await page.waitForURL(/\/plugins\/hello$/);
  assert.match(await page.locator("h1").textContent(), /hello\s+0\.2\.0/);
  assert.equal(await page.locator("#readme strong").textContent(), "Bold");
  assert.equal(await page.evaluate(() => window.pwned), undefined, "the README ran no script");
  assert.equal(await page.locator("#readme script").count(), 0);
  assert.match(await page.locator("#capabilities").textContent(), /kv/);
  assert.match(await page.locator("#changelog").textContent(), /First release/);
  assert.equal(await page.locator("#versions tbody tr").count(), 2);
  assert.match(await page.locator(".plugin-head .badge").textContent(), /verified/);
  assert.match(await page.locator("#rating-summary").textContent(), /No ratings yet/);
  await shot("plugin");

  step("sign up from the plugin page");
  await page.locator("#reviews").getByRole("link", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByLabel("Email").fill("dana@example.com");
  await page.getByLabel("Display name").fill("Dana");
  await page.getByLabel("Password").fill("a long enough password");
  await page.getByRole("button", { name: "Create account" }).click();
  await page.waitForURL(/\/plugins\/hello$/);
  assert.match(await page.locator("header.top nav").textContent(), /Signed in as\s*Dana/);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "ucms_market");
  assert.ok(session && session.httpOnly, "the session cookie is HTTP-only");
  assert.equal(await page.evaluate(() => document.cookie), "", "scripts can't read the session");
  await shot("signed-up");

  step("sign out, then sign in");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${base}/`);
  await page.goto(`${base}/signin?next=/plugins/hello`);
  await page.getByLabel("Email").fill("dana@example.com");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(await page.getByRole("alert").textContent(), /email or the password is wrong/);
  await page.getByLabel("Password").fill("a long enough password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/plugins\/hello$/);

  step("write a review");
  assert.equal(await page.locator("#review-form h3").textContent(), "Write a review");
  await page.getByLabel("5 stars").check();
  await page.getByLabel("Your review").fill("Friendly and tiny.");
  assert.match(await page.locator("#review-count").textContent(), /4982 characters left/);
  await page.getByRole("button", { name: "Post review" }).click();
  await page.waitForURL(/\/plugins\/hello#reviews$/);
  assert.match(await page.locator("#rating-summary").textContent(), /Rated 5\.0 out of 5 by 1 person/);
  assert.match(await page.locator(".plugin-head").textContent(), /Rated 5\.0 out of 5/);
  assert.match(await page.locator("#review-list").textContent(), /Friendly and tiny\./);
  await shot("reviewed");

  step("edit the review");
  assert.equal(await page.locator("#review-form h3").textContent(), "Edit your review");
  assert.equal(await page.getByLabel("Your review").inputValue(), "Friendly and tiny.");
  assert.ok(await page.getByLabel("5 stars").isChecked(), "the form shows the current rating");
  await page.getByLabel("3 stars").check();
  await page.getByLabel("Your review").fill("Friendly and tiny, but few features (edited).");
  await page.getByRole("button", { name: "Update review" }).click();
  await page.waitForURL(/\/plugins\/hello#reviews$/);
  assert.match(await page.locator("#rating-summary").textContent(), /Rated 3\.0 out of 5 by 1 person/);
  assert.equal(await page.locator("#review-list > li").count(), 1, "one review per user");
  assert.match(await page.locator("#review-list").textContent(), /\(edited\)/);
  await shot("edited");

  step("the search shows the new rating");
  await page.goto(`${base}/?sort=rating`);
  const first = page.locator("#results > li").first();
  assert.match(await first.textContent(), /hello[\s\S]*Rated 3\.0 out of 5/);

  step("a narrow screen");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/plugins/hello`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, "no horizontal scrolling on a phone");
  await shot("plugin-phone");

  assert.deepEqual(problems, [], "no console errors or CSP violations");
  console.log("marketplace browser test: all steps passed");
} finally {
  await browser.close();
}
