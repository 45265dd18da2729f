// Drives Roundcube (elastic skin) in Debian's headless Chromium through
// playwright-core, for t/90-roundcube.t via t/lib/roundcube.py.
//
//   node roundcube_drive.js '{"url": ..., "shots": DIR, "chromium": PATH,
//                             "timeout": MS}'
//
// (Playwright starts Chromium with a new, empty profile of its own.)
//
// Protocol: one JSON request per line on stdin ({"op": NAME, ...args}), one
// JSON answer per line on stdout ({"error": MESSAGE} when the step threw).
// Answers report what the page shows (the DOM: folder list entries and
// their classes, message list rows, the preview frame, the quota widget);
// the test decides what is right. Each step can take a screenshot
// ("shot": NAME -> SHOTS/NN-NAME.png, numbered in call order).
'use strict';

const { chromium } = require('playwright-core');
const readline = require('readline');
const path = require('path');

const opts = JSON.parse(process.argv[2]);
let browser, context, page;
let shotNo = 0;

function log(...a) { process.stderr.write(a.join(' ') + '\n'); }

async function start() {
  browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
           '--disable-dev-shm-usage'],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 },
                                       locale: 'en-US', timezoneId: 'UTC' });
  context.setDefaultTimeout(opts.timeout || 20000);
  page = await context.newPage();
  page.on('console', m => { if (m.type() === 'error') log('console:', m.text()); });
  page.on('pageerror', e => log('pageerror:', e.message));
}

async function shot(name) {
  if (!name) return null;
  shotNo += 1;
  const file = path.join(opts.shots, String(shotNo).padStart(2, '0') + '-' + name + '.png');
  await page.screenshot({ path: file });
  return file;
}

// Roundcube is idle: no request in flight, nothing busy. Roundcube ignores
// commands (a folder click, a toolbar button) while it is busy, and some
// work starts late: selecting a message loads its preview after up to
// 400 ms (preview_delay_select), e.g. the next message after a delete.
// So: not busy, then again after that delay has surely passed.
async function idle() {
  const quiet = () => window.rcmail && !rcmail.busy && (!window.jQuery || jQuery.active === 0);
  await page.waitForFunction(quiet);
  await page.waitForTimeout(450);
  await page.waitForFunction(quiet);
}

// Messages Roundcube showed in its message stack (errors, confirmations).
async function messages(p) {
  return (p || page).evaluate(() => Array.from(
    document.querySelectorAll('#messagestack > div')).map(d => ({
      cls: d.className, text: d.textContent.trim() })));
}

async function folders() {
  return page.evaluate(() => Array.from(
    document.querySelectorAll('#mailboxlist li.mailbox')).map(li => {
      const a = li.querySelector(':scope > a');
      return { name: a ? a.getAttribute('rel') : null,
               text: a ? a.textContent.trim() : '',
               classes: li.className.split(/\s+/).filter(Boolean),
               icon: a ? getComputedStyle(a, ':before').content : null };
    }));
}

// The message list as shown: DOM order, with Roundcube's own row data.
async function rows() {
  return page.evaluate(() => {
    const out = [];
    const list = rcmail.message_list;
    document.querySelectorAll('#messagelist tbody tr').forEach(tr => {
      if (tr.style.display === 'none') return;
      // Roundcube sets the UID on the row element (its id is rcmrow + base64).
      const uid = String(tr.uid || (list && list.get_row_uid ? list.get_row_uid(tr) : tr.id));
      const r = list && list.rows ? list.rows[uid] : null;
      const q = sel => { const e = tr.querySelector(sel); return e ? e.textContent.trim() : ''; };
      out.push({ uid: uid, subject: q('td.subject span.subject') || q('td.subject a') || q('.subject'),
                 from: q('.fromto') || q('.from'), date: q('.date'), size: q('.size'),
                 classes: tr.className.split(/\s+/).filter(Boolean),
                 depth: r ? (r.depth || 0) : null, parent_uid: r ? (r.parent_uid || null) : null,
                 has_children: r ? !!r.has_children : null });
    });
    return out;
  });
}

async function state() {
  return page.evaluate(() => ({
    task: window.rcmail ? rcmail.env.task : null,
    action: window.rcmail ? rcmail.env.action : null,
    mailbox: window.rcmail ? rcmail.env.mailbox : null,
    messagecount: window.rcmail ? rcmail.env.messagecount : null,
    threading: window.rcmail ? !!rcmail.env.threading : null,
    threads_env: window.rcmail ? !!rcmail.env.threads : null,
    sort_col: window.rcmail ? rcmail.env.sort_col : null,
    sort_order: window.rcmail ? rcmail.env.sort_order : null,
    quota: window.rcmail ? !!rcmail.env.quota : null,
    url: location.href,
  }));
}

// Click something that loads a new page; resolves once it has loaded.
async function clickAndLoad(locator) {
  await Promise.all([page.waitForEvent('load'), locator.click()]);
}

function rowLocator(subject) {
  return page.locator('#messagelist tbody tr', { hasText: subject }).first();
}

async function selectFolder(name) {
  await page.locator('#mailboxlist li.mailbox > a[rel="' + name + '"]').click();
  await page.waitForFunction(n => window.rcmail && rcmail.env.mailbox === n, name);
  await idle();
}

// Apply list options through the list options dialog (sort column, order, mode).
async function listOptions(o) {
  await page.locator('#layout-list .toolbar a.options').click();
  const dlg = page.locator('.ui-dialog:visible, .popover:visible').filter(
    { has: page.locator('select[name="sort_col"]') }).first();
  await dlg.waitFor();
  if (o.col !== undefined) await dlg.locator('select[name="sort_col"]').selectOption(o.col);
  if (o.order !== undefined) await dlg.locator('select[name="sort_ord"]').selectOption(o.order);
  let threadsAvailable = (await dlg.locator('select[name="mode"]').count()) > 0;
  if (o.mode !== undefined && threadsAvailable)
    await dlg.locator('select[name="mode"]').selectOption(o.mode);
  await dlg.locator('button.mainaction, .ui-dialog-buttonpane button.save').first().click();
  await idle();
  return threadsAvailable;
}

async function previewFrame() {
  const el = await page.waitForSelector('#messagecontframe');
  return el.contentFrame();
}

const ops = {
  async ping() { return { ok: true, version: browser.version() }; },

  async login(a) {
    await page.goto(opts.url);
    await page.fill('#rcmloginuser', a.user);
    await page.fill('#rcmloginpwd', a.password);
    const shotForm = await shot(a.shot ? a.shot + '-form' : null);
    await clickAndLoad(page.locator('#rcmloginsubmit'));
    // Either the mail view or the login form again with an error.
    await page.waitForFunction(() => window.rcmail && (rcmail.env.task === 'mail'
      && document.querySelector('#messagelist')
      || document.querySelector('#messagestack > div.error, #messagestack > div.warning')));
    if ((await state()).task === 'mail') await idle();
    const st = await state();
    return { state: st, messages: await messages(), shot_form: shotForm, shot: await shot(a.shot),
             user: await page.evaluate(() => (document.querySelector('.header-title.username')
                                              || {}).textContent || '') };
  },

  async folders(a) {
    await idle();
    return { folders: await folders(), state: await state(), shot: await shot(a.shot) };
  },

  async folder(a) {
    await selectFolder(a.name);
    return { rows: await rows(), state: await state(), shot: await shot(a.shot) };
  },

  // Click "refresh" (checkmail) until a row with the subject shows up.
  async wait_row(a) {
    const deadline = Date.now() + (a.timeout || 15000);
    for (;;) {
      if (await rowLocator(a.subject).count()) break;
      if (Date.now() > deadline) break;
      await page.locator('#messagelist-header a.refresh').click();
      await idle();
    }
    return { rows: await rows(), state: await state(), shot: await shot(a.shot) };
  },

  async rows(a) {
    await idle();
    return { rows: await rows(), state: await state(), shot: await shot(a.shot) };
  },

  // Click a row: the preview frame shows the message.
  async open(a) {
    await rowLocator(a.subject).click();
    const frame = await previewFrame();
    await frame.waitForSelector('#messagebody', { timeout: 15000 });
    await idle();
    const info = await frame.evaluate(() => {
      const t = s => { const e = document.querySelector(s); return e ? e.textContent.trim() : null; };
      // h2.subject holds a hidden "Subject:" label and an "open in new
      // window" link around the subject text itself.
      const h = document.querySelector('h2.subject');
      const subj = h ? Array.from(h.childNodes).filter(n => n.nodeType === 3)
        .map(n => n.textContent).join('').trim() : null;
      return {
        subject: subj,
        from: t('.header .from') || t('.from'),
        body: t('#messagebody'),
        attachments: Array.from(document.querySelectorAll('#attachment-list li')).map(li => ({
          text: li.textContent.replace(/\s+/g, ' ').trim(),
          name: (li.querySelector('a.filename .attachment-name') || li.querySelector('a.filename')
                 || li).textContent.trim(),
          classes: li.className })),
      };
    });
    return Object.assign(info, { state: await state(), shot: await shot(a.shot) });
  },

  async sort(a) {
    await listOptions({ col: a.col, order: a.order });
    return { rows: await rows(), state: await state(), shot: await shot(a.shot) };
  },

  async threads(a) {
    let available = await listOptions({ mode: a.mode || 'threads' });
    if (available && (a.mode || 'threads') === 'threads') {
      await page.evaluate(() => rcmail.command('expand-all'));
      await idle();
    }
    return { available: available, rows: await rows(), state: await state(),
             shot: await shot(a.shot) };
  },

  async search(a) {
    const input = page.locator('input#mailsearchform');
    await input.fill(a.text);
    await input.press('Enter');
    await page.waitForFunction(() => window.rcmail && !!rcmail.env.search_request);
    await idle();
    return { rows: await rows(), state: await state(), messages: await messages(),
             shot: await shot(a.shot) };
  },

  async reset_search(a) {
    await page.locator('#layout-list .searchbar a.reset').click();
    await page.waitForFunction(() => window.rcmail && !rcmail.env.search_request);
    await idle();
    return { rows: await rows(), state: await state(), shot: await shot(a.shot) };
  },

  // Select a row, then toolbar "More" > "Move to..." > the folder.
  async move(a) {
    await rowLocator(a.subject).click();
    await idle();
    await page.locator('#messagemenulink').click();
    await page.locator('#message-menu a.move').click();
    const sel = page.locator('#folder-selector');
    await sel.waitFor();
    await page.waitForTimeout(400);  // the popup fades in
    const shotMenu = await shot(a.shot ? a.shot + '-menu' : null);
    // Entries show the folder's display name (no rel/data attribute).
    await sel.locator('li a').filter({ has: page.getByText(a.label || a.folder, { exact: true }) })
      .first().click();
    await idle();
    return { rows: await rows(), state: await state(), messages: await messages(),
             shot_menu: shotMenu, shot: await shot(a.shot) };
  },

  // Select a row, toolbar "Delete" (to Trash unless in Trash).
  async delete(a) {
    await rowLocator(a.subject).click();
    await idle();
    await page.locator('#layout-content a.delete').click();
    await idle();
    return { rows: await rows(), state: await state(), messages: await messages(),
             shot: await shot(a.shot) };
  },

  async quota(a) {
    await idle();
    const q = await page.evaluate(() => {
      const w = document.querySelector('#quotadisplay');
      const content = rcmail.env.quota_content || null;
      if (!w) return { present: false, content: content };
      const cs = getComputedStyle(w);
      const count = w.querySelector('.count');
      return { present: true, visible: cs.display !== 'none' && w.offsetParent !== null,
               text: (count || w).textContent.replace(/\s+/g, ' ').trim(),
               title: (count || w).getAttribute('title'),
               bar: !!w.querySelector('.bar .value'),
               content: content };
    });
    return Object.assign(q, { state: await state(), shot: await shot(a.shot) });
  },

  // Settings > Password: fill the plugin's form and save.
  async password(a) {
    await clickAndLoad(page.locator('#taskmenu a.settings'));
    await page.waitForFunction(() => window.rcmail && rcmail.env.task === 'settings');
    await idle();
    await clickAndLoad(page.locator('#settings-menu a.password'));
    await page.waitForFunction(() => window.rcmail && rcmail.env.action === 'plugin.password');
    await idle();
    await page.fill('#curpasswd', a.current);
    await page.fill('#newpasswd', a.new);
    await page.fill('#confpasswd', a.new);
    const shotForm = await shot(a.shot ? a.shot + '-form' : null);
    await clickAndLoad(page.locator('.formbuttons button.submit'));
    await page.waitForFunction(() => window.rcmail && rcmail.env.task === 'settings');
    await page.waitForSelector('#messagestack > div');
    return { messages: await messages(), state: await state(), shot_form: shotForm,
             shot: await shot(a.shot) };
  },

  async logout(a) {
    await clickAndLoad(page.locator('#taskmenu a.logout'));
    await page.waitForSelector('#rcmloginuser');
    return { state: await state(), messages: await messages(),
             login_form: (await page.locator('#rcmloginuser').count()) > 0,
             shot: await shot(a.shot) };
  },

  async shot(a) { return { shot: await shot(a.name) }; },

  async click(a) {
    await page.locator(a.selector).first().click();
    if (a.idle !== false) await idle();
    return { state: await state(), shot: await shot(a.shot) };
  },

  async eval(a) { return { value: await page.evaluate(a.js) }; },
};

async function main() {
  await start();
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    let req;
    try { req = JSON.parse(line); } catch (e) {
      process.stdout.write(JSON.stringify({ error: 'bad request: ' + e.message }) + '\n');
      continue;
    }
    if (req.op === 'quit') break;
    let ans;
    try {
      const fn = ops[req.op];
      if (!fn) throw new Error('unknown op ' + req.op);
      ans = await fn(req);
    } catch (e) {
      let s = null;
      try { s = await shot('error-' + req.op); } catch (e2) { /* page gone */ }
      ans = { error: String(e && e.stack || e), shot: s };
    }
    process.stdout.write(JSON.stringify(ans) + '\n');
  }
  await browser.close();
}

main().catch(e => { log(e && e.stack || e); process.exit(1); });
