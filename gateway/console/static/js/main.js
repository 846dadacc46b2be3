// Login, the navigation bar and the page router (#/unmapped, #/entries …).

import { api, setToken, token } from './api.js';
import { clear, el, errorBox } from './dom.js';
import { session } from './session.js';
import * as deadletters from './pages/deadletters.js';
import * as entries from './pages/entries.js';
import * as messages from './pages/messages.js';
import * as overrides from './pages/overrides.js';
import * as progress from './pages/progress.js';
import * as unmapped from './pages/unmapped.js';

const PAGES = { unmapped, entries, progress, deadletters, overrides, messages };
const ROLE_NAMES = { sender: '发送系统', pharmacist: '药师', procurement: '采购', admin: '管理员',
  auditor: '审计' };

const $ = (id) => document.getElementById(id);

function showLogin(err) {
  $('who').hidden = true;
  $('nav').hidden = true;
  $('page').hidden = true;
  $('login').hidden = false;
  const box = $('login-error');
  clear(box);
  if (err) errorBox(box, err);
  $('login-token').focus();
}

function showApp(me) {
  session.me = me;
  $('login').hidden = true;
  $('who-name').textContent = me.name;
  $('who-role').textContent = ROLE_NAMES[me.role] || me.role;
  $('who-hospitals').textContent = me.hospitals.length
    ? `可操作机构：${me.hospitals.join('、')}` : '';
  // a gateway with no identities answers loopback callers without a token: nothing to log out of
  $('logout').hidden = !token();
  $('who').hidden = false;
  $('nav').hidden = false;
  $('page').hidden = false;
  const list = clear($('hospital-list'));
  for (const h of me.known_hospitals || []) {
    list.appendChild(el('option', { value: h.code, text: h.name }));
  }
  route();
}

function route() {
  if (!session.me) return;
  const name = (window.location.hash.replace(/^#\/?/, '').split('?')[0]) || 'unmapped';
  const page = PAGES[name] || PAGES.unmapped;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const container = clear($('page'));
  document.title = `${page.title} · 集采网关`;
  page.render(container);
}

async function start() {
  try {
    showApp(await api('GET', '/api/whoami'));
  } catch (err) {
    if (err.status === 401 && token()) {
      setToken('');
      showLogin(err);
    } else if (err.status === 401) {
      showLogin(null);
    } else {
      showLogin(err);
    }
  }
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const value = $('login-token').value.trim();
  try {
    const me = await api('GET', '/api/whoami', { token: value });
    setToken(value);
    $('login-token').value = '';
    showApp(me);
  } catch (err) {
    showLogin(err);
  }
});

$('logout').addEventListener('click', () => {
  setToken('');
  session.me = null;
  clear($('page'));
  showLogin(null);
});

window.addEventListener('jcgw-unauthorized', (event) => {
  setToken('');
  session.me = null;
  clear($('page'));
  showLogin(event.detail);
});

window.addEventListener('hashchange', route);
start();
