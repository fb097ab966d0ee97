// tests/browser/status.test.mjs: opens the live status page (/status.html, watching the
// `status` route) of an already running wsd (env WSD_URL) in Debian's headless chromium while
// a small `wsd load echo` runs against the same server (env WSD_LOAD_BIN, the wsd binary),
// waits for the charts and tables to show that load, and saves a screenshot (env
// STATUS_SCREENSHOT, default tests/browser/out/status.png). It must never start a server,
// never download a browser (only /usr/bin/chromium), never reach any host but WSD_URL's, and
// never leave the load process running.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, stat, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const STEP_MS = 15_000;
const TEST_MS = 60_000;

function serverUrl() {
  const raw = process.env.WSD_URL;
  assert.ok(raw, 'set WSD_URL to the running server, e.g. http://127.0.0.1:9101');
  const url = new URL(raw);
  assert.match(url.protocol, /^https?:$/, 'WSD_URL must be an http(s) URL');
  return url;
}

// Starts `wsd load echo` for `seconds` against the server's /echo route.
function startLoad(base, seconds) {
  const bin = process.env.WSD_LOAD_BIN;
  assert.ok(bin, 'set WSD_LOAD_BIN to the wsd binary that generates the load');
  const scheme = base.protocol === 'https:' ? 'wss:' : 'ws:';
  const args = ['load', 'echo', '--url', `${scheme}//${base.host}/echo`, '-c', '8', '-p', '4',
    '--duration', String(seconds), '--progress', '0'];
  if (scheme === 'wss:') args.push('--insecure');
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const done = new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
  return { child, done };
}

test('the status page draws a live server under load', { timeout: TEST_MS }, async () => {
  const base = serverUrl();
  const shot = process.env.STATUS_SCREENSHOT
    ? path.resolve(process.env.STATUS_SCREENSHOT)
    : path.join(HERE, 'out', 'status.png');
  const errors = [];
  const foreign = [];
  const profile = await mkdtemp(path.join(tmpdir(), 'wsd-chromium-'));
  let context;
  let load;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      viewport: { width: 1280, height: 1000 },
      ignoreHTTPSErrors: base.protocol === 'https:',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    context.setDefaultTimeout(STEP_MS);
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.host === base.host || url.protocol === 'data:') return route.continue();
      foreign.push(url.toString());
      return route.abort();
    });
    const page = await context.newPage();
    for (const p of context.pages()) if (p !== page) await p.close();
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    const response = await page.goto(new URL('/status.html', base).toString(), { waitUntil: 'load' });
    assert.equal(response?.status(), 200, 'GET /status.html serves the page');
    await page.locator('#st-conn[data-state="open"]').waitFor();
    await page.locator('body[data-snapshots]').waitFor({ state: 'attached' });

    load = startLoad(base, 8);
    // Charts update: the messages chart gains points and the rate tile shows the load.
    await page.waitForFunction(() => {
      const fig = document.querySelector('figure[data-chart="messages"]');
      const points = Number(fig?.dataset.points || 0);
      const rate = document.getElementById('st-msg-in').textContent;
      return points >= 3 && rate !== '0' && rate !== '–';
    }, null, { timeout: STEP_MS });
    await page.waitForFunction(() => Number(document.body.dataset.snapshots) >= 4, null,
      { timeout: STEP_MS });

    // What the page shows matches the load: the echo route holds the load's 8 connections
    // (plus none of its own), the status route this page, and the lines have points.
    const routes = await page.$$eval('#st-routes tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
    const echo = routes.find((r) => r[0] === '/echo');
    const status = routes.find((r) => r[0] === '/status');
    assert.ok(echo && Number(echo[2]) === 8, `echo route shows 8 connections: ${JSON.stringify(routes)}`);
    assert.ok(status && Number(status[2]) >= 1, `status route shows this page: ${JSON.stringify(routes)}`);
    const lines = await page.$$eval('figure[data-chart="messages"] polyline',
      (ls) => ls.map((l) => l.getAttribute('points').split(' ').length));
    assert.equal(lines.length, 2, 'in and out');
    for (const n of lines) assert.ok(n >= 3, `a line with ${n} points`);

    await mkdir(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    const info = await stat(shot);
    assert.ok(info.size > 10_000, `screenshot ${shot} is a real picture (${info.size} bytes)`);
    const fh = await open(shot, 'r');
    try {
      const { buffer } = await fh.read(Buffer.alloc(8), 0, 8, 0);
      assert.deepEqual([...buffer], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    } finally {
      await fh.close();
    }

    const result = await load.done;
    assert.equal(result.code, 0, `the load run succeeded: ${result.stderr}`);
    load = undefined;
    assert.deepEqual(foreign, [], 'the page loads nothing from other hosts');
    assert.deepEqual(errors, [], 'no script errors');
  } finally {
    if (load) {
      load.child.kill('SIGKILL');
      await load.done;
    }
    if (context) await context.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
});
