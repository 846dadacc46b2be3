// Building the page from data. Every value reaches the DOM through textContent or an
// attribute set by name: data never goes through an HTML parser.

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'value') node.value = String(value);
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

let counter = 0;

// a labelled control: the label names the input for screen readers and for tests
export function field(labelText, attrs) {
  const id = (attrs && attrs.id) || `f${++counter}`;
  const tag = (attrs && attrs.tag) || 'input';
  const input = el(tag, Object.assign({}, attrs, { id, tag: null }));
  return { wrap: el('div', { class: 'field' }, el('label', { for: id, text: labelText }), input),
    input };
}

export function select(labelText, options, attrs) {
  const { wrap, input } = field(labelText, Object.assign({ tag: 'select' }, attrs));
  for (const [value, text] of options) input.appendChild(el('option', { value, text }));
  if (attrs && attrs.value !== undefined) input.value = attrs.value;
  return { wrap, input };
}

export function table(headers, rows, caption) {
  return el('table', { class: 'grid' },
    caption ? el('caption', { text: caption }) : null,
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows));
}

const STATUS_TEXT = {
  0: '无法连接网关', 400: '请求有误，未做任何修改', 401: '未登录或令牌无效', 403: '无权限',
  404: '未找到', 408: '请求超时', 409: '与当前状态冲突', 413: '文件过大',
  500: '网关内部错误', 503: '服务暂不可用，请稍后重试',
};

// an API error in a box the screen reader announces: status in Chinese, then the
// gateway's own words (error and each problem)
export function errorBox(container, err) {
  const status = err && err.status !== undefined ? err.status : 0;
  const label = STATUS_TEXT[status] || '请求失败';
  const problems = (err && err.problems) || [];
  const box = el('div', { class: 'error', role: 'alert' },
    el('strong', { text: `请求失败（HTTP ${status || '—'}）：${label}` }),
    err && err.message ? el('p', { class: 'error-detail', text: err.message }) : null,
    problems.length > 0 && !(problems.length === 1 && problems[0] === err.message)
      ? el('ul', {}, problems.slice(0, 50).map((p) => el('li', { text: p })),
        problems.length > 50 ? el('li', { text: `另有 ${problems.length - 50} 条问题未列出` }) : null)
      : null);
  if (container) clear(container).appendChild(box);
  return box;
}

export function notice(container, text) {
  const box = el('div', { class: 'notice', role: 'status', text });
  clear(container).appendChild(box);
  return box;
}

const CHINA = { timeZone: 'Asia/Shanghai', hour12: false, year: 'numeric', month: '2-digit',
  day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' };

// ISO text or unix seconds → China time, as the hospital reads it
export function when(value) {
  if (value === null || value === undefined || value === '') return '—';
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString('zh-CN', CHINA).replace(/\//g, '-');
}

export function percent(value) {
  if (value === null || value === undefined || value === '') return '—';
  const n = Number(value);
  return Number.isFinite(n) ? `${(n * 100).toFixed(1)}%` : String(value);
}

export function heading(text) {
  return el('h1', { text });
}
