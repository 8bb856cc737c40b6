// The admin page: a client of the server's HTTP API and WebSocket, written
// as one plain script (no framework, no build step). It never decides who
// may see what: every request carries the operator token and the server
// checks it (docs/http-api.md lists the endpoints used here).
(function () {
  'use strict';

  const TOKEN_KEY = 'spacetime.operatorToken';
  const PAGE_SIZE = 50;
  const BIG_TABLE = 20000; // rows above which a table is not loaded unasked
  const STATS_EVERY_MS = 2000;
  const STATS_KEEP = 61; // two minutes of samples
  const LOG_KEEP = 2000;
  const ZERO_ID = '0'.repeat(64);

  const $ = (id) => document.getElementById(id);
  const S = {
    token: null, identity: null, dbs: [],
    db: null, schema: null, tables: [], table: null,
    columns: [], rows: [], page: 0, viewAs: null, query: '',
    ws: null, wsReady: false, reqId: 0, qsCounter: 0, liveQs: null, liveErr: null,
    statsTimer: null, clientsTimer: null, dbsTimer: null, samples: [], logAbort: null,
    knownIds: new Map(), // identity hex → label
    gen: 0, // bumps when the open database changes; stale async work checks it
  };

  // ---------- small helpers ----------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const svgNS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c) e.append(c);
    return e;
  }

  let toastTimer = null;
  function toast(msg) {
    const t = $('toast');
    t.textContent = msg;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  function shortId(hex) {
    if (!hex || hex.length < 20) return hex || '';
    return hex.slice(0, 10) + '…' + hex.slice(-6);
  }
  function idLabel(hex) {
    if (hex === ZERO_ID) return 'anonymous';
    const l = S.knownIds.get(hex);
    return l ? l + ' (' + shortId(hex) + ')' : shortId(hex);
  }
  // resolveIdentity reads what was typed where an identity goes: 64 hex
  // digits (0x allowed), "anonymous", or a name the page has learned from a
  // row keyed by the identity (User.username). Returns hex, '' for
  // anonymous, or null when it cannot tell.
  function resolveIdentity(raw) {
    const v = raw.trim().replace(/^0x/i, '');
    if (v === '' || v.toLowerCase() === 'anonymous') return '';
    if (/^[0-9a-fA-F]{64}$/.test(v)) return v.toLowerCase();
    const named = [...S.knownIds].filter(([, label]) => label === raw.trim());
    return named.length === 1 ? named[0][0] : null;
  }

  function fmtTime(s) {
    const d = new Date(s);
    return isNaN(d) ? String(s) : d.toLocaleString();
  }
  function typeText(t) { return typeof t === 'string' ? t : JSON.stringify(t); }
  function quoteIdent(name) { return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : '"' + name.replace(/"/g, '""') + '"'; }
  function cellText(v) {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  function dbPath(suffix) { return '/v1/database/' + encodeURIComponent(S.db) + suffix; }

  // api sends a request with the operator token. It resolves to
  // {status, ok, data, headers}; only network failures reject.
  async function api(method, path, body) {
    const headers = {};
    if (S.token) headers.Authorization = 'Bearer ' + S.token;
    let payload;
    if (body !== undefined) {
      if (typeof body === 'string') { headers['Content-Type'] = 'text/plain; charset=utf-8'; payload = body; }
      else { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
    }
    const res = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
    return { status: res.status, ok: res.ok, data, headers: res.headers };
  }
  function errText(r) { return (r.data && r.data.error) || ('HTTP ' + r.status); }

  // ---------- sign in ----------

  function tokenFromCredentials(text) {
    let creds;
    try { creds = JSON.parse(text); } catch (e) { throw new Error('this is not JSON: paste the token itself, or the whole credentials.json'); }
    const servers = (creds && creds.servers) || {};
    const here = location.origin;
    const alias = (u) => u.replace('//localhost', '//127.0.0.1').replace(/\/+$/, '');
    for (const [url, c] of Object.entries(servers)) {
      if (c && c.token && alias(url) === alias(here)) return c.token;
    }
    const withToken = Object.entries(servers).filter(([, c]) => c && c.token);
    if (withToken.length === 1) return withToken[0][1].token;
    if (withToken.length === 0) throw new Error('this credentials.json holds no operator token: run `spacetime login` first');
    throw new Error('this credentials.json has tokens for ' + withToken.map(([u]) => u).join(', ') + ' but not for ' + here + ': paste the right token');
  }

  async function signIn(raw) {
    const errBox = $('signin-error');
    errBox.hidden = true;
    let token = (raw || '').trim();
    try {
      if (!token) throw new Error('paste an operator token first');
      if (token.startsWith('{')) token = tokenFromCredentials(token);
      S.token = token;
      const r = await api('GET', '/v1/identity/databases');
      if (!r.ok) throw new Error(errText(r));
      sessionStorage.setItem(TOKEN_KEY, token);
      $('signin-token').value = '';
      enterApp(r.data);
    } catch (e) {
      S.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      errBox.textContent = 'Could not sign in: ' + e.message;
      errBox.hidden = false;
      showSignIn();
    }
  }

  function showSignIn() {
    closeDatabase();
    $('app').hidden = true;
    $('who').hidden = true;
    $('signin').hidden = false;
    $('signin-jq').textContent = "jq -r '.servers[\"" + location.origin + "\"].token' ~/.config/spacetime/credentials.json";
  }

  function signOut() {
    clearInterval(S.dbsTimer);
    sessionStorage.removeItem(TOKEN_KEY);
    S.token = null;
    S.identity = null;
    history.replaceState(null, '', location.pathname);
    showSignIn();
  }

  function enterApp(data) {
    S.identity = data.identity;
    S.dbs = data.databases || [];
    $('signin').hidden = true;
    $('app').hidden = false;
    $('who').hidden = false;
    $('who-id').textContent = S.identity;
    $('who-id').title = S.identity;
    renderDbList();
    clearInterval(S.dbsTimer);
    S.dbsTimer = setInterval(refreshDatabases, 5000);
    const want = new URLSearchParams(location.hash.slice(1));
    const name = want.get('db');
    const pick = S.dbs.find((d) => d.name === name) || (S.dbs.length === 1 ? S.dbs[0] : null);
    if (pick) openDatabase(pick.name, want.get('tab'), want.get('table'));
  }

  // refreshDatabases follows publishes and deletes made elsewhere (the CLI,
  // spacetime dev): new databases appear, and a republished module's tables
  // and reducers are reloaded in place.
  async function refreshDatabases() {
    if (!S.token || document.hidden) return;
    const r = await api('GET', '/v1/identity/databases');
    if (r.status === 401) { signOut(); return; }
    if (!r.ok) return;
    const before = new Map(S.dbs.map((d) => [d.name, d.module_hash + d.published_at]));
    S.dbs = r.data.databases || [];
    renderDbList();
    if (!S.db) return;
    const cur = S.dbs.find((d) => d.name === S.db);
    if (!cur) {
      toast('Database ' + S.db + ' was deleted.');
      closeDatabase();
      $('db-view').hidden = true;
      renderDbList();
    } else if (before.get(S.db) !== cur.module_hash + cur.published_at) {
      toast('A new module was published to ' + S.db + ': schema reloaded.');
      reloadSchema();
    }
  }

  async function reloadSchema() {
    const gen = S.gen;
    const [schema, tables] = await Promise.all([api('GET', dbPath('/schema')), api('GET', dbPath('/tables'))]);
    if (gen !== S.gen || !schema.ok || !tables.ok) return;
    S.schema = schema.data;
    S.tables = tables.data.tables;
    showModule(schema.data);
    renderTableList();
    renderReducers();
    const keep = S.table && S.tables.find((x) => x.name === S.table.name);
    if (keep && S.viewAs === null) openTable(keep.name);
  }

  function showModule(m) {
    $('db-hash').textContent = m.module_hash;
    $('db-hash').title = 'SHA-256 of the module: ' + m.module_hash;
    $('db-published').textContent = fmtTime(m.published_at);
    $('db-owner').textContent = m.owner;
  }

  function renderDbList() {
    const ul = $('db-list');
    ul.replaceChildren(...S.dbs.map((d) => el('li', null,
      el('button', { type: 'button', class: 'db-link', 'data-db': d.name, 'aria-current': String(d.name === S.db), onclick: () => openDatabase(d.name) }, d.name))));
    $('db-empty').hidden = S.dbs.length > 0;
  }

  function saveLocation() {
    const p = new URLSearchParams();
    if (S.db) p.set('db', S.db);
    const tab = currentTab();
    if (tab && tab !== 'tables') p.set('tab', tab);
    if (S.table) p.set('table', S.table.name);
    history.replaceState(null, '', location.pathname + (p.toString() ? '#' + p : ''));
  }

  // ---------- one database ----------

  function closeDatabase() {
    S.gen++;
    if (S.ws) { S.ws.onclose = null; S.ws.close(); }
    S.ws = null; S.wsReady = false; S.liveQs = null;
    clearInterval(S.statsTimer); clearInterval(S.clientsTimer);
    if (S.logAbort) S.logAbort.abort();
    S.logAbort = null;
    S.db = null; S.table = null; S.samples = []; S.rows = []; S.viewAs = null; S.tables = [];
    // Nothing of the previous database may stay on screen while the next
    // one loads: its rows and "live from tx" status would pass for the new
    // database's (the browser test once read them as such under load).
    $('table-list').replaceChildren();
    $('rows').replaceChildren();
    setStatus('');
  }

  async function openDatabase(name, tab, table) {
    closeDatabase();
    S.db = name;
    const gen = S.gen;
    renderDbList();
    $('db-view').hidden = false;
    $('db-name').textContent = name;
    $('table-view').hidden = true;
    $('log').replaceChildren();
    $('charts').replaceChildren();
    selectTab(tab || 'tables');
    const [schema, tables] = await Promise.all([api('GET', dbPath('/schema')), api('GET', dbPath('/tables'))]);
    if (gen !== S.gen) return;
    if (!schema.ok || !tables.ok) {
      toast('Could not load ' + name + ': ' + errText(schema.ok ? tables : schema));
      if (tables.status === 401) signOut();
      return;
    }
    S.schema = schema.data;
    S.tables = tables.data.tables;
    showModule(schema.data);
    renderTableList();
    renderReducers();
    connectLive(gen);
    startStats(gen);
    startClients(gen);
    followLog(gen);
    const t = S.tables.find((x) => x.name === table) || S.tables.find((x) => !x.system) || S.tables[0];
    if (t) openTable(t.name);
  }

  function currentTab() {
    const b = document.querySelector('.tabs [aria-selected=true]');
    return b ? b.dataset.tab : 'tables';
  }
  function selectTab(name) {
    for (const b of document.querySelectorAll('.tabs [role=tab]')) {
      const on = b.dataset.tab === name;
      b.setAttribute('aria-selected', String(on));
      $('tab-' + b.dataset.tab).hidden = !on;
    }
    saveLocation();
  }

  // ---------- tables ----------

  function renderTableList() {
    const ul = $('table-list');
    ul.replaceChildren(...S.tables.map((t) => el('li', null,
      el('button', { type: 'button', class: 'table-link', 'data-table': t.name, 'aria-current': String(S.table && S.table.name === t.name), onclick: () => openTable(t.name) },
        el('span', null, t.name, t.system ? el('span', { class: 'sys', text: ' system' }) : null),
        el('span', { class: 'count', 'data-count': t.name, text: String(t.rows) })))));
  }

  function keyBadges(c) {
    const out = [];
    if (c.primary_key) out.push(el('span', { class: 'key', text: 'primary key' }));
    if (c.unique) out.push(el('span', { class: 'key', text: 'unique' }));
    if (c.autoinc) out.push(el('span', { class: 'key', text: 'autoinc' }));
    if (c.identity) out.push(el('span', { class: 'key', text: 'identity' }));
    return out;
  }

  function openTable(name) {
    const t = S.tables.find((x) => x.name === name);
    if (!t) return;
    S.table = t;
    S.viewAs = null;
    renderTableList();
    $('table-view').hidden = false;
    $('t-name').textContent = t.name + (t.system ? ' (system table)' : '');
    // On a phone the rows matter more than the schema: start it folded.
    $('t-schema').open = !window.matchMedia('(max-width: 760px)').matches;
    $('t-columns').replaceChildren(
      el('thead', null, el('tr', null, el('th', { text: 'column' }), el('th', { text: 'type' }), el('th', { text: 'keys' }))),
      el('tbody', null, ...t.columns.map((c) => el('tr', null, el('td', null, el('code', { text: c.name })), el('td', null, el('code', { text: typeText(c.type) })), el('td', null, ...keyBadges(c))))));
    const idx = t.indexes || [];
    $('t-indexes').replaceChildren(...(idx.length ? idx.map((i) => el('li', null, el('code', { text: i.name }), ' on (' + i.columns.join(', ') + ')' + (i.unique ? ', unique' : ''))) : [el('li', { class: 'muted', text: 'none' })]));
    const g = t.grants || [];
    $('t-grants').replaceChildren(...(g.length ? g.map((x) => el('li', null, el('code', { text: x }))) : [el('li', { class: 'muted', text: 'none: private (only reducers and the owner read it)' })]));
    $('query').value = 'SELECT * FROM ' + quoteIdent(t.name);
    $('viewas-clear').hidden = true;
    saveLocation();
    if (t.rows > BIG_TABLE) {
      // The rows come whole (the query language has no LIMIT): ask first.
      unsubscribeLive();
      S.rows = []; S.columns = t.columns.map((c) => c.name);
      renderRows();
      $('rows-error').hidden = true;
      setStatus(t.name + ' has ' + t.rows + ' rows: narrow the query with WHERE, or Run it as is to load them all (at most 100,000).');
      return;
    }
    runQuery();
  }

  async function runQuery() {
    const gen = S.gen;
    const q = $('query').value.trim();
    S.query = q;
    S.page = 0;
    $('rows-error').hidden = true;
    const as = S.viewAs;
    const path = dbPath('/sql') + (as !== null ? '?as=' + encodeURIComponent(as || 'anonymous') : '');
    setStatus('running…');
    const r = await api('POST', path, q);
    if (gen !== S.gen || q !== S.query || as !== S.viewAs) return;
    if (!r.ok) {
      S.rows = []; S.columns = [];
      renderRows();
      const who = as !== null ? idLabel(as || ZERO_ID) : null;
      $('rows-error').textContent = (who ? who + ' may not read this: ' : '') + errText(r);
      $('rows-error').hidden = false;
      setStatus(who ? 'Viewing as ' + who : '', !!who);
      if (as === null) unsubscribeLive();
      return;
    }
    const res = r.data[0];
    S.columns = res.columns;
    S.rows = res.rows.map((row) => ({ row, key: JSON.stringify(row), fresh: false }));
    learnIds(res.rows);
    renderRows();
    if (as !== null) {
      unsubscribeLive();
      setStatus('Viewing as ' + idLabel(as || ZERO_ID) + ': ' + res.rows.length + ' row' + (res.rows.length === 1 ? '' : 's') +
        ' under the grants, as of tx ' + res.offset + '. Run again to refresh.', true);
    } else {
      setStatus(res.rows.length + ' row' + (res.rows.length === 1 ? '' : 's') + ', as of tx ' + res.offset + (res.as_owner ? ' (the owner reads every table)' : ''));
      subscribeLive(q);
    }
  }

  function setStatus(text, viewAs) {
    const p = $('rows-status');
    p.textContent = text;
    p.classList.toggle('viewas', !!viewAs);
  }

  function renderRows() {
    const n = S.rows.length;
    const pages = Math.max(1, Math.ceil(n / PAGE_SIZE));
    S.page = Math.min(S.page, pages - 1);
    const start = S.page * PAGE_SIZE;
    const slice = S.rows.slice(start, start + PAGE_SIZE);
    const cols = S.columns;
    const colTypes = new Map(((S.table && S.table.columns) || []).map((c) => [c.name, typeText(c.type)]));
    $('rows').replaceChildren(
      el('thead', null, el('tr', null, ...cols.map((c) => el('th', { title: colTypes.get(c) || '', text: c })))),
      el('tbody', null, ...slice.map((r) => el('tr', { class: r.fresh ? 'new' : null },
        ...cols.map((c) => {
          const v = r.row[c];
          const text = cellText(v);
          if (colTypes.get(c) === 'IdentityId' && typeof v === 'string') {
            // Name the identity when a row keyed by it said who it is.
            const label = v === ZERO_ID ? 'anonymous' : S.knownIds.get(v);
            return el('td', { title: idLabel(v) }, text, label ? el('span', { class: 'idlabel', text: label }) : null);
          }
          return el('td', { class: v === null ? 'null' : null, text });
        })))));
    if (n === 0) $('rows').querySelector('tbody').append(el('tr', null, el('td', { class: 'muted', colspan: String(Math.max(1, cols.length)), text: 'no rows' })));
    $('page-info').textContent = n === 0 ? '0 rows' : (start + 1) + '–' + Math.min(n, start + PAGE_SIZE) + ' of ' + n;
    $('page-prev').disabled = S.page === 0;
    $('page-next').disabled = S.page >= pages - 1;
  }

  // learnIds remembers identities seen in rows, labelled with the row's
  // first text column when the identity is the row's key (User.username).
  function learnIds(rows) {
    const t = S.table;
    if (!t) return;
    const idCols = t.columns.filter((c) => typeText(c.type) === 'IdentityId').map((c) => c.name);
    const keyCol = t.columns.find((c) => (c.primary_key || c.unique) && typeText(c.type) === 'IdentityId');
    const textCol = t.columns.find((c) => typeText(c.type) === 'String');
    for (const row of rows) {
      for (const c of idCols) {
        const v = row[c];
        if (typeof v !== 'string' || v === ZERO_ID) continue;
        if (keyCol && c === keyCol.name && textCol && row[textCol.name]) S.knownIds.set(v, String(row[textCol.name]));
        else if (!S.knownIds.has(v)) S.knownIds.set(v, '');
      }
    }
    renderKnownIds();
  }
  function renderKnownIds() {
    const dl = $('known-ids');
    dl.replaceChildren(el('option', { value: 'anonymous', label: 'anonymous (zero identity)' }),
      ...[...S.knownIds].map(([id, label]) => el('option', { value: id, label: label || shortId(id) })));
  }

  // ---------- live updates over the WebSocket ----------

  function connectLive(gen) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // Browsers cannot set headers on a WebSocket: the token goes in the
    // query, as docs/http-api.md describes. With the owner's token the
    // server lets this connection read every table.
    const url = proto + '//' + location.host + dbPath('/subscribe') + '?token=' + encodeURIComponent(S.token);
    let ws;
    try { ws = new WebSocket(url, 'v1.json.spacetime'); } catch (e) { liveState(false, e.message); return; }
    S.ws = ws; S.wsReady = false;
    ws.onmessage = (ev) => { if (gen === S.gen) onLiveMessage(JSON.parse(ev.data)); };
    ws.onclose = (ev) => {
      if (gen !== S.gen) return;
      S.wsReady = false; S.liveQs = null;
      liveState(false, 'disconnected (' + ev.code + (ev.reason ? ': ' + ev.reason : '') + '); reconnecting…');
      setTimeout(() => { if (gen === S.gen) connectLive(gen); }, 2000);
    };
  }

  function liveState(on, text) {
    const d = $('db-live');
    d.textContent = text;
    d.className = on ? 'live-on' : 'live-off';
  }

  function send(msg) { if (S.ws && S.wsReady) S.ws.send(JSON.stringify(msg)); }

  function subscribeLive(q) {
    unsubscribeLive();
    if (!S.wsReady) { S.pendingLive = q; return; }
    S.pendingLive = null;
    const id = ++S.qsCounter;
    S.liveQs = id;
    S.liveErr = null;
    send({ Subscribe: { request_id: ++S.reqId, query_set_id: id, queries: [q] } });
  }
  function unsubscribeLive() {
    S.pendingLive = null;
    if (S.liveQs !== null) send({ Unsubscribe: { request_id: ++S.reqId, query_set_id: S.liveQs } });
    S.liveQs = null;
  }

  function onLiveMessage(m) {
    const [type] = Object.keys(m);
    const b = m[type];
    switch (type) {
      case 'InitialConnection':
        S.wsReady = true;
        liveState(true, 'live');
        if (S.pendingLive) subscribeLive(S.pendingLive);
        else if (S.table && S.viewAs === null && S.query) subscribeLive(S.query);
        break;
      case 'SubscribeApplied':
        if (b.query_set_id !== S.liveQs || S.viewAs !== null) return;
        // The subscription's rows are a snapshot consistent with the
        // updates that follow it: they replace the SQL answer.
        S.rows = (b.tables[0] ? b.tables[0].rows : []).map((row) => ({ row, key: JSON.stringify(row), fresh: false }));
        renderRows();
        setStatus(S.rows.length + ' row' + (S.rows.length === 1 ? '' : 's') + ', live from tx ' + b.offset + ' (the owner reads every table)');
        break;
      case 'SubscriptionError':
        if (b.query_set_id === S.liveQs) {
          S.liveQs = null;
          setStatus($('rows-status').textContent + ' · live updates off: ' + b.error);
        }
        break;
      case 'TransactionUpdate':
        applyUpdate(b);
        break;
      case 'Error':
        toast('WebSocket: ' + b.error);
        break;
    }
  }

  function applyUpdate(u) {
    let changed = false;
    for (const qs of u.query_sets) {
      if (qs.query_set_id !== S.liveQs) continue;
      for (const t of qs.tables) {
        for (const d of t.deletes) {
          const k = JSON.stringify(d);
          const i = S.rows.findIndex((r) => r.key === k);
          if (i >= 0) S.rows.splice(i, 1);
        }
        for (const ins of t.inserts) S.rows.push({ row: ins, key: JSON.stringify(ins), fresh: true });
        learnIds(t.inserts);
        changed = true;
      }
    }
    if (changed) {
      renderRows();
      setStatus(S.rows.length + ' row' + (S.rows.length === 1 ? '' : 's') + ', live: last change in tx ' + u.tx.offset);
    }
  }

  // ---------- reducers ----------

  function signature(r) {
    return r.name + '(' + r.params.map((p) => p.name + ': ' + typeText(p.type)).join(', ') + ')' + (r.return ? ' -> ' + typeText(r.return) : '');
  }

  function renderReducers() {
    const box = $('reducer-list');
    const callable = S.schema.module.reducers.filter((r) => !r.lifecycle);
    const lifecycle = S.schema.module.reducers.filter((r) => r.lifecycle);
    box.replaceChildren(...callable.map(reducerCard));
    if (lifecycle.length) {
      box.append(el('div', { class: 'card reducer' }, el('h3', { text: 'Lifecycle reducers' }),
        el('p', { class: 'muted', text: 'The server calls these; they cannot be called from here.' }),
        el('ul', { class: 'plain' }, ...lifecycle.map((r) => el('li', null, el('code', { text: signature(r) }), ' — ' + r.lifecycle)))));
    }
  }

  function reducerCard(r) {
    const inputs = r.params.map((p) => {
      const t = typeText(p.type);
      const input = el('input', { type: 'text', name: p.name, autocomplete: 'off', spellcheck: 'false', 'data-type': t,
        list: t === 'IdentityId' ? 'known-ids' : null,
        placeholder: t === 'String' ? 'text (sent as a JSON string)' : t.startsWith('Option<') ? 'JSON value, or empty for null' : 'JSON value' });
      return { p, t, input, label: el('label', null, el('span', null, p.name + ' ', el('span', { class: 'type', text: t })), input) };
    });
    const asSel = el('select', { class: 'as-mode', 'aria-label': 'call as' },
      el('option', { value: 'anonymous', text: 'anonymously (zero identity)' }),
      el('option', { value: 'identity', text: 'as identity…' }));
    const asId = el('input', { type: 'text', class: 'as-id', list: 'known-ids', placeholder: 'identity (64 hex digits)', hidden: true, spellcheck: 'false', autocomplete: 'off', 'aria-label': 'identity to call as' });
    asSel.addEventListener('change', () => { asId.hidden = asSel.value !== 'identity'; });
    const out = el('output', { class: 'result' });
    const btn = el('button', { type: 'submit', text: 'Call ' + r.name });
    const form = el('form', { class: 'call' }, ...inputs.map((i) => i.label),
      el('div', { class: 'as' }, el('span', { text: 'Call' }), asSel, asId), btn, out);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let body;
      try { body = '[' + inputs.map((i) => argJSON(i.p.name, i.t, i.input.value)).join(',') + ']'; }
      catch (e) { out.className = 'result bad'; out.textContent = e.message; return; }
      let q = '';
      if (asSel.value === 'identity') {
        const id = resolveIdentity(asId.value);
        if (!id) { out.className = 'result bad'; out.textContent = 'give the identity to call as: 64 hex digits, or a name shown beside an identity'; return; }
        q = '?as=' + encodeURIComponent(id);
      }
      btn.disabled = true;
      out.className = 'result';
      out.textContent = 'calling…';
      try {
        const res = await api('POST', dbPath('/call/' + encodeURIComponent(r.name)) + q, body);
        const d = res.data || {};
        if (res.ok) {
          out.className = 'result ok';
          out.textContent = 'committed in tx ' + d.offset + ' (' + d.duration_us + ' µs)' + (d.return !== null && d.return !== undefined ? '\nreturned ' + JSON.stringify(d.return) : '');
        } else {
          out.className = 'result bad';
          out.textContent = 'failed (' + res.status + '): ' + errText(res);
        }
      } catch (e) {
        out.className = 'result bad';
        out.textContent = 'failed: ' + e.message;
      } finally {
        btn.disabled = false;
      }
    });
    return el('article', { class: 'card reducer', 'data-reducer': r.name }, el('h3', null, el('code', { text: signature(r) })), form);
  }

  // argJSON turns what was typed for one parameter into its JSON text. Text
  // is kept as typed (not parsed into a JS number) so that u64 and i64
  // values keep every digit.
  function argJSON(name, type, raw) {
    const v = raw.trim();
    if (type === 'String') return JSON.stringify(raw);
    if (type.startsWith('Option<') && v === '') return 'null';
    const inner = type.startsWith('Option<') ? type.slice(7, -1) : type;
    if (inner === 'String') return JSON.stringify(raw);
    // Hex values (identities, bytes) and times may be typed bare: hex can
    // start with a digit, so anything not already a JSON string is one.
    if ((inner === 'IdentityId' || inner === 'Bytes' || inner === 'ConnectionId') && v !== '' && !v.startsWith('"')) {
      return JSON.stringify(v.replace(/^0x/i, ''));
    }
    if (inner === 'Timestamp' && v !== '' && !v.startsWith('"') && !/^-?\d+$/.test(v)) return JSON.stringify(v);
    if (v === '') throw new Error(name + ' (' + type + ') needs a value');
    try { JSON.parse(v); } catch (e) { throw new Error(name + ' (' + type + ') is not valid JSON: ' + e.message); }
    return v;
  }

  // ---------- clients ----------

  function startClients(gen) {
    const load = async () => {
      if (document.hidden) return; // a background tab costs the server nothing
      const r = await api('GET', dbPath('/clients'));
      if (gen !== S.gen || !r.ok) return;
      for (const c of r.data.clients) if (c.identity !== ZERO_ID && !S.knownIds.has(c.identity)) S.knownIds.set(c.identity, '');
      renderKnownIds();
      const t = $('clients');
      t.replaceChildren(
        el('thead', null, el('tr', null, el('th', { text: 'connection' }), el('th', { text: 'identity' }), el('th', { text: 'kind' }), el('th', { text: 'address' }))),
        el('tbody', null, ...r.data.clients.map((c) => el('tr', null,
          el('td', null, el('code', { text: c.connection_id })),
          el('td', { title: c.identity }, el('code', { text: c.identity === ZERO_ID ? 'anonymous' : c.identity }), S.knownIds.get(c.identity) ? ' ' + S.knownIds.get(c.identity) : ''),
          el('td', { text: c.owner ? 'owner (operator token)' : 'client' }),
          el('td', { text: c.remote_addr }))),
        r.data.clients.length ? null : el('tr', null, el('td', { colspan: '4', class: 'muted', text: 'no clients connected' }))));
    };
    load();
    S.clientsTimer = setInterval(load, 3000);
  }

  // ---------- the module log (NDJSON, followed) ----------

  async function followLog(gen, n) {
    const ctrl = new AbortController();
    S.logAbort = ctrl;
    const status = $('log-status');
    try {
      const res = await fetch(dbPath('/logs') + '?follow=true&n=' + (n === undefined ? 200 : n), { headers: { Authorization: 'Bearer ' + S.token }, signal: ctrl.signal, cache: 'no-store' });
      if (!res.ok) {
        let msg = 'HTTP ' + res.status;
        try { msg = (await res.json()).error; } catch (_) { /* keep the status */ }
        status.textContent = 'log unavailable: ' + msg;
        return;
      }
      status.textContent = 'following the module log';
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) addLogLine(JSON.parse(line));
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted || gen !== S.gen) return;
      status.textContent = 'log stream broke (' + e.message + '); reconnecting…';
    }
    if (gen !== S.gen || ctrl.signal.aborted) return;
    setTimeout(() => { if (gen === S.gen) followLog(gen, 0); }, 2000);
  }

  function addLogLine(l) {
    const box = $('log');
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    let line;
    if (l.missed) {
      line = el('div', { class: 'logline lv-warn', text: '… ' + l.missed + ' lines missed (the page fell behind)' });
    } else {
      const t = new Date(l.time);
      const ts = isNaN(t) ? '' : t.toTimeString().slice(0, 8) + '.' + String(t.getMilliseconds()).padStart(3, '0');
      line = el('div', { class: 'logline' },
        el('span', { class: 't', text: ts + ' ' }),
        el('span', { class: 'lv lv-' + l.level, text: (l.level || '').toUpperCase() }), ' ',
        l.reducer ? el('span', { class: 'rd', text: l.reducer + ': ' }) : null,
        l.message);
      if (l.caller) line.title = 'caller ' + idLabel(l.caller);
    }
    box.append(line);
    while (box.childElementCount > LOG_KEEP) box.firstElementChild.remove();
    if (atEnd) box.scrollTop = box.scrollHeight;
  }

  // ---------- charts ----------

  function startStats(gen) {
    const poll = async () => {
      if (document.hidden && S.samples.length > 0) return;
      const r = await api('GET', dbPath('/stats'));
      if (gen !== S.gen || !r.ok) return;
      S.samples.push(r.data);
      if (S.samples.length > STATS_KEEP) S.samples.shift();
      updateCounts(r.data);
      renderCharts();
    };
    poll();
    S.statsTimer = setInterval(poll, STATS_EVERY_MS);
  }

  function updateCounts(st) {
    for (const t of st.tables) {
      const c = document.querySelector('.table-list [data-count="' + CSS.escape(t.table) + '"]');
      if (c) c.textContent = String(t.rows);
      const def = S.tables.find((x) => x.name === t.table);
      if (def) def.rows = t.rows;
    }
  }

  // quantile estimates a quantile from merged cumulative histogram buckets,
  // interpolating inside the bucket it falls in (as Prometheus does).
  function quantile(q, buckets) {
    const total = buckets.length ? buckets[buckets.length - 1].count : 0;
    if (total <= 0) return null;
    const rank = q * total;
    let prevLe = 0, prevCount = 0;
    for (const b of buckets) {
      if (b.count >= rank) {
        if (b.le === null) return prevLe;
        const span = b.count - prevCount;
        return prevLe + (b.le - prevLe) * (span > 0 ? (rank - prevCount) / span : 1);
      }
      if (b.le !== null) { prevLe = b.le; prevCount = b.count; }
    }
    return prevLe;
  }

  function seriesFromSamples() {
    const out = { calls: [], errors: [], p99: [], commits: [], energy: [] };
    for (let i = 1; i < S.samples.length; i++) {
      const a = S.samples[i - 1], b = S.samples[i];
      const dt = (new Date(b.time) - new Date(a.time)) / 1000;
      if (!(dt > 0)) continue;
      let calls = 0, errors = 0;
      const merged = new Map();
      for (const rb of b.reducers) {
        const ra = a.reducers.find((x) => x.reducer === rb.reducer) || { committed: 0, failed: 0, duration_buckets: [] };
        calls += (rb.committed + rb.failed) - (ra.committed + ra.failed);
        errors += rb.failed - ra.failed;
        rb.duration_buckets.forEach((bk, j) => {
          const prev = ra.duration_buckets[j] ? ra.duration_buckets[j].count : 0;
          const key = bk.le === null ? 'inf' : String(bk.le);
          const m = merged.get(key) || { le: bk.le, count: 0 };
          m.count += bk.count - prev;
          merged.set(key, m);
        });
      }
      const buckets = [...merged.values()].sort((x, y) => (x.le === null ? Infinity : x.le) - (y.le === null ? Infinity : y.le));
      const p = quantile(0.99, buckets);
      out.calls.push(Math.max(0, calls) / dt);
      out.errors.push(Math.max(0, errors) / dt);
      out.p99.push(p === null ? null : p * 1000);
      out.commits.push(Math.max(0, b.commits - a.commits) / dt);
      out.energy.push(Math.max(0, (b.energy || 0) - (a.energy || 0)) / dt);
    }
    return out;
  }

  function fmtNum(v, digits) {
    if (v === null || v === undefined) return '–';
    if (v >= 1e9) return (v / 1e9).toFixed(1) + 'G';
    if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
    if (v >= 1e4) return (v / 1e3).toFixed(1) + 'k';
    if (v >= 100) return v.toFixed(0);
    return v.toFixed(digits === undefined ? 1 : digits);
  }

  function lineChart(id, title, unit, values, bad) {
    const W = 320, H = 120, L = 34, B = 16, T = 8;
    const finite = values.filter((v) => v !== null);
    const max = Math.max(1e-9, ...finite, 0) * 1.15 || 1;
    const x = (i) => L + (W - L - 4) * (values.length > 1 ? i / (STATS_KEEP - 2) : 0);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title });
    g.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B }), svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
      svg('text', { x: 2, y: T + 8, text: fmtNum(max / 1.15) }), svg('text', { x: 2, y: H - B, text: '0' }),
      svg('text', { x: L, y: H - 3, text: '2 min ago' }), svg('text', { x: W - 24, y: H - 3, text: 'now' }));
    let pts = [];
    const flush = () => { if (pts.length > 1) g.append(svg('polyline', { class: 'line' + (bad ? ' bad' : ''), points: pts.join(' ') })); pts = []; };
    const offset = STATS_KEEP - 1 - values.length;
    values.forEach((v, i) => { if (v === null) flush(); else pts.push(x(i + offset).toFixed(1) + ',' + y(v).toFixed(1)); });
    flush();
    const last = values.length ? values[values.length - 1] : null;
    if (last !== null) g.append(svg('circle', { class: 'dot' + (bad ? ' bad' : ''), cx: x(values.length - 1 + offset).toFixed(1), cy: y(last).toFixed(1), r: 2.5 }));
    return el('div', { class: 'card chart', id }, el('h3', null, el('span', { text: title }), el('span', { class: 'now', text: fmtNum(last, 2) + ' ' + unit })), g);
  }

  function barChart(id, title, items) {
    const W = 320, rowH = 18, L = 96;
    const H = Math.max(1, items.length) * rowH + 6;
    const max = Math.max(1, ...items.map((i) => i.value));
    const g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'aria-label': title });
    items.forEach((it, i) => {
      const w = Math.max(1, (W - L - 48) * it.value / max);
      g.append(svg('text', { class: 'barlabel', x: 0, y: i * rowH + 13, text: it.label.length > 15 ? it.label.slice(0, 14) + '…' : it.label }),
        svg('rect', { class: 'bar', x: L, y: i * rowH + 3, width: w.toFixed(1), height: rowH - 6, rx: 2 }),
        svg('text', { x: L + w + 4, y: i * rowH + 13, text: String(it.value) }));
    });
    return el('div', { class: 'card chart', id }, el('h3', null, el('span', { text: title })), g);
  }

  function renderCharts() {
    const s = seriesFromSamples();
    const last = S.samples[S.samples.length - 1];
    const charts = [
      lineChart('chart-calls', 'Reducer calls', '/s', s.calls),
      lineChart('chart-errors', 'Failed calls', '/s', s.errors, true),
      lineChart('chart-p99', 'p99 latency (in the guest)', 'ms', s.p99),
      lineChart('chart-commits', 'Commits', '/s', s.commits),
    ];
    if (last.energy === null || last.energy === undefined) {
      charts.push(el('div', { class: 'card chart', id: 'chart-energy' }, el('h3', null, el('span', { text: 'Energy used' })),
        el('p', { class: 'muted', text: 'Not reported by this server.' })));
    } else {
      const c = lineChart('chart-energy', 'Energy used', 'units/s', s.energy);
      c.append(el('p', { class: 'muted', text: fmtNum(last.energy) + ' units in all since the server started (about one per wasm instruction)' }));
      charts.push(c);
    }
    charts.push(barChart('chart-rows', 'Rows per table', last.tables.map((t) => ({ label: t.table, value: t.rows }))));
    charts.push(el('div', { class: 'card chart', id: 'chart-now' }, el('h3', null, el('span', { text: 'Now' })),
      el('p', null, last.connections + ' connection' + (last.connections === 1 ? '' : 's') + ', ' + last.subscriptions + ' subscription' + (last.subscriptions === 1 ? '' : 's') + ', tx ' + last.offset)));
    $('charts').replaceChildren(...charts);
  }

  // ---------- wiring ----------

  function init() {
    fetch('/v1/ping', { cache: 'no-store' }).then((r) => r.json()).then((d) => { $('server-version').textContent = 'server ' + d.version; }).catch(() => {});
    $('signin-form').addEventListener('submit', (ev) => { ev.preventDefault(); signIn($('signin-token').value); });
    $('signin-file').addEventListener('change', async (ev) => {
      const f = ev.target.files[0];
      if (f) signIn(await f.text());
      ev.target.value = '';
    });
    $('sign-out').addEventListener('click', signOut);
    for (const b of document.querySelectorAll('.tabs [role=tab]')) b.addEventListener('click', () => selectTab(b.dataset.tab));
    $('query-form').addEventListener('submit', (ev) => { ev.preventDefault(); runQuery(); });
    $('viewas-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = resolveIdentity($('viewas-id').value);
      if (v === null) { toast('View as: give an identity (64 hex digits), "anonymous", or a name shown beside an identity'); return; }
      S.viewAs = v;
      $('viewas-clear').hidden = false;
      runQuery();
    });
    $('viewas-clear').addEventListener('click', () => { S.viewAs = null; $('viewas-clear').hidden = true; $('viewas-id').value = ''; runQuery(); });
    $('page-prev').addEventListener('click', () => { S.page = Math.max(0, S.page - 1); renderRows(); });
    $('page-next').addEventListener('click', () => { S.page++; renderRows(); });
    $('log-clear').addEventListener('click', () => $('log').replaceChildren());

    // A token in the fragment (#token=...) never reaches the server; take
    // it and remove it from the address bar and history.
    const frag = new URLSearchParams(location.hash.slice(1));
    if (frag.get('token')) {
      const t = frag.get('token');
      frag.delete('token');
      history.replaceState(null, '', location.pathname + (frag.toString() ? '#' + frag : ''));
      signIn(t);
      return;
    }
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved); else showSignIn();
  }

  // For the browser test: the pure helpers, checked on their own.
  window.spacetimeAdminInternals = Object.freeze({ quantile, argJSON, resolveIdentity });

  init();
})();
