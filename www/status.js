// www/status.js: the behaviour of the wsd live status page: one WebSocket to /status on the
// host the page came from, one JSON snapshot per second from the server (the `status` route
// kind; fields documented in README), drawn as tiles, line charts of the last two minutes and
// tables; the connection state is shown and a dropped connection is retried with backoff.
// It must never put received text into the page as markup (only textContent and SVG
// attributes it computes), never crash on a message it cannot parse, and never talk to any
// origin but its own.
'use strict';

(() => {
  const HISTORY = 120; // points kept per series: two minutes at one snapshot per second
  const MAX_FRAME = 256 * 1024; // bigger messages are ignored unread
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const W = 400;
  const H = 140;
  const PAD_L = 52;
  const PAD_B = 6;
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const history = [];
  let backoff = BACKOFF_MIN_MS;
  let snapshots = 0;

  // ---- formatting ---------------------------------------------------------------------
  const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  function compact(v) {
    v = num(v);
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + ' G';
    if (a >= 1e6) return (v / 1e6).toFixed(2) + ' M';
    if (a >= 1e4) return (v / 1e3).toFixed(1) + ' k';
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return v.toFixed(1);
  }
  function bytes(v) {
    v = num(v);
    if (v >= 1 << 30) return (v / (1 << 30)).toFixed(2) + ' GiB';
    if (v >= 1 << 20) return (v / (1 << 20)).toFixed(1) + ' MiB';
    if (v >= 1 << 10) return (v / (1 << 10)).toFixed(1) + ' KiB';
    return v + ' B';
  }
  function duration(s) {
    s = Math.floor(num(s));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${s % 60}s`;
    return `${s}s`;
  }

  // ---- the connection -----------------------------------------------------------------
  function setState(state, text) {
    const el = $('st-conn');
    el.dataset.state = state;
    $('st-conn-text').textContent = text;
  }

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/status`);
    } catch (e) {
      retryLater('cannot connect');
      return;
    }
    setState('connecting', 'Connecting…');
    ws.onopen = () => {
      backoff = BACKOFF_MIN_MS;
      setState('open', 'Live');
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string' || ev.data.length > MAX_FRAME) return;
      let s;
      try {
        s = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!s || s.type !== 'status') return;
      show(s);
    };
    ws.onclose = (ev) => {
      retryLater(ev.code === 1006 ? 'connection lost' : `closed (${ev.code})`);
    };
  }

  function retryLater(why) {
    const wait = backoff;
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    setState('closed', `Disconnected: ${why}; retrying in ${Math.round(wait / 1000)} s`);
    setTimeout(connect, wait);
  }

  // ---- one snapshot -------------------------------------------------------------------
  function show(s) {
    snapshots += 1;
    document.body.dataset.snapshots = String(snapshots);
    const rates = s.rates || {};
    const conns = s.connections || {};
    const turns = s.loop_turns || {};
    history.push({
      open: num(conns.websocket),
      total: num(conns.total),
      msgIn: num(rates.messages_in_per_sec),
      msgOut: num(rates.messages_out_per_sec),
      bytesIn: num(rates.bytes_in_per_sec),
      bytesOut: num(rates.bytes_out_per_sec),
      handshakes: num(rates.handshakes_per_sec),
      p50: num(turns.p50_us),
      p99: num(turns.p99_us),
      rss: num(s.rss_bytes) / (1 << 20),
    });
    if (history.length > HISTORY) history.shift();

    $('st-uptime').textContent = duration(s.uptime_secs);
    $('st-websockets').textContent = compact(conns.websocket);
    $('st-msg-in').textContent = compact(rates.messages_in_per_sec);
    $('st-msg-out').textContent = compact(rates.messages_out_per_sec);
    $('st-rss').textContent = bytes(s.rss_bytes);
    $('st-fds').textContent = compact(s.open_fds);
    $('st-rooms').textContent = `${compact(s.rooms)} / ${compact(s.members)}`;
    $('st-turn').textContent = `${compact(turns.p99_us)} µs`;

    draw('connections', [['open', 'WebSockets'], ['total', 'all']]);
    draw('messages', [['msgIn', 'in'], ['msgOut', 'out']]);
    draw('bytes', [['bytesIn', 'in'], ['bytesOut', 'out']]);
    draw('turns', [['p50', 'p50'], ['p99', 'p99']]);
    draw('rss', [['rss', 'RSS']]);
    draw('handshakes', [['handshakes', 'handshakes']]);

    fillRoutes(Array.isArray(s.routes) ? s.routes : []);
    fillPairs('st-states', [
      ['WebSocket', conns.websocket], ['HTTP request', conns.http],
      ['Static file', conns.file], ['Closing', conns.closing], ['Total', conns.total],
    ]);
    fillCloses(s.closes_last_minute || {});
    const t = s.totals || {};
    fillPairs('st-totals', [
      ['Accepted', t.accepted], ['Refused', t.refused], ['Handshakes', t.handshakes],
      ['Failed handshakes', t.handshake_failures], ['HTTP requests', t.http_requests],
      ['Messages in', t.messages_in], ['Messages out', t.messages_out],
      ['Bytes in', t.bytes_in], ['Bytes out', t.bytes_out],
      ['Slow consumers closed', t.slow_consumer_closes], ['Messages dropped', t.dropped_messages],
    ]);
  }

  // ---- charts: inline SVG, computed here ----------------------------------------------
  function svgEl(name, attrs) {
    const el = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    return el;
  }

  function draw(name, series) {
    const fig = document.querySelector(`figure[data-chart="${name}"]`);
    if (!fig) return;
    let svg = fig.querySelector('svg');
    if (!svg) {
      const legend = document.createElement('div');
      legend.className = 'legend';
      series.forEach(([, title], i) => {
        const item = document.createElement('span');
        item.className = `key k${i}`;
        item.textContent = title;
        legend.appendChild(item);
      });
      fig.appendChild(legend);
      svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
      fig.appendChild(svg);
    }
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let max = 0;
    for (const p of history) for (const [key] of series) max = Math.max(max, p[key]);
    max = max > 0 ? max * 1.1 : 1;
    const x = (i) => PAD_L + ((W - PAD_L - 4) * i) / Math.max(HISTORY - 1, 1);
    const y = (v) => H - PAD_B - ((H - PAD_B - 8) * v) / max;
    for (const frac of [0, 0.5, 1]) {
      const v = max * frac;
      svg.appendChild(svgEl('line', { class: 'grid', x1: PAD_L, x2: W, y1: y(v), y2: y(v) }));
      const label = svgEl('text', { class: 'axis', x: PAD_L - 6, y: y(v) + 4, 'text-anchor': 'end' });
      label.textContent = compact(v);
      svg.appendChild(label);
    }
    const offset = HISTORY - history.length;
    series.forEach(([key, title], i) => {
      const points = history.map((p, j) => `${x(offset + j).toFixed(1)},${y(p[key]).toFixed(1)}`);
      const line = svgEl('polyline', { class: `s${i}`, points: points.join(' ') });
      const tip = svgEl('title', {});
      tip.textContent = title;
      line.appendChild(tip);
      svg.appendChild(line);
    });
    fig.dataset.points = String(history.length);
  }

  // ---- tables -------------------------------------------------------------------------
  function row(cells, numericFrom) {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      td.textContent = c;
      if (i >= numericFrom) td.className = 'num';
      tr.appendChild(td);
    });
    return tr;
  }

  function replaceRows(id, rows) {
    const body = $(id);
    while (body.firstChild) body.removeChild(body.firstChild);
    for (const r of rows) body.appendChild(r);
  }

  function fillRoutes(routes) {
    replaceRows('st-routes', routes.slice(0, 100).map((r) => row([
      String(r.path || ''), String(r.kind || ''), compact(r.connections),
      compact(r.rooms), compact(r.members),
    ], 2)));
  }

  function fillPairs(id, pairs) {
    replaceRows(id, pairs.map(([k, v]) => row([k, compact(v)], 1)));
  }

  function fillCloses(c) {
    const sent = c.sent && typeof c.sent === 'object' ? c.sent : {};
    const received = c.received && typeof c.received === 'object' ? c.received : {};
    const codes = [...new Set([...Object.keys(sent), ...Object.keys(received)])].sort();
    $('st-close-window').textContent = `(last ${Math.round(num(c.window_secs))} s)`;
    const rows = codes.slice(0, 50).map((code) => row(
      [code, compact(sent[code] || 0), compact(received[code] || 0)], 1));
    if (rows.length === 0) rows.push(row(['none', '', ''], 1));
    replaceRows('st-closes', rows);
  }

  connect();
})();
