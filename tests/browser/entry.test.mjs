// The data-entry forms in Debian's Chromium, driven by playwright-core, against a real node
// that `cargo xtask test-browser` started and seeded (AGRITRACE_URL, AGRITRACE_SEED): a clerk
// signs in, registers a plot by pasting coordinates, records a harvest of a new lot on it and
// finds that harvest, anchored and verified in the browser, on the lot's consumer page; wrong
// input (a GTIN check digit, a container check digit, a device key's length) is explained as
// it is typed, cannot be submitted, and creates nothing. Screenshots go to
// AGRITRACE_SCREENSHOTS as entry-*.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const base = process.env.AGRITRACE_URL;
const seedFile = process.env.AGRITRACE_SEED;
const shots = process.env.AGRITRACE_SCREENSHOTS;
const executablePath = process.env.AGRITRACE_CHROMIUM || "/usr/bin/chromium";
if (!base || !seedFile || !shots) {
  throw new Error("run these tests with `cargo xtask test-browser`: it starts and seeds the node");
}
const seed = JSON.parse(fs.readFileSync(seedFile, "utf8"));
/** Guards against hanging (not timing assertions): a capture job, anchoring, the in-page check. */
const CAPTURE_PATIENCE_MS = 90_000;
const ANCHOR_PATIENCE_MS = 120_000;
const VERIFY_PATIENCE_MS = 30_000;
/** Names no earlier run of the same node used (the seeded lot MH-2026-001 is never touched). */
const suffix = Date.now().toString(36);
const plotId = `e2e-plot-${suffix}`;
const plotName = `Riverside ${suffix}`;
const lot = `E2E-${suffix.toUpperCase()}`;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
});
after(async () => {
  if (browser) await browser.close();
});

async function desk(locale = "en-US") {
  const context = await browser.newContext({ locale, viewport: { width: 1100, height: 900 } });
  return { context, page: await context.newPage() };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `entry-${name}.png`), fullPage: true });
}

/** The API as a plain client with `token`: [status, body]. */
async function call(method, route, token, body) {
  const response = await fetch(base + route, {
    method,
    headers: Object.assign(
      { Accept: "application/json", Authorization: `Bearer ${token}` },
      body ? { "Content-Type": "application/json" } : {}
    ),
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch (_) {
    /* not JSON: kept as text */
  }
  return [response.status, data];
}

/** Signs in through the sign-in page and lands on `next`. */
async function signIn(page, token, next) {
  await page.goto(`${base}/login?next=${encodeURIComponent(next)}`);
  await page.fill("#token", token);
  await Promise.all([
    page.waitForURL((url) => url.pathname + url.search === next),
    page.click("#login-form button[type=submit]"),
  ]);
}

const todayUtc = () => new Date().toISOString().slice(0, 10);

/** Fills the harvest form with good values (the GTIN given). */
async function fillHarvest(page, gtin, plot) {
  await page.waitForSelector(`#plot option[value="${plot}"]`, { state: "attached" });
  await page.fill("#gtin", gtin);
  await page.fill("#lot", lot);
  await page.selectOption("#plot", plot);
  await page.fill("#quantity", "500");
  await page.fill("#date", todayUtc());
  await page.fill("#time", "00:00");
  await page.fill("#offset", "+00:00");
  await page.fill("#location", "urn:epc:id:sgln:0690123.00001.0");
}

test("a clerk registers a plot by pasting coordinates, records a harvest, and sees it verified on the consumer page", async () => {
  const { context, page } = await desk();
  await signIn(page, seed.clerk_token, "/entry?lang=en");
  await page.waitForSelector("#plots li");
  assert.match(await page.textContent("#plots"), /Hillside 7/);
  await shot(page, "1-overview");

  await page.goto(`${base}/entry/plots/new?lang=en`);
  assert.equal(await page.isDisabled("#submit"), true, "nothing typed yet: the submit is disabled");
  await page.fill("#plot-id", plotId);
  await page.fill("#plot-name", plotName);
  await page.fill("#country", "cn");
  assert.equal(await page.inputValue("#country"), "CN");
  await page.selectOption("#order", "latlon");
  await page.fill(
    "#coords",
    ["21.471000, 101.564000", "21.471200, 101.566000", "21.469600, 101.566400", "21.469000, 101.564500"].join("\n")
  );
  assert.ok(await page.isVisible("#plot-preview polygon"), "the preview draws the outline");
  assert.match(await page.textContent("#plot-area"), /^\d+\.\d+ ha \(/);
  assert.equal(await page.isDisabled("#submit"), false, await page.textContent("#submit-why"));
  await shot(page, "2-plot-preview");
  await page.click("#submit");
  await page.waitForSelector("#result[data-state]");
  assert.equal(await page.getAttribute("#result", "data-state"), "created", await page.textContent("#result"));
  const [status, plot] = await call("GET", `/v1/orgs/${seed.org}/plots/${plotId}`, seed.clerk_token);
  assert.equal(status, 200);
  assert.equal(plot.geometry.type, "Polygon");
  assert.equal(plot.geometry.coordinates[0][0][1], 21.471, "latitude, longitude lines were read in that order");
  await shot(page, "3-plot-created");

  await page.goto(`${base}/entry/harvest?lang=en&plot=${plotId}`);
  await fillHarvest(page, seed.gtin, plotId);
  assert.equal(await page.inputValue("#plot"), plotId);
  assert.equal(await page.isDisabled("#submit"), false, await page.textContent("#submit-why"));
  await page.click("#submit");
  await page.waitForSelector("#result[data-state=recorded], #result[data-state=partial], #result[data-state=refused]", {
    timeout: CAPTURE_PATIENCE_MS,
  });
  assert.equal(await page.getAttribute("#result", "data-state"), "recorded", await page.textContent("#result"));
  assert.match(await page.textContent("#result"), new RegExp(`Recorded: lot ${lot} and its harvest event`));
  await shot(page, "4-harvest-recorded");
  const href = await page.getAttribute("#lot-page", "href");
  assert.equal(href, `/01/${seed.gtin}/10/${lot}?lang=en`);

  // The consumer page once the harvest is in a published checkpoint.
  const started = Date.now();
  for (;;) {
    const [code, journey] = await call("GET", `/v1/public/lots/${seed.gtin}/${lot}/journey`, seed.clerk_token);
    if (code === 200 && journey.events.length === 1 && journey.events[0].proof) break;
    assert.ok(Date.now() - started < ANCHOR_PATIENCE_MS, `the harvest was not anchored in time: ${JSON.stringify(journey)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const response = await page.goto(base + href);
  assert.equal(response.status(), 200);
  assert.match(await page.textContent("#product"), new RegExp(lot));
  assert.match(await page.textContent("#origin"), new RegExp(plotName));
  const steps = await page.locator("#journey li").allTextContents();
  assert.ok(steps.some((s) => s.includes("Harvested")), `Harvested in ${steps}`);
  await page.waitForSelector("#verify[data-result]", { timeout: VERIFY_PATIENCE_MS });
  assert.equal(await page.getAttribute("#verify", "data-result"), "verified", await page.textContent("#verify"));
  await shot(page, "5-consumer-page");
  await context.close();
});

test("a wrong GTIN check digit is explained as it is typed, and the harvest cannot be submitted", async () => {
  const { context, page } = await desk();
  await signIn(page, seed.clerk_token, "/entry/harvest?lang=en");
  const wrong = seed.gtin.slice(0, 13) + String((Number(seed.gtin[13]) + 1) % 10);
  await fillHarvest(page, wrong, "hillside-7");
  await page.fill("#lot", `${lot}-X`);
  assert.match(await page.textContent("#gtin-error"), /The last digit should be 2 for these 13 digits/);
  assert.equal(await page.getAttribute("#gtin", "aria-invalid"), "true");
  assert.equal(await page.isDisabled("#submit"), true);
  assert.match(await page.textContent("#submit-why"), /Product GTIN/);
  // Enter, and a scripted submit: both refused by the form.
  await page.press("#lot", "Enter");
  await page.evaluate(() => document.getElementById("entry-form").requestSubmit());
  assert.equal(await page.evaluate(() => document.activeElement.id), "gtin", "the wrong field gets the focus");
  assert.equal(await page.getAttribute("#result", "data-state"), null);
  await shot(page, "6-wrong-gtin");
  for (const gtin of [seed.gtin, wrong]) {
    const [status] = await call("GET", `/v1/orgs/${seed.org}/lots/${gtin}/${lot}-X`, seed.clerk_token);
    assert.ok(status === 404 || status === 400, `nothing was created (${gtin}: ${status})`);
  }
  // Correcting the digit makes the form whole again.
  await page.fill("#gtin", seed.gtin);
  assert.equal(await page.textContent("#gtin-error"), "");
  assert.equal(await page.getAttribute("#gtin", "aria-invalid"), null);
  assert.equal(await page.isDisabled("#submit"), false);
  await context.close();
});

test("the exporter's shipment form refuses a container number with a wrong check digit", async () => {
  const { context, page } = await desk();
  await signIn(page, seed.exporter_token, "/entry/shipments/new?lang=en");
  const id = `e2e-shp-${suffix}`;
  await page.fill("#shipment-id", id);
  await page.fill("#consignee-name", "Kunming Fresh Market");
  await page.fill("#consignee-country", "cn");
  await page.fill("#origin-country", "CN");
  await page.fill("#destination-country", "LA");
  await page.fill("#containers", "csqu3054384");
  await page.fill("#departure-place", "Mohan");
  await page.fill("#departure-time", "2026-12-01T08:00");
  assert.match(await page.textContent("#containers-error"), /CSQU3054384: the check digit should be 3, not 4/);
  assert.equal(await page.getAttribute("#containers", "aria-invalid"), "true");
  assert.equal(await page.isDisabled("#submit"), true);
  await page.evaluate(() => document.getElementById("entry-form").requestSubmit());
  assert.equal(await page.getAttribute("#result", "data-state"), null);
  await shot(page, "7-container-refused");
  let [status] = await call("GET", `/v1/orgs/${seed.org}/shipments/${id}`, seed.exporter_token);
  assert.equal(status, 404, "nothing was created");
  // With the right digit the shipment is created through the API.
  await page.fill("#containers", "CSQU3054383");
  assert.equal(await page.textContent("#containers-error"), "");
  assert.equal(await page.isDisabled("#submit"), false, await page.textContent("#submit-why"));
  await page.click("#submit");
  await page.waitForSelector("#result[data-state]");
  assert.equal(await page.getAttribute("#result", "data-state"), "created", await page.textContent("#result"));
  let shipment;
  [status, shipment] = await call("GET", `/v1/orgs/${seed.org}/shipments/${id}`, seed.exporter_token);
  assert.equal(status, 200);
  assert.deepEqual(shipment.containers, ["CSQU3054383"]);
  await shot(page, "8-shipment-created");
  await context.close();
});

test("a device key of the wrong length is refused in the form, in Chinese", async () => {
  const { context, page } = await desk("zh-CN");
  await signIn(page, seed.exporter_token, "/entry/devices/new");
  assert.equal(await page.getAttribute("html", "lang"), "zh-Hans");
  const device = "0e2e" + suffix.padStart(12, "0").slice(-12).replace(/[^0-9a-f]/g, "0");
  await page.fill("#device-id", device);
  await page.fill("#public-key", "ab".repeat(31) + "c");
  assert.match(await page.textContent("#public-key-error"), /32 字节，写成 64 位十六进制数字；这里有 63 位/);
  assert.equal(await page.getAttribute("#public-key", "aria-invalid"), "true");
  assert.equal(await page.isDisabled("#submit"), true);
  await page.evaluate(() => document.getElementById("entry-form").requestSubmit());
  assert.equal(await page.getAttribute("#result", "data-state"), null);
  await shot(page, "9-device-key-refused-zh");
  const [status] = await call("GET", `/v1/orgs/${seed.org}/devices/${device}`, seed.exporter_token);
  assert.equal(status, 404, "nothing was registered");
  await page.fill("#public-key", "ab".repeat(32));
  assert.equal(await page.textContent("#public-key-error"), "");
  assert.equal(await page.isDisabled("#submit"), false);
  await context.close();
});

test("the organisation's logger has a health page: its last reading, clock, missing readings, keys and refusals", async () => {
  const { context, page } = await desk();
  await signIn(page, seed.exporter_token, "/entry");
  const link = page.locator("#devices a").first();
  await link.waitFor();
  const device = (await link.textContent()).trim();
  assert.match(device, /^[0-9a-f]{16}$/);
  await Promise.all([page.waitForURL((url) => url.pathname === `/entry/devices/${device}`), link.click()]);
  await page.waitForSelector("#health-last");
  const [status, health] = await call("GET", `/v1/orgs/${seed.org}/devices/${device}/health`, seed.exporter_token);
  assert.equal(status, 200);
  assert.ok(health.last_reading, "the seeded logger has committed readings");
  // The page says what the API says (the last reading may have moved on since: at least as far).
  const shown = Number((await page.textContent("#health-last")).match(/#(\d+)/)[1]);
  assert.ok(shown <= health.last_reading.sequence && shown >= health.outbox.first_sequence, `${shown}`);
  assert.match(await page.textContent("#health-clock"), /node/);
  assert.match(await page.textContent("#health-missing"), /missing|None missing/);
  assert.match(await page.textContent("#health-keys"), new RegExp(health.keys[0].public_key));
  await page.waitForSelector("#quarantine-empty, #health-quarantine table");
  await shot(page, "10-device-health");
  await context.close();
});

test("a plot drawn on the grid fills its coordinates and preview; an open or crossing outline is explained", async () => {
  const { context, page } = await desk();
  await signIn(page, seed.clerk_token, "/entry/plots/new?lang=en");
  await page.check("input[name=mode][value=draw]");
  assert.ok(await page.isVisible("#draw-canvas"));
  assert.equal(await page.isVisible("#coords"), false, "the paste panel is hidden while drawing");
  await page.fill("#centre", "21.4700, 101.5650");
  for (const [x, y] of [[60, 60], [240, 70], [230, 230], [70, 220]]) {
    await page.click("#draw-canvas", { position: { x, y } });
  }
  assert.match(await page.textContent("#draw-status"), /^4 corner/);
  assert.equal(await page.locator("#draw-canvas circle").count(), 4);
  const lines = (await page.inputValue("#coords")).split("\n");
  assert.equal(lines.length, 4, "one latitude, longitude line per corner");
  assert.match(lines[0], /^21\.47\d{4}, 101\.56\d{4}$/);
  assert.ok(await page.isVisible("#plot-preview polygon"));
  assert.match(await page.textContent("#plot-area"), /^\d+\.\d+ ha \(/);
  assert.equal(await page.textContent("#coords-error"), "");
  await shot(page, "10-plot-drawn");

  await page.check("input[name=mode][value=paste]");
  await page.selectOption("#order", "geojson");
  await page.fill(
    "#coords",
    JSON.stringify({ type: "Polygon", coordinates: [[[101.564, 21.471], [101.566, 21.4712], [101.5664, 21.4696]]] })
  );
  assert.match(await page.textContent("#coords-error"), /The ring is not closed/);
  assert.equal(await page.isDisabled("#submit"), true);
  await page.selectOption("#order", "lonlat");
  await page.fill("#coords", ["101.564, 21.471", "101.566, 21.469", "101.566, 21.471", "101.564, 21.469"].join("\n"));
  assert.match(await page.textContent("#coords-error"), /crosses itself/);
  assert.ok(await page.isVisible("#plot-preview polygon"), "the crossing outline is drawn, in red");
  await page.fill("#coords", "101.564, 21.471\n101.566, 21.471");
  assert.match(await page.textContent("#coords-error"), /at least 3 different corners; this has 2/);
  await page.fill("#coords", "21.471, 101.564");
  assert.match(await page.textContent("#coords-error"), /latitude 101\.564 is not between -90 and 90/);
  await shot(page, "11-plot-errors");
  await context.close();
});
