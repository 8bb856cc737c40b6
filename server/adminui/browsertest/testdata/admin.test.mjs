// The admin page in headless Chromium, against a real server with
// examples/secure_app published (browser_test.go sets it up and passes
// what it made in the environment). Each step depends on the ones before
// it, so the run stops at the first failure.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run this through browser_test.go`);
  return v;
};
const BASE = env('BASE_URL');
const ALICE = env('ALICE_ID');
const BOB = env('BOB_ID');
const CAROL = env('CAROL_ID');
const SHOTS = env('SCREENSHOTS');
// Generous: CI runs this beside the rest of the suite on two cores.
const STEP_TIMEOUT = 30_000;
mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
const started = Date.now();
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
    throw e;
  }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }

// cliAs runs the spacetime CLI as Alice or Bob (their own config dirs).
function cliAs(config, ...args) {
  return execFileSync(env('SPACETIME_BIN'), args, {
    env: { ...process.env, SPACETIME_SERVER: BASE, SPACETIME_CONFIG_DIR: config, SPACETIME_DB: 'secure_app' },
    encoding: 'utf8',
  });
}

// The extra flags keep Chromium off the network (this machine has none):
// without them it keeps trying to reach its vendor's services.
const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
function watch(page) {
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push('CSP: ' + m.text());
    else if (m.type() === 'error' && !/status of 4[0-9][0-9]/.test(m.text())) problems.push('console error: ' + m.text());
  });
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
}

const rowsText = (page) => page.locator('#rows tbody').innerText();
async function waitStatus(page, text) {
  await page.waitForFunction((t) => document.getElementById('rows-status').textContent.includes(t), text, { timeout: STEP_TIMEOUT });
}
// viewAs shows the open table as identity id and returns {error, rows}.
async function viewAs(page, id) {
  await page.fill('#viewas-id', id);
  await page.click('#viewas-go');
  await waitStatus(page, 'Viewing as');
  await page.waitForFunction((id) => {
    const s = document.getElementById('rows-status').textContent;
    return id === 'anonymous' ? s.includes('anonymous') : s.includes(id.slice(0, 10));
  }, id, { timeout: STEP_TIMEOUT });
  const errBox = page.locator('#rows-error');
  const error = (await errBox.isVisible()) ? await errBox.innerText() : null;
  const rows = await page.locator('#rows tbody tr').evaluateAll((trs) => trs.filter((tr) => !tr.querySelector('td[colspan]')).map((tr) => tr.innerText));
  return { error, rows };
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  watch(page);

  await step('the page loads with its policy and the sign-in form', async () => {
    const res = await page.goto(BASE + '/');
    check(res.status() === 200, `GET / answered ${res.status()}`);
    const csp = res.headers()['content-security-policy'] || '';
    check(csp.includes("default-src 'self'") && csp.includes('ws://'), `CSP: ${csp}`);
    check(res.headers()['cache-control'] === 'no-cache', `Cache-Control: ${res.headers()['cache-control']}`);
    await page.waitForSelector('#signin-form');
    check((await page.locator('#signin-jq').textContent()).includes(BASE), 'the token instructions name this server');
  });

  await step('a bad token is refused with the server\'s reason', async () => {
    await page.fill('#signin-token', 'not-a-token');
    await page.click('#signin-submit');
    await page.waitForSelector('#signin-error:not([hidden])');
    const msg = await page.locator('#signin-error').innerText();
    check(/invalid bearer token/i.test(msg), `error: ${msg}`);
  });

  await step('sign in with the CLI\'s credentials.json', async () => {
    await page.setInputFiles('#signin-file', env('OPERATOR_CREDENTIALS'));
    await page.waitForSelector('#app:not([hidden])');
    const who = await page.locator('#who-id').innerText();
    check(/^[0-9a-f]{64}$/.test(who), `operator identity: ${who}`);
    const stored = await page.evaluate(() => [sessionStorage.getItem('spacetime.operatorToken'), localStorage.length]);
    check(stored[0] && stored[0].length > 100 && stored[1] === 0, 'the token is kept in sessionStorage only');
    await page.waitForSelector('.db-link[data-db="secure_app"]');
    await page.waitForSelector('#db-live.live-on');
  });

  await step('open User: columns, keys, indexes, grants and rows', async () => {
    await page.click('.table-link[data-table="User"]');
    await waitStatus(page, 'live from tx');
    const schema = await page.locator('#table-view').innerText();
    for (const want of ['identity_id', 'IdentityId', 'primary key', 'User_identity_id_idx', 'grant_access User where identity_id = :caller;']) {
      check(schema.includes(want), `User schema lacks ${want}`);
    }
    const rows = await rowsText(page);
    check(rows.includes('alice') && rows.includes('bob') && rows.includes(ALICE) && rows.includes(BOB), `User rows: ${rows}`);
  });

  await step('open Post', async () => {
    await page.click('.table-link[data-table="Post"]');
    await waitStatus(page, 'live from tx');
    const rows = await rowsText(page);
    check(rows.includes('Hello from alice!') && rows.includes('Hello from bob!'), `Post rows: ${rows}`);
    check((await page.locator('#t-grants').innerText()).includes('grant_access Post to public;'), 'Post grant');
  });

  await step('a row appears when a reducer is called from the CLI', async () => {
    cliAs(env('ALICE_CONFIG'), 'call', 'create_post', 'Live from the CLI');
    const row = page.locator('#rows tbody tr.new', { hasText: 'Live from the CLI' });
    await row.waitFor();
    check((await row.innerText()).includes(ALICE), 'the new post is Alice\'s');
    // The count beside the table follows the stats poll (2 s).
    await page.waitForFunction(() => document.querySelector('.table-list [data-count="Post"]').textContent === '4');
    await page.screenshot({ path: join(SHOTS, 'desktop-tables.png'), fullPage: true });
  });

  await step('the filter box takes the query language', async () => {
    await page.fill('#query', `SELECT * FROM Post WHERE author_identity_id = 0x${BOB}`);
    await page.click('#query-run');
    await waitStatus(page, '1 row');
    const rows = await rowsText(page);
    check(rows.includes('Hello from bob!') && !rows.includes('alice'), `filtered rows: ${rows}`);
    await page.fill('#query', 'SELEC nope');
    await page.click('#query-run');
    await page.waitForSelector('#rows-error:not([hidden])');
    check(/1:1/.test(await page.locator('#rows-error').innerText()), 'a syntax error shows its position');
    await page.fill('#query', 'SELECT * FROM Post');
    await page.click('#query-run');
    await waitStatus(page, 'live from tx');
  });

  await step('call a reducer from the page: anonymously, then as Alice', async () => {
    await page.click('.tabs [data-tab="reducers"]');
    const card = page.locator('.reducer[data-reducer="create_post"]');
    await card.locator('input[name="content"]').fill('Hello, unauthenticated world!');
    await card.locator('button[type="submit"]').click();
    await card.locator('output.result.bad').waitFor();
    const refused = await card.locator('output').innerText();
    check(refused.includes('Unauthorized: You must be logged in to create a post.'), `anonymous call: ${refused}`);
    await card.locator('select.as-mode').selectOption('identity');
    await card.locator('input.as-id').fill(ALICE);
    await card.locator('input[name="content"]').fill('Posted from the admin page as Alice');
    await card.locator('button[type="submit"]').click();
    await card.locator('output.result.ok').waitFor();
    check((await card.locator('output').innerText()).includes('committed in tx'), 'committed');
    await page.screenshot({ path: join(SHOTS, 'desktop-reducers.png') });
    await page.click('.tabs [data-tab="tables"]');
    const row = page.locator('#rows tbody tr.new', { hasText: 'Posted from the admin page as Alice' });
    await row.waitFor();
    check((await row.innerText()).includes(ALICE), 'the post made as Alice is hers');
  });

  await step('view as Alice and as Bob: User (grant_access User where identity_id = :caller)', async () => {
    await page.click('.table-link[data-table="Post"]');
    await waitStatus(page, 'live from tx');
    const posts = await viewAs(page, ALICE);
    check(!posts.error && posts.rows.length === 5, `Post is public: Alice sees all 5 posts, got ${JSON.stringify(posts)}`);

    await page.click('.table-link[data-table="User"]');
    await waitStatus(page, 'live from tx');
    check((await page.locator('#rows tbody tr').count()) === 3, 'the owner sees all three users');
    const alice = await viewAs(page, ALICE);
    const bob = await viewAs(page, 'bob'); // by the name User gives the identity
    const anon = await viewAs(page, 'anonymous');
    check(!alice.error && alice.rows.length === 1 && alice.rows[0].includes(ALICE) && alice.rows[0].includes('alice'), `Alice sees only her row: ${JSON.stringify(alice)}`);
    check(!bob.error && bob.rows.length === 1 && bob.rows[0].includes(BOB) && bob.rows[0].includes('bob'), `Bob sees only his row: ${JSON.stringify(bob)}`);
    check(!anon.error && anon.rows.length === 0, `anonymous sees no User row: ${JSON.stringify(anon)}`);
    await page.click('#viewas-clear');
    await waitStatus(page, 'live from tx');
    check((await page.locator('#rows tbody tr').count()) === 3, 'the owner view is back');
  });

  await step('view as Alice and as Bob: the private-message table', async () => {
    cliAs(env('ALICE_CONFIG'), 'call', 'send_message', BOB, 'hi bob, from alice');
    cliAs(env('BOB_CONFIG'), 'call', 'send_message', ALICE, 'hi alice, from bob');
    cliAs(env('BOB_CONFIG'), 'call', 'send_message', CAROL, 'hi carol, from bob');
    await page.click('.table-link[data-table="PrivateMessage"]');
    await waitStatus(page, 'live from tx');
    await page.waitForFunction(() => document.querySelectorAll('#rows tbody tr').length === 3);
    const grants = await page.locator('#t-grants').innerText();
    check(grants.includes('grant_access PrivateMessage where sender = :caller or recipient = :caller;'), `grants: ${grants}`);
    await page.waitForFunction(() => document.querySelector('.table-list [data-count="PrivateMessage"]').textContent === '3');
    const alice = await viewAs(page, ALICE);
    await page.screenshot({ path: join(SHOTS, 'desktop-view-as.png'), fullPage: true });
    const bob = await viewAs(page, BOB);
    const carol = await viewAs(page, CAROL);
    const anon = await viewAs(page, 'anonymous');
    const texts = (v) => v.rows.map((r) => r.match(/hi \w+, from \w+/)[0]).sort();
    check(!alice.error && JSON.stringify(texts(alice)) === JSON.stringify(['hi alice, from bob', 'hi bob, from alice']), `Alice sees the two messages she is part of: ${JSON.stringify(alice)}`);
    check(!bob.error && JSON.stringify(texts(bob)) === JSON.stringify(['hi alice, from bob', 'hi bob, from alice', 'hi carol, from bob']), `Bob sees his three: ${JSON.stringify(bob)}`);
    check(!carol.error && JSON.stringify(texts(carol)) === JSON.stringify(['hi carol, from bob']), `Carol sees hers: ${JSON.stringify(carol)}`);
    check(!anon.error && anon.rows.length === 0, `anonymous sees none: ${JSON.stringify(anon)}`);
    await page.click('#viewas-clear');
    await waitStatus(page, 'live from tx');
  });

  await step('argument and quantile helpers', async () => {
    const got = await page.evaluate(() => {
      const { argJSON, quantile, resolveIdentity } = window.spacetimeAdminInternals;
      const tryArg = (...a) => { try { return argJSON(...a); } catch (e) { return 'error: ' + e.message; } };
      return {
        u64: tryArg('n', 'u64', ' 18446744073709551615 '),
        str: tryArg('s', 'String', '12'),
        id: tryArg('who', 'IdentityId', '0xC200aa'),
        optEmpty: tryArg('o', 'Option<String>', ''),
        optStr: tryArg('o', 'Option<String>', 'hi'),
        vec: tryArg('v', 'Vec<u32>', '[1, 2]'),
        idDigit: tryArg('who', 'IdentityId', '1200aa'),
        tsNum: tryArg('t', 'Timestamp', '1764280862000000'),
        tsText: tryArg('t', 'Timestamp', '2026-11-27T22:00:00Z'),
        bad: tryArg('x', 'i32', 'abc'),
        missing: tryArg('x', 'i32', ''),
        p99: quantile(0.99, [{ le: 0.001, count: 0 }, { le: 0.002, count: 100 }, { le: null, count: 100 }]),
        p99inf: quantile(0.99, [{ le: 0.001, count: 1 }, { le: null, count: 100 }]),
        none: quantile(0.99, [{ le: null, count: 0 }]),
        byName: resolveIdentity('alice'),
        anon: resolveIdentity(' anonymous '),
        unknown: resolveIdentity('nobody'),
      };
    });
    const want = {
      u64: '18446744073709551615', str: '"12"', id: '"C200aa"', idDigit: '"1200aa"', tsNum: '1764280862000000', tsText: '"2026-11-27T22:00:00Z"', optEmpty: 'null', optStr: '"hi"', vec: '[1, 2]',
      byName: ALICE, anon: '', unknown: null, p99inf: 0.001, none: null,
    };
    for (const [k, v] of Object.entries(want)) check(got[k] === v, `${k}: got ${JSON.stringify(got[k])}, want ${JSON.stringify(v)}`);
    check(/^error: x \(i32\) is not valid JSON/.test(got.bad) && /needs a value/.test(got.missing), `errors: ${got.bad} / ${got.missing}`);
    check(Math.abs(got.p99 - 0.00199) < 1e-9, `p99 ${got.p99}`);
  });

  await step('connected clients, with the page\'s own owner connection', async () => {
    await page.click('.tabs [data-tab="clients"]');
    await page.waitForSelector('#clients td:text("owner (operator token)")', { timeout: STEP_TIMEOUT });
  });

  await step('the module log, live', async () => {
    await page.click('.tabs [data-tab="logs"]');
    await page.waitForSelector('#log .logline:has-text("Posted") , #log .logline:has-text("Post created")');
    cliAs(env('BOB_CONFIG'), 'call', 'update_profile', 'bobby', 'bob@example.com');
    await page.waitForFunction(() => document.getElementById('log').childElementCount >= 4);
    await page.screenshot({ path: join(SHOTS, 'desktop-log.png') });
  });

  await step('charts: calls, errors, p99 latency, energy, rows per table', async () => {
    await page.click('.tabs [data-tab="charts"]');
    for (let i = 0; i < 5; i++) cliAs(env('ALICE_CONFIG'), 'call', 'create_post', `load ${i}`);
    await page.waitForSelector('#chart-calls polyline', { timeout: STEP_TIMEOUT });
    for (const id of ['chart-errors', 'chart-p99', 'chart-energy', 'chart-rows']) await page.waitForSelector('#' + id);
    const rows = await page.locator('#chart-rows').innerText();
    check(rows.includes('Post') && rows.includes('User'), `rows chart: ${rows}`);
    await page.screenshot({ path: join(SHOTS, 'desktop-charts.png') });
  });

  await step('phone-sized screen: no sideways scrolling, tables and reducers usable', async () => {
    const token = await page.evaluate(() => sessionStorage.getItem('spacetime.operatorToken'));
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const p = await phone.newPage();
    p.setDefaultTimeout(STEP_TIMEOUT);
    watch(p);
    await p.goto(BASE + '/#token=' + encodeURIComponent(token) + '&db=secure_app&table=Post');
    await p.waitForSelector('#app:not([hidden])');
    check(!(await p.evaluate(() => location.hash.includes('token'))), 'the token is removed from the address bar');
    await waitStatus(p, 'live from tx');
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    await p.screenshot({ path: join(SHOTS, 'phone-tables.png') });
    await p.click('.tabs [data-tab="reducers"]');
    await p.waitForSelector('.reducer[data-reducer="create_post"]');
    check((await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)) <= 0, 'reducers scroll sideways');
    await p.screenshot({ path: join(SHOTS, 'phone-reducers.png') });
    for (const tab of ['clients', 'logs', 'charts']) {
      await p.click(`.tabs [data-tab="${tab}"]`);
      await p.waitForSelector(`#tab-${tab}:not([hidden])`);
      const over = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      check(over <= 0, `the ${tab} tab scrolls sideways by ${over}px`);
    }
    await phone.close();
  });

  await step('a database published from the CLI appears in the list', async () => {
    execFileSync(env('SPACETIME_BIN'), ['publish', 'secure_app_2', '--wasm', env('MODULE_WASM')], {
      env: { ...process.env, SPACETIME_SERVER: BASE, SPACETIME_CONFIG_DIR: env('OPERATOR_CONFIG') },
    });
    await page.waitForSelector('.db-link[data-db="secure_app_2"]', { timeout: STEP_TIMEOUT });
    await page.click('.db-link[data-db="secure_app_2"]');
    await page.waitForSelector('.table-link[data-table="Post"]');
    await waitStatus(page, 'live from tx');
    check((await page.locator('#rows tbody tr td[colspan]').count()) === 1, 'the new database is empty');
    // A republish (spacetime dev does one on every save) reloads the schema in place.
    const published = await page.locator('#db-published').innerText();
    execFileSync(env('SPACETIME_BIN'), ['publish', 'secure_app_2', '--wasm', env('MODULE_WASM')], {
      env: { ...process.env, SPACETIME_SERVER: BASE, SPACETIME_CONFIG_DIR: env('OPERATOR_CONFIG') },
    });
    await page.waitForFunction((before) => document.getElementById('db-published').textContent !== before, published);
  });

  await step('sign out forgets the token', async () => {
    await page.click('#sign-out');
    await page.waitForSelector('#signin:not([hidden])');
    check((await page.evaluate(() => sessionStorage.length)) === 0, 'sessionStorage is empty');
  });

  await step('no CSP violations or script errors', async () => {
    check(problems.length === 0, problems.join('\n'));
  });
} catch (e) {
  // step() has reported it.
} finally {
  await browser.close();
  console.log(`${passed} passed, ${failed} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}
