// The gateway's JSON API with the token of this browser tab.
//
// The token lives in sessionStorage: it goes with each request as a header, never as a
// cookie, so another site cannot make the browser call the API on the user's behalf.

const KEY = 'jcgw.token';

export function token() {
  return sessionStorage.getItem(KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, message, problems, body) {
    super(message);
    this.status = status;
    this.problems = problems || [];
    this.body = body;
  }
}

function headers(extra, explicitToken) {
  const h = Object.assign({ Accept: 'application/json' }, extra || {});
  const t = explicitToken === undefined ? token() : explicitToken;
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

function url(path, query) {
  const u = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

// handlers answer errors as JSON {error, problems} or, for a few, as plain text
async function failure(response) {
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = null; }
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const problems = Array.isArray(body.problems) ? body.problems.map(String) : [];
    return new ApiError(response.status, String(body.error || text), problems, body);
  }
  return new ApiError(response.status, text.trim() || response.statusText, [], null);
}

// options: query, json (a body to send as JSON), form (FormData), token (override), raw
export async function api(method, path, options) {
  const o = options || {};
  const init = { method, headers: headers({}, o.token), credentials: 'omit' };
  if (o.json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(o.json);
  } else if (o.form) {
    init.body = o.form;
  }
  let response;
  try {
    response = await fetch(url(path, o.query), init);
  } catch (e) {
    throw new ApiError(0, `网络错误：${e.message}`, [], null);
  }
  // a replay answers 409 with what it did queue: the caller wants both
  if (!response.ok && !(o.accept && o.accept.includes(response.status))) {
    const err = await failure(response);
    // the tab's token was rotated or revoked: back to the login page, saying why
    if (err.status === 401 && o.token === undefined && token()) {
      window.dispatchEvent(new CustomEvent('jcgw-unauthorized', { detail: err }));
    }
    throw err;
  }
  if (o.raw) return response;
  const ctype = response.headers.get('Content-Type') || '';
  const data = ctype.includes('json') ? await response.json() : await response.text();
  return o.accept ? { status: response.status, data } : data;
}

// a download that needs the token: fetch it as a blob and hand it to the browser
export async function download(path, query, filename) {
  const response = await api('GET', path, { query, raw: true });
  const blob = await response.blob();
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
