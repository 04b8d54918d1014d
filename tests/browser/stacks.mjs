// Drives the dashboard of `pvelab serve` in Debian's headless chromium for
// tests/e2e/test_762_stacks_serve.py: an admin plans a config with stacks on
// the plan page, applies it, and follows the run until it ends; prints what
// it saw as one JSON line. Input (env DASH_TEST, JSON): url, token, chromium.
import { chromium } from 'playwright-core';

const cfg = JSON.parse(process.env.DASH_TEST);
const DEADLINE = 60000;
const out = { errors: [] };
const browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => out.errors.push(e.message));
  page.on('dialog', (d) => { out.errors.push(`dialog: ${d.message()}`); d.dismiss(); });
  await page.goto(cfg.url + '/');
  await page.getByLabel('API token').waitFor({ timeout: DEADLINE });
  await page.keyboard.type(cfg.token);
  await page.keyboard.press('Enter');
  await page.locator('#nodes-table').waitFor({ timeout: DEADLINE });
  await page.evaluate(() => { location.hash = '#/plan'; });
  await page.locator('#make-plan').click();
  await page.locator('#plan-summary').waitFor({ timeout: DEADLINE });
  out.changes = (await page.locator('#plan-changes').textContent()).trim();
  out.stacks = await page.locator('#plan-stacks > li').allTextContents();
  out.summary = (await page.locator('#plan-summary').textContent()).trim();
  await page.locator('#apply').click();
  await page.locator('#confirm-ok').click();
  await page.waitForFunction(() => location.hash.startsWith('#/run/'), null, { timeout: DEADLINE });
  await page.locator('#run-log li', { hasText: 'finished:' }).waitFor({ timeout: 120000 });
  out.log = await page.locator('#run-log li').allTextContents();
} catch (e) {
  out.errors.push(String(e?.stack ?? e));
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + '\n');
