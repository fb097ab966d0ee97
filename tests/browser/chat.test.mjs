// tests/browser/chat.test.mjs: drives the chat page served by an already running wsd
// (env WSD_URL, e.g. http://127.0.0.1:9101) in Debian's headless chromium: two pages in one
// room, names, joins, a message across, escaping, garbage tolerance, and a screenshot (env
// SCREENSHOT, default tests/browser/out/chat.png). It must never start a server, never
// download a browser (only /usr/bin/chromium) and never reach any host but WSD_URL's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, stat, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const STEP_MS = 10_000; // any single wait in the page
const TEST_MS = 55_000; // the whole test

function serverUrl() {
  const raw = process.env.WSD_URL;
  assert.ok(raw, 'set WSD_URL to the running server, e.g. http://127.0.0.1:9101');
  const url = new URL(raw);
  assert.match(url.protocol, /^https?:$/, 'WSD_URL must be an http(s) URL');
  return url;
}

function screenshotPath() {
  const env = process.env.SCREENSHOT;
  return env ? path.resolve(env) : path.join(HERE, 'out', 'chat.png');
}

// Opens the chat page for `room`, waits until it is connected and has its server id, and
// sets the name through the page's own name field.
async function openChat(context, base, room, name, errors) {
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`${name}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${name} console: ${msg.text()}`);
  });
  const url = new URL('/', base);
  url.searchParams.set('room', room);
  const response = await page.goto(url.toString(), { waitUntil: 'load', timeout: STEP_MS });
  assert.ok(response, 'navigation produced a response');
  assert.equal(response.status(), 200, 'GET / serves the chat page');
  await page.locator('#chat-status[data-state="connected"]').waitFor({ timeout: STEP_MS });
  await page.locator('#chat-app[data-my-id]').waitFor({ state: 'attached', timeout: STEP_MS });
  assert.equal(await page.inputValue('#chat-room'), room, 'the page shows the room from ?room=');
  // chat.css arrived and applied (a wrong content type would leave the page unstyled).
  const topbar = await page.evaluate(() => getComputedStyle(document.querySelector('.topbar')).display);
  assert.equal(topbar, 'flex', 'chat.css is applied');
  const remembered = await page.inputValue('#chat-name');
  await page.fill('#chat-name', name);
  await page.press('#chat-name', 'Enter');
  await page.locator(`#chat-app[data-name="${name}"]`).waitFor({ state: 'attached' });
  const id = Number(await page.getAttribute('#chat-app', 'data-my-id'));
  assert.ok(Number.isSafeInteger(id), `the server gave ${name} an id`);
  return { page, id, remembered };
}

test('two pages chat through wsd in a real browser', { timeout: TEST_MS }, async () => {
  const base = serverUrl();
  const shot = screenshotPath();
  const room = `browser-${process.pid}-${Date.now().toString(36)}`;
  const errors = [];
  const foreign = [];

  const profile = await mkdtemp(path.join(tmpdir(), 'wsd-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 20_000,
      viewport: { width: 1000, height: 760 },
      // https runs use a throwaway self-signed certificate made by the CI script.
      ignoreHTTPSErrors: base.protocol === 'https:',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    context.setDefaultTimeout(STEP_MS);
    // Instrumentation only: remember the page's sockets so the test can drop one.
    await context.addInitScript(() => {
      const Native = window.WebSocket;
      const sockets = [];
      window.__chatSockets = sockets;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          sockets.push(this);
        }
      };
    });
    // The page may load nothing from anywhere but the server it came from.
    await context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.host === base.host || url.protocol === 'data:') return route.continue();
      foreign.push(url.toString());
      return route.abort();
    });

    const alice = await openChat(context, base, room, 'alice', errors);
    const bob = await openChat(context, base, room, 'bob', errors);
    assert.notEqual(alice.id, bob.id, 'each member has its own id');
    // Same browser profile: the second page starts with the name the first one picked.
    assert.equal(bob.remembered, 'alice', 'the name is remembered in localStorage');
    // The first page the persistent profile opened is blank and unused.
    for (const p of context.pages()) if (p !== alice.page && p !== bob.page) await p.close();

    // Alice sees Bob join, by name once his hello has arrived.
    await alice.page
      .locator(`#chat-messages li[data-kind="join"][data-member-id="${bob.id}"]`)
      .filter({ hasText: 'bob joined' })
      .waitFor();
    // Each page shows its own arrival once, as the welcome, never as someone joining.
    for (const { page, id } of [alice, bob]) {
      await page.locator(`#chat-messages li[data-kind="welcome"][data-member-id="${id}"]`).waitFor();
      assert.equal(
        await page.locator(`#chat-messages li[data-kind="join"][data-member-id="${id}"]`).count(),
        0,
      );
    }
    // Bob learns Alice's name from the hello she sends in answer to his join.
    await bob.page
      .locator(`#chat-members li[data-member-id="${alice.id}"]`)
      .filter({ hasText: 'alice' })
      .waitFor();
    await bob.page.locator('#chat-member-count[data-count="2"]').waitFor({ state: 'attached' });

    // The browser offered permessage-deflate and the shipped config's shared mode took it.
    for (const { page } of [alice, bob]) {
      const extensions = await page.evaluate(() => window.__chatSockets.at(-1).extensions);
      assert.equal(
        extensions,
        'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
      );
    }
    // A message over the compression threshold (256 bytes) crosses compressed, intact.
    const long = `${'a long line that compresses well; '.repeat(20)}${Math.random().toString(36).slice(2)}`;
    await alice.page.fill('#chat-input', long);
    await alice.page.press('#chat-input', 'Enter');
    await bob.page
      .locator('#chat-messages li[data-kind="message"] [data-role="text"]')
      .filter({ hasText: long.slice(-8) })
      .waitFor();
    assert.equal(
      await bob.page
        .locator('#chat-messages li[data-kind="message"] [data-role="text"]')
        .filter({ hasText: long.slice(-8) })
        .textContent(),
      long,
    );

    // A message with markup in it crosses as text, never as markup.
    const nonce = Math.random().toString(36).slice(2, 10);
    const text = `hi bob <img src=x onerror="window.__pwned=1"> & "quotes" ${nonce}`;
    await alice.page.fill('#chat-input', text);
    await alice.page.press('#chat-input', 'Enter');

    const received = bob.page
      .locator('#chat-messages li[data-kind="message"]')
      .filter({ hasText: nonce });
    await received.waitFor();
    assert.equal(await received.getAttribute('data-name'), 'alice');
    assert.equal(await received.locator('[data-role="text"]').textContent(), text);
    assert.equal(await bob.page.locator('#chat-messages img').count(), 0, 'no markup injected');
    assert.equal(await bob.page.evaluate(() => window.__pwned), undefined);

    // The sender gets its own message back, shown as its own, and the input is cleared.
    const echoed = alice.page
      .locator('#chat-messages li[data-kind="message"].mine')
      .filter({ hasText: nonce });
    await echoed.waitFor();
    assert.equal(await alice.page.inputValue('#chat-input'), '');

    // A member that speaks another format: its join shows by id (it never says hello), and
    // its garbage is ignored without breaking the page.
    const strangerId = await bob.page.evaluate(
      ({ room, timeoutMs }) =>
        new Promise((resolve, reject) => {
          const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
          const ws = new WebSocket(`${scheme}//${location.host}/chat?room=${encodeURIComponent(room)}`);
          const timer = setTimeout(() => reject(new Error('no welcome for the raw socket')), timeoutMs);
          ws.onmessage = (ev) => {
            let m;
            try {
              m = JSON.parse(ev.data);
            } catch (_) {
              return;
            }
            if (!m || m.type !== 'welcome') return;
            clearTimeout(timer);
            for (const junk of [
              'not json at all',
              '[1,2,3]',
              'null',
              '{"type":"message"}',
              '{"type":"message","text":42,"name":{}}',
              '{"type":"hello","name":"x","id":-1}',
              '{"type":"join","id":"abc"}',
              '{"type":"unknown-kind","x":1}',
              '{"no":"type"}',
            ]) {
              ws.send(junk);
            }
            ws.send(new Uint8Array([1, 2, 3]));
            window.__stranger = ws;
            resolve(m.id);
          };
          ws.onerror = () => reject(new Error('raw socket failed'));
        }),
      { room, timeoutMs: STEP_MS },
    );
    await alice.page
      .locator(`#chat-messages li[data-kind="join"][data-member-id="${strangerId}"]`)
      .filter({ hasText: `#${strangerId} joined` })
      .waitFor();

    // After the garbage, both pages still work: a reply crosses the other way.
    const reply = `hello alice ${nonce}-back`;
    await bob.page.fill('#chat-input', reply);
    await bob.page.press('#chat-input', 'Enter');
    await alice.page
      .locator('#chat-messages li[data-kind="message"]:not(.mine)')
      .filter({ hasText: reply })
      .waitFor();
    // Three messages on Alice's page: the long one, the one with markup, Bob's reply.
    assert.equal(await alice.page.locator('#chat-messages li[data-kind="message"]').count(), 3);

    // The stranger leaves; Alice sees it by id.
    await bob.page.evaluate(() => window.__stranger.close());
    await alice.page
      .locator(`#chat-messages li[data-kind="leave"][data-member-id="${strangerId}"]`)
      .waitFor();

    // Alice's connection drops: her page says so, counts down, reconnects with a new id,
    // and Bob sees her leave and come back under her name.
    await alice.page.evaluate(() => window.__chatSockets.at(-1).close(4000, 'test drop'));
    await alice.page.locator('#chat-status[data-state="reconnecting"][data-retry-in]').waitFor();
    await alice.page.locator('#chat-status[data-state="connected"]').waitFor();
    await alice.page
      .locator('#chat-messages li[data-kind="welcome"]')
      .filter({ hasText: 'Reconnected' })
      .waitFor();
    const aliceAgain = Number(await alice.page.getAttribute('#chat-app', 'data-my-id'));
    assert.ok(Number.isSafeInteger(aliceAgain) && aliceAgain !== alice.id, 'a new id after reconnecting');
    await bob.page
      .locator(`#chat-messages li[data-kind="leave"][data-member-id="${alice.id}"]`)
      .filter({ hasText: 'alice left' })
      .waitFor();
    await bob.page
      .locator(`#chat-messages li[data-kind="join"][data-member-id="${aliceAgain}"]`)
      .filter({ hasText: 'alice joined' })
      .waitFor();
    const afterDrop = `still there, alice? ${nonce}`;
    await bob.page.fill('#chat-input', afterDrop);
    await bob.page.press('#chat-input', 'Enter');
    await alice.page
      .locator('#chat-messages li[data-kind="message"]')
      .filter({ hasText: afterDrop })
      .waitFor();

    for (const { page } of [alice, bob]) {
      assert.equal(await page.getAttribute('#chat-status', 'data-state'), 'connected');
    }

    await mkdir(path.dirname(shot), { recursive: true });
    await bob.page.screenshot({ path: shot, timeout: STEP_MS });
    const info = await stat(shot);
    assert.ok(info.size > 0, `screenshot ${shot} is non-empty`);
    const fh = await open(shot, 'r');
    try {
      const { buffer } = await fh.read(Buffer.alloc(8), 0, 8, 0);
      assert.deepEqual([...buffer], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
    } finally {
      await fh.close();
    }

    assert.deepEqual(foreign, [], 'the page loads nothing from other hosts');
    assert.deepEqual(errors, [], 'no script errors in either page');
  } finally {
    if (context) await context.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
});
