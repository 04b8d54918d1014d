// Drives the dashboard of `pvelab serve` in Debian's headless chromium for
// tests/e2e/test_720_dashboard.py: logs in, walks every page, records what
// it saw as one JSON line ({"result": ...}) and asks the test for what only
// it can do ({"ask": "..."} on stdout, answered by a line on stdin).
// Input (env DASH_TEST, JSON): url, tokens {viewer, operator}, out (screenshot
// folder), hostile (the hostile guest's name), stopped (vmid of a stopped guest),
// guest (vmid of a running guest), node.
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const cfg = JSON.parse(process.env.DASH_TEST);
const rl = readline.createInterface({ input: process.stdin });
const lines = rl[Symbol.asyncIterator]();
const result = { axe: {}, strays: {}, shots: [], errors: [], dialogs: [], csp: [], steps: {} };
const DEADLINE = 30000;

async function ask(what) {
  process.stdout.write(JSON.stringify({ ask: what }) + '\n');
  const { value } = await lines.next();
  return value;
}

function watch(page, who) {
  page.on('dialog', (d) => { result.dialogs.push(`${who}: ${d.type()} ${d.message()}`); d.dismiss(); });
  page.on('pageerror', (e) => result.errors.push(`${who}: ${e.message}`));
  page.on('console', (m) => {
    // refused requests and the stream the test cuts are expected
    if (m.type() === 'error' && !/status of 40[13]|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_CONNECTION_(RESET|CLOSED|REFUSED|ABORTED)|ERR_SOCKET_NOT_CONNECTED|ERR_EMPTY_RESPONSE/.test(m.text())) result.errors.push(`${who}: console: ${m.text()}`);
    if (/Content Security Policy/i.test(m.text())) result.csp.push(m.text());
  });
}

// Log in with the keyboard alone: the token field has the focus, Enter sends it.
async function login(page, token) {
  await page.goto(cfg.url + '/');
  await page.getByLabel('API token').waitFor();
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.locator('#nodes-table').waitFor({ timeout: DEADLINE });
}

// Open a page by its hash and wait for what shows it is drawn.
async function open(page, hash, ready) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await page.locator(ready).first().waitFor({ timeout: DEADLINE });
}

async function axe(page, name) {
  // no "null" or "undefined" written where a part of the page was absent
  result.strays[name] = await page.evaluate(() => {
    const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    let n = 0;
    while (w.nextNode()) n += /^(null|undefined|NaN|\[object Object\])$/.test(w.currentNode.data.trim());
    return n;
  });
  const r = await new AxeBuilder({ page }).analyze();
  result.axe[name] = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('; ')}`);
}

const PAGES = [
  ['overview', '#/overview', '#nodes-table tbody tr'],
  ['guests', '#/guests', '#guests-table tbody tr'],
  ['guest', `#/guest/${cfg.guest}`, 'svg.chart'],
  ['node', `#/node/${cfg.node}`, 'svg.chart'],
  ['runs', '#/runs', 'table tbody tr'],
  ['discovery', '#/discovery', '#discovered-table tbody tr'],
  ['history', '#/history', '#history-table > tbody > tr'],
  ['checks', '#/checks', '#checks-table tbody tr'],
  ['check', `#/check/${encodeURIComponent('bmc/web')}`, '#check-facts'],
];
const getJSON = (p, url) => p.evaluate(async (u) => (await fetch(u)).json(), url);

const browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, args: ['--no-sandbox'] });
try {
  // ---- an operator, on a desktop, light theme ----
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light', timezoneId: 'Pacific/Auckland' });
  const page = await ctx.newPage();
  watch(page, 'operator');
  await page.goto(cfg.url + '/');
  await page.getByLabel('API token').waitFor();
  await axe(page, 'login');
  result.steps.first_focus = await page.evaluate(() => document.activeElement.id);
  // a wrong token: an error on the page, still no session
  await page.getByLabel('API token').fill('pvl_wrong');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#login-error').filter({ hasText: 'Login failed' }).waitFor({ timeout: DEADLINE });
  await login(page, cfg.tokens.operator);
  result.steps.cookie = (await ctx.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure }));
  result.steps.cookie_visible_to_script = await page.evaluate(() => document.cookie);
  result.steps.overview_nodes = await page.locator('#nodes-table tbody tr th').allTextContents();
  result.steps.overview_guests = await page.locator('#tile-guests').textContent();
  result.steps.overview_states = Object.fromEntries(await page.locator('#state-counts .count').evaluateAll(
    (els) => els.map((e) => [e.dataset.state, Number(e.textContent)])));
  result.steps.timezone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);

  // the overview's certificate expiry and storage bars are the API's numbers
  // (the certificates are read after the server's first sync: drawn again until then)
  for (let i = 0; i < 20 && !(await page.locator('#nodes-table td.cert[data-days]').count()); i++) {
    await page.waitForTimeout(250);
    await open(page, '#/guests', '#guests-table tbody tr');
    await open(page, '#/overview', '#nodes-table tbody tr');
  }
  result.steps.overview_certs = await page.locator('#nodes-table tbody tr').evaluateAll((rows) => rows.map((r) => {
    const c = r.querySelector('td.cert');
    return [r.dataset.node, c && c.dataset.days !== undefined ? Number(c.dataset.days) : null, c ? c.querySelector('.badge, .muted')?.textContent ?? c.textContent : null];
  }));
  result.steps.overview_storages = await page.locator('#storage-list > li').evaluateAll((rows) => rows.map((r) => [
    r.dataset.storage, Number(r.querySelector('[role=meter]').getAttribute('aria-valuenow')), r.querySelector('.usage').textContent]));
  result.steps.overview_history = await page.locator('#recent-history > tbody > tr').evaluateAll((rows) => rows.map((r) => Number(r.dataset.history)));
  result.steps.overview_history_link = await page.locator('a[href="#/history"]', { hasText: 'All history' }).count();
  result.steps.api_certs = await getJSON(page, '/api/v1/certificates');
  result.steps.api_storages = await getJSON(page, '/api/v1/storages');

  // the guests table: the hostile name is text, filters and sort work
  await open(page, '#/guests', '#guests-table tbody tr');
  const hostileRow = page.locator('#guests-table tbody tr', { hasText: cfg.hostile });
  result.steps.hostile_text = await hostileRow.locator('.guest-name').textContent();
  result.steps.images_in_table = await page.locator('#guests-table img').count();
  await page.getByLabel('Search').fill(cfg.hostile.slice(0, 8));
  result.steps.search_rows = await page.locator('#guests-table tbody tr').count();
  await page.getByLabel('Search').fill('');
  await page.getByLabel('Type').selectOption('lxc');
  result.steps.lxc_rows = await page.locator('#guests-table tbody tr td:nth-child(3)').allTextContents();
  await page.getByLabel('Type').selectOption('');
  await page.getByRole('button', { name: 'Name' }).click();
  result.steps.sorted_names = await page.locator('#guests-table tbody .guest-name').allTextContents();

  // live: a guest started through the simulator's API turns running here
  const row = page.locator(`#guests-table tr[data-vmid="${cfg.stopped}"] .status`);
  result.steps.before_start = (await row.textContent()).trim();
  await page.evaluate(() => { window.__same_page = true; });
  const t0 = Date.now();
  await ask(`start ${cfg.stopped}`);
  await page.locator(`#guests-table tr[data-vmid="${cfg.stopped}"] .status`, { hasText: 'running' }).waitFor({ timeout: DEADLINE });
  result.steps.live_start_ms = Date.now() - t0;
  result.steps.no_reload = await page.evaluate(() => window.__same_page === true);

  // a lost stream: the banner, then a reconnect with Last-Event-ID that
  // replays what happened meanwhile
  await ask('cut');
  await page.locator('#banner', { hasText: 'lost' }).waitFor({ timeout: DEADLINE });
  result.steps.banner = (await page.locator('#banner').textContent()).trim();
  await ask(`stop ${cfg.stopped}`);
  await ask('restore');
  await page.locator('#banner').waitFor({ state: 'hidden', timeout: DEADLINE });
  await page.locator(`#guests-table tr[data-vmid="${cfg.stopped}"] .status`, { hasText: 'stopped' }).waitFor({ timeout: DEADLINE });
  result.steps.after_reconnect = 'stopped';
  result.steps.still_same_page = await page.evaluate(() => window.__same_page === true);

  // the discovered inventory: what the network said is text too
  await open(page, '#/discovery', '#discovered-table tbody tr');
  result.steps.discovery = {
    row: await page.locator(`#discovered-table tr[data-address="${cfg.address}"] > *`).allTextContents(),
    scripts: await page.locator('#discovered-table script').count(),
  };

  // the history of every guest: the API's rows, filters, each change's diff
  for (let i = 0; i < 5; i++) {
    await open(page, '#/history', '#history-table > tbody > tr');
    result.steps.history_ids = await page.locator('#history-table > tbody > tr').evaluateAll((rows) => rows.map((r) => Number(r.dataset.history)));
    result.steps.api_history = (await getJSON(page, '/api/v1/history?limit=50')).items.map((r) => r.id);
    if (JSON.stringify(result.steps.history_ids) === JSON.stringify(result.steps.api_history)) break;
  }
  result.steps.history_older = await page.locator('#history-older').isVisible();
  await page.getByLabel('Kind').selectOption('updated');
  await page.locator('#history-table tbody tr .badge.kind-updated').first().waitFor({ timeout: DEADLINE });
  await page.waitForFunction(() => [...document.querySelectorAll('#history-table tbody tr .badge[class*=kind-]')].every((b) => b.textContent === 'updated'), null, { timeout: DEADLINE });
  const firstUpdated = page.locator('#history-table > tbody > tr').first();
  await firstUpdated.locator('summary').click();
  result.steps.history_updated = {
    id: Number(await firstUpdated.getAttribute('data-history')),
    diff: await firstUpdated.locator('table.diff tbody tr').evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))),
  };
  result.steps.api_updated = (await getJSON(page, '/api/v1/history?kind=updated&limit=1')).items[0];
  await page.getByLabel('Kind').selectOption('');
  await page.getByLabel('Guest', { exact: true }).fill('320');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('#history-table tbody tr .who', { hasText: cfg.hostile }).first().waitFor({ timeout: DEADLINE });
  result.steps.history_hostile = await page.locator('#history-table tbody tr .who a').first().textContent();
  result.steps.history_images = await page.locator('#history-table img').count();
  await page.getByLabel('Guest', { exact: true }).fill('');
  await page.getByRole('button', { name: 'Filter' }).click();

  // the checks: their state and latency as the API has them, live, a name with markup as text
  await open(page, '#/checks', '#checks-table tbody tr');
  const hostileCheck = page.locator('#checks-table tbody tr', { hasText: cfg.hostile_check });
  await page.locator('#checks-table tr[data-check="bmc/web"] .status', { hasText: 'down' }).waitFor({ timeout: DEADLINE });
  await hostileCheck.locator('.status', { hasText: 'up' }).waitFor({ timeout: DEADLINE });
  const checkRows = () => page.locator('#checks-table tbody tr').evaluateAll((rows) => rows.map((r) => ({
    name: r.querySelector('.check-name').textContent, status: r.querySelector('.status').textContent, latency: r.querySelector('.latency').textContent })));
  result.steps.checks_rows = await checkRows();
  result.steps.api_checks = await getJSON(page, '/api/v1/checks');
  result.steps.checks_images = await page.locator('#checks-table img').count();
  await page.evaluate(() => { window.__same_checks = true; });
  const tc = Date.now();
  await ask('checkdown');
  await hostileCheck.locator('.status', { hasText: 'down' }).waitFor({ timeout: DEADLINE });
  result.steps.check_live_ms = Date.now() - tc;
  result.steps.check_no_reload = await page.evaluate(() => window.__same_checks === true);
  await page.locator('#checks-table a', { hasText: 'bmc/web' }).click();
  await page.locator('#check-facts').waitFor({ timeout: DEADLINE });
  result.steps.check_one = {
    title: await page.locator('#app h1').textContent(),
    state: await page.locator('#check-facts .status').first().textContent(),
    changes: await page.locator('#check-changes tbody tr').evaluateAll((rows) => rows.map((r) => r.cells[1].textContent)),
    results: await page.locator('#check-results tbody tr').count(),
  };
  result.steps.api_check_one = await getJSON(page, '/api/v1/checks/bmc/web');

  // a guest: config groups, charts, history, power with a confirmation
  await open(page, `#/guest/${cfg.guest}`, 'svg.chart');
  result.steps.groups = await page.locator('section.card h2').allTextContents();
  await page.waitForFunction(() => document.querySelectorAll('svg.chart').length === 4, null, { timeout: DEADLINE });
  result.steps.charts = await page.locator('svg.chart').count();
  result.steps.chart_lines = await page.locator('svg.chart path.line').count();
  result.steps.operator_buttons = await page.locator('[data-action]').evaluateAll((b) => b.map((x) => x.dataset.action));
  await page.locator('[data-action="reboot"]').click();
  await page.locator('#confirm').waitFor();
  result.steps.confirm_text = await page.locator('#confirm-text').textContent();
  await page.getByRole('button', { name: 'Cancel' }).click();
  result.steps.after_cancel = (await page.locator('#action-status').textContent()).trim();
  await page.locator('[data-action="reboot"]').click();
  await page.locator('#confirm-ok').click();
  await page.locator('#action-status', { hasText: 'reboot done' }).waitFor({ timeout: DEADLINE });
  result.steps.reboot = (await page.locator('#action-status').textContent()).trim();
  await page.getByRole('button', { name: 'day' }).click();
  await page.locator('button[aria-pressed="true"]', { hasText: 'day' }).waitFor();
  await page.locator('svg.chart').first().waitFor();

  // a forged change: the session cookie alone is not enough
  result.steps.forged = await page.evaluate(async (vmid) => {
    const r = await fetch(`/api/v1/guests/${vmid}/stop`, { method: 'POST', credentials: 'same-origin' });
    return { status: r.status, body: await r.json() };
  }, cfg.guest);

  // every page: axe, screenshots in both themes on a desktop
  for (const [name, hash, ready] of PAGES) {
    await open(page, hash, ready);
    await axe(page, name);
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      const f = path.join(cfg.out, `${name}-${scheme}-desktop.png`);
      await page.screenshot({ path: f, fullPage: true });
      result.shots.push(f);
    }
    await page.emulateMedia({ colorScheme: 'light' });
  }
  await page.emulateMedia({ colorScheme: 'dark' });
  await open(page, '#/overview', '#nodes-table tbody tr');
  await axe(page, 'overview-dark');
  await ctx.close();

  // ---- an admin: plan, apply, drift, rollback, snapshots ----
  const actx = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  const ap = await actx.newPage();
  watch(ap, 'admin');
  await login(ap, cfg.tokens.admin);
  const plan = async (what) => {
    await open(ap, '#/plan', '#make-plan');
    await ap.locator('#make-plan').click();
    await ap.locator('#plan-summary').waitFor({ timeout: DEADLINE });
    await ask(`cliplan ${what}`); // the CLI plans the same config and cluster now
    return {
      summary: (await ap.locator('#plan-summary').textContent()).trim(),
      changes: await ap.locator('#plan-changes > li').evaluateAll((els) => els.map((e) => ({
        sign: e.querySelector('.sign').textContent, action: e.querySelector('.action').textContent,
        guest: e.dataset.guest, class: e.querySelector('.cls').textContent,
        diffs: [...e.querySelectorAll('table.diff tbody tr')].map((r) => [...r.cells].map((c) => c.textContent.trim())) }))),
    };
  };
  // apply the page's plan, follow the run on its page until it ends
  const apply = async (button) => {
    const before = await ap.evaluate(() => location.hash);
    await ap.locator(button).click();
    await ap.locator('#confirm-ok').click();
    await ap.waitForFunction((h) => location.hash !== h && location.hash.startsWith('#/run/'), before, { timeout: DEADLINE });
    const run = Number((await ap.evaluate(() => location.hash)).split('/')[2]);
    // the new run's page, not the one before it (a run page too, still shown
    // until the new one has its record)
    await ap.locator('#run-head p', { hasText: ` run ${run},` }).waitFor({ timeout: DEADLINE });
    await ap.locator('#run-log li', { hasText: 'finished:' }).waitFor({ timeout: 120000 });
    return { run, log: await ap.locator('#run-log li').allTextContents() };
  };
  result.steps.plan1 = await plan('create');
  await axe(ap, 'plan');
  result.steps.apply1 = await apply('#apply');
  await axe(ap, 'run');
  await ask('drift web');
  await ask('sync'); // the server plans after it: the overview shows the drift without this tab's plan
  result.steps.plan2 = await plan('update');
  const shoot = async (p, name) => {
    for (const scheme of ['light', 'dark']) {
      await p.emulateMedia({ colorScheme: scheme });
      const f = path.join(cfg.out, `${name}-${scheme}-desktop.png`);
      await p.screenshot({ path: f, fullPage: true });
      result.shots.push(f);
    }
    await p.emulateMedia({ colorScheme: 'light' });
  };
  await shoot(ap, 'plan'); // the plan of a drifted guest, before it is applied
  await open(ap, '#/overview', '#drift');
  await ap.locator('#drift', { hasText: 'ct1' }).waitFor({ timeout: DEADLINE });
  result.steps.drift = (await ap.locator('#drift').textContent()).replace(/\s+/g, ' ').trim();
  result.steps.api_drift = await getJSON(ap, '/api/v1/drift');
  await open(ap, `#/guest/${cfg.managed}`, 'svg.chart');
  await ap.locator('section', { hasText: 'Declared vs live' }).locator('table.diff').waitFor({ timeout: DEADLINE });
  result.steps.guest_drift = await ap.locator('section', { hasText: 'Declared vs live' }).locator('table.diff tbody tr')
    .evaluateAll((rows) => rows.map((r) => [...r.cells].map((c) => c.textContent.trim())));
  for (const scheme of ['light', 'dark']) {
    await ap.emulateMedia({ colorScheme: scheme });
    await open(ap, '#/overview', '#drift');
    const f = path.join(cfg.out, `overview-drift-${scheme}-desktop.png`);
    await ap.screenshot({ path: f, fullPage: true });
    result.shots.push(f);
  }
  await ap.emulateMedia({ colorScheme: 'light' });
  await open(ap, '#/plan', '#plan-summary');
  result.steps.apply2 = await apply('#apply');
  result.steps.after_apply2 = await ask('config web');
  await ap.locator('#rollback').waitFor({ timeout: DEADLINE });
  result.steps.rollback = await apply('#rollback');
  result.steps.after_rollback = await ask('config web');
  // snapshots of a guest: take one, see it listed, delete it
  await open(ap, `#/guest/${cfg.managed}`, 'svg.chart');
  await ap.locator('#snap-name').fill('dashsnap');
  await ap.getByRole('button', { name: 'Take snapshot' }).click();
  await ap.locator('#action-status', { hasText: 'done' }).waitFor({ timeout: DEADLINE });
  await ap.locator('tr[data-snapshot="dashsnap"]').waitFor({ timeout: DEADLINE });
  result.steps.snapshots = await ap.locator('tr[data-snapshot] th').allTextContents();
  await ap.locator('tr[data-snapshot="dashsnap"]').getByRole('button', { name: 'Delete' }).click();
  await ap.locator('#confirm-ok').click();
  await ap.locator('tr[data-snapshot="dashsnap"]').waitFor({ state: 'detached', timeout: DEADLINE });
  result.steps.snapshot_deleted = true;
  await axe(ap, 'guest-admin');
  PAGES.push(['plan', '#/plan', '#plan-out'], ['run', `#/run/${result.steps.apply2.run}`, '#run-head p']);
  await open(ap, `#/run/${result.steps.apply2.run}`, '#run-head p');
  await shoot(ap, 'run');
  await actx.close();

  // ---- 200 % zoom: a 1280 px window at twice the size is 640 CSS pixels ----
  const zctx = await browser.newContext({ viewport: { width: 640, height: 450 }, deviceScaleFactor: 2 });
  const zp = await zctx.newPage();
  watch(zp, 'zoom');
  const z0 = Date.now();
  await zp.goto(cfg.url + '/');
  await zp.getByLabel('API token').waitFor();
  result.steps.login_form_ms = Date.now() - z0;
  const z1 = Date.now();
  await zp.keyboard.type(cfg.tokens.viewer);
  await zp.keyboard.press('Enter');
  await zp.locator('#nodes-table tbody tr').first().waitFor({ timeout: DEADLINE });
  result.steps.overview_ms = Date.now() - z1;
  result.steps.zoom_overflow = {};
  for (const [name, hash, ready] of PAGES) {
    await open(zp, hash, ready);
    // the page never scrolls sideways; a wide table scrolls in its own region
    result.steps.zoom_overflow[name] = await zp.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  }
  await zctx.close();

  // ---- a viewer, on a phone ----
  for (const scheme of ['light', 'dark']) {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, colorScheme: scheme });
    const p = await phone.newPage();
    watch(p, 'viewer');
    await p.goto(cfg.url + '/');
    const f0 = path.join(cfg.out, `login-${scheme}-phone.png`);
    await p.screenshot({ path: f0, fullPage: true });
    result.shots.push(f0);
    await login(p, cfg.tokens.viewer);
    for (const [name, hash, ready] of PAGES) {
      await open(p, hash, ready);
      if (name === 'guest') {
        result.steps.viewer_buttons = await p.locator('[data-action]').count();
        result.steps.viewer_post = await p.evaluate(async (vmid) => {
          const s = await (await fetch('/ui/session')).json();
          const r = await fetch(`/api/v1/guests/${vmid}/stop`, { method: 'POST', headers: { 'X-CSRF-Token': s.csrf } });
          return { status: r.status, body: await r.json() };
        }, cfg.guest);
      }
      if (scheme === 'light') await axe(p, `${name}-viewer`);
      const f = path.join(cfg.out, `${name}-${scheme}-phone.png`);
      await p.screenshot({ path: f, fullPage: true });
      result.shots.push(f);
    }
    await p.getByRole('button', { name: 'Log out' }).click();
    await p.getByLabel('API token').waitFor();
    result.steps[`logout_${scheme}`] = (await phone.cookies()).filter((c) => c.name === 'pvelab_session' && c.value).length;
    await phone.close();
  }
} catch (e) {
  result.failure = String(e && e.stack || e);
  // what the pages showed when it failed
  for (const c of browser.contexts()) {
    for (const [i, p] of c.pages().entries()) {
      const f = path.join(cfg.out, `failure-${i}.png`);
      try { await p.screenshot({ path: f, fullPage: true }); result.failure += `\nscreenshot: ${f}`; } catch (err) { /* closed */ }
    }
  }
} finally {
  await browser.close();
  process.stdout.write(JSON.stringify({ result }) + '\n');
  rl.close();
}
