// The dashboard journey in a real browser: sign up, create an experiment with the keyboard,
// watch it finish, check the page's numbers against the API's JSON, re-run and compare, API
// keys, export, account deletion and restore; hostile text stays text. Fails on the first
// broken step; saves screenshots of the main pages.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const base = process.env.BASE_URL;
const browser = await chromium.launch({
  executablePath: process.env.CHROME_PATH || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
let dialogs = 0;
page.on("dialog", (d) => { dialogs += 1; d.dismiss(); });
const shot = (name) => page.screenshot({ path: `screenshots/${name}.png`, fullPage: true });
// Waits until the experiment page stops reloading itself (no live-progress notice).
async function settle() {
  for (let i = 0; i < 240; i++) {
    try {
      await page.waitForLoadState("load");
      if (!(await page.$("#live"))) return;
    } catch {
      // The page reloaded under us: look again.
    }
    await page.waitForTimeout(500);
  }
  throw new Error("the experiment never settled");
}
const email = `journey-${Date.now()}@example.com`;
const password = "correct horse battery";

// Sign up.
await page.goto(`${base}/signup`);
await shot("signup");
await page.fill("#email", email);
await page.fill("#password", password);
await page.check("#accept_policy");
await page.click("button[type=submit]");
// Sign-up answers alike for new and registered addresses, so it leads to the log-in page.
await page.waitForURL(`${base}/login?registered=1`);
assert.ok((await page.textContent("main")).includes("If this address was new"));

// Log in.
await page.fill("#email", email);
await page.fill("#password", password);
await page.click("button[type=submit]");
await page.waitForURL(`${base}/`);

// The new-experiment form, with the keyboard alone; the target is hostile markup.
await page.goto(`${base}/experiments/new`);
await page.focus("#prompt");
await page.keyboard.type("Which CRM should a startup pick? <script>alert(1)</script>");
await page.keyboard.press("Tab");
await page.keyboard.type("<img src=x onerror=alert(1)>");
await page.keyboard.press("Tab");
await page.keyboard.type("HubSpot, HubSpot CRM");
await page.focus("#competitors");
await page.keyboard.type("Salesforce\nPipedrive: Pipedrive CRM");
await page.focus("#iterations");
await page.keyboard.press("Control+A");
await page.keyboard.type("30");
await shot("new-experiment");
await page.keyboard.press("Enter");
await page.waitForURL(/\/experiments\/[0-9a-f-]{36}$/);
const id = page.url().split("/").pop();

// Live progress over SSE: the page's script fills in the runs' progress without reloading
// (a marker set on this document survives), then reloads once when the run ends.
await page.waitForLoadState("load");
await page.evaluate(() => { window.journeyMarker = "same document"; });
await page.waitForFunction(() => {
  const p = document.querySelector("[data-live-progress]");
  return p && /simulated \d+\/30 \((pending|running|completed)\)/.test(p.textContent);
}, null, { timeout: 20000 });
assert.equal(await page.evaluate(() => window.journeyMarker), "same document", "no full reload");
assert.match(await page.textContent("[data-live-status]"), /queued|running/);
await shot("experiment-live");
await settle();
await page.waitForSelector(".eyebrow .badge-completed");
await shot("experiment");
const target = await page.textContent("h1.prompt + p strong");
assert.equal(target, "<img src=x onerror=alert(1)>", "the hostile name shows as text");

// The page's numbers are the API's.
const api = await (await page.request.get(`${base}/api/v1/experiments/${id}`)).json();
const brand = api.report.providers[0].metrics.brands.find((b) => b.is_target);
const shown = (await page.textContent("table.metrics tbody td.num strong")).trim();
assert.equal(shown, `${(brand.visibility.rate * 100).toFixed(1)}%`);
assert.ok((await page.textContent("table.metrics")).includes(`n = ${brand.visibility.n}`));

// Re-run and compare.
await Promise.all([page.waitForNavigation(), page.click("text=Run again")]);
await settle();
await page.click("form.compare button");
await page.waitForURL(/compare/);
const verdict = await page.textContent("tbody tr.target td:last-child");
assert.match(verdict, /likely a real change|could be chance|unchanged/);
await shot("compare");

// A run's answers, with the brands marked.
await page.goto(`${base}/experiments/${id}`);
await Promise.all([page.waitForNavigation(), page.click("a[href$='/answers']")]);
await page.waitForSelector(".answer-text mark", { state: "visible" });
await shot("answers");

// The dashboard and the list.
await page.goto(`${base}/`);
await shot("home");
await page.goto(`${base}/experiments`);
await shot("experiments");

// An API key: shown once, then only its prefix; revoked.
await page.goto(`${base}/settings/keys`);
await page.fill("#name", "journey");
await page.click("text=Create key");
const key = await page.inputValue("#new-key");
assert.match(key, /^echo1_/);
await shot("api-key");
await page.goto(`${base}/settings/keys`);
assert.ok(!(await page.content()).includes(key), "the key is shown once");
await page.click("text=Revoke");
await page.waitForSelector(".badge-revoked");

// A cross-site form post is refused.
const forged = await page.request.post(`${base}/experiments/${id}/delete`, {
  headers: { "sec-fetch-site": "cross-site", "content-type": "application/x-www-form-urlencoded" },
  data: "csrf_token=forged",
});
assert.equal(forged.status(), 403);

// Export, delete the account, log in again to restore it.
await page.goto(`${base}/settings/privacy`);
const [download] = await Promise.all([page.waitForEvent("download"), page.click("text=Download my data")]);
assert.equal(download.suggestedFilename(), "echo-export.json");
await page.goto(`${base}/settings/delete-account`);
await page.click("text=Delete my account");
await page.waitForSelector("text=scheduled for deletion");
await page.goto(`${base}/admin/audit`);
assert.ok(page.url().includes("/login"), "signed out after deletion");
await page.fill("#email", email);
await page.fill("#password", password);
await page.click("button[type=submit]");
await page.waitForURL(/\/admin\/audit$/);
assert.ok((await page.content()).includes("Error 404"), "a non-admin gets the 404 page");
await shot("not-found");

assert.equal(dialogs, 0, "no script ran from hostile text");
await browser.close();
console.log(`browser journey passed; screenshots in ${process.cwd()}/screenshots`);
