// 消息查询: find a message (GET /api/messages) and follow it to the platform
// (GET /api/messages/{id}). Patient fields arrive masked for every role but admin.

import { api } from '../api.js';
import { clear, el, errorBox, field, select, table, when } from '../dom.js';
import { hospitalField } from '../session.js';

export const title = '消息查询';

const STATES = [['', '全部'], ['pending', '待上报'], ['delivered', '已上报'],
  ['dead_letter', '死信'], ['held', '暂存（待对码）'], ['quarantined', '隔离（无法解析）'],
  ['acknowledged', '已应答']];
const STATE_TEXT = Object.fromEntries(STATES.filter(([v]) => v));
const OUTBOX_TEXT = { pending: '待上报', delivered: '已上报', dead: '死信' };
const TRY_TEXT = { delivered: '成功', retry: '失败，待重试', rejected: '拒收' };

export function render(root) {
  const controlId = field('消息控制号（MSH-10 / 资源 ID）', { type: 'text', size: 22,
    spellcheck: 'false', placeholder: '如 RDS20261123000001' });
  const hospital = hospitalField('医疗机构编码');
  const item = field('药品编码（院内或国家医保编码）', { type: 'text', size: 22, spellcheck: 'false' });
  const state = select('状态', STATES, { value: '' });
  const since = field('接收时间起', { type: 'datetime-local' });
  const until = field('接收时间止', { type: 'datetime-local' });
  const status = el('div', { class: 'status-area' });
  const results = el('div', { 'aria-live': 'polite' });
  const detail = el('section', { class: 'panel', 'aria-labelledby': 'message-title', hidden: true });
  let after = null;

  const form = el('form', { class: 'filters', 'aria-label': '消息筛选' },
    controlId.wrap, hospital.wrap, item.wrap, state.wrap, since.wrap, until.wrap,
    el('button', { type: 'submit', text: '查询' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); after = null; load(); });

  // datetime-local has no zone: the hospital means China time
  function iso(value) {
    return value ? `${value.length === 16 ? `${value}:00` : value}+08:00` : '';
  }

  async function load() {
    clear(status);
    clear(results);
    try {
      const page = await api('GET', '/api/messages', { query: {
        control_id: controlId.input.value.trim(), hospital: hospital.input.value.trim(),
        item: item.input.value.trim(), state: state.input.value,
        since: iso(since.input.value), until: iso(until.input.value),
        after_id: after || '' } });
      show(page);
    } catch (err) {
      errorBox(status, err);
    }
  }

  function show(page) {
    if (page.window && page.window.defaulted) {
      results.appendChild(el('p', { class: 'lead', text: '未指定起始时间：仅查询最近 24 小时收到的消息。' }));
    }
    if (!page.items.length) {
      results.appendChild(el('p', { class: 'empty', text: '没有符合条件的消息。' }));
      return;
    }
    const rows = page.items.map((m) => el('tr', { 'data-id': m.id },
      el('td', { class: 'code', text: m.id }),
      el('td', { class: 'nowrap', text: when(m.received_at) }),
      el('td', { text: STATE_TEXT[m.state] || m.state }),
      el('td', { text: (m.hospitals || []).join('、') || '—' }),
      el('td', { text: m.sender || m.peer || '—' }),
      el('td', { class: 'code', text: m.control_id || m.reason || '—' }),
      el('td', { text: m.message_type || '—' }),
      el('td', {}, el('button', { type: 'button', text: '详情', 'aria-label': `消息 ${m.id} 详情`,
        onclick: () => open(m.id) }))));
    results.appendChild(table(['编号', '接收时间', '状态', '机构', '发送方', '控制号 / 原因', '类型', ''],
      rows, `本页 ${page.items.length} 条`));
    if (page.next_after_id) {
      results.appendChild(el('button', { type: 'button', text: '下一页', onclick: () => {
        after = page.next_after_id;
        load();
      } }));
    }
  }

  async function open(id) {
    clear(detail);
    detail.hidden = false;
    try {
      showDetail(await api('GET', `/api/messages/${encodeURIComponent(id)}`));
    } catch (err) {
      errorBox(detail, err);
    }
    detail.scrollIntoView();
  }

  function showDetail(m) {
    detail.append(el('h2', { id: 'message-title', text: `消息 ${m.id}` }),
      el('p', { text: `${STATE_TEXT[m.state] || m.state}；接收于 ${when(m.received_at)}` +
        (m.reason ? `；原因：${m.reason}` : '') }),
      m.masked ? el('p', { class: 'notice', text: '患者姓名、证件号、电话、医保号、就诊号已脱敏显示。' }) : null);
    if (m.text !== undefined) {
      detail.append(el('h3', { text: `原文（${m.charset}）` }),
        el('pre', { class: 'code', text: m.text.replace(/\r/g, '\n') }));
    }
    if (m.answer && m.answer.text) {
      detail.append(el('h3', { text: '网关应答' }),
        el('pre', { class: 'code', text: m.answer.text.replace(/\r/g, '\n') }));
    }
    for (const ev of m.events || []) {
      detail.append(el('h3', { text: `事件 ${ev.event.event_id}` }),
        ev.held ? el('p', { class: 'error-text', text: `暂存：${ev.held_reason}` }) : null,
        el('pre', { class: 'code', text: JSON.stringify(ev.event, null, 2) }));
    }
    if ((m.outbox || []).length) {
      const rows = [];
      for (const o of m.outbox) {
        const tries = o.tries.length ? o.tries : [null];
        for (const t of tries) {
          rows.push(el('tr', {},
            el('td', { text: o.destination }), el('td', { class: 'code', text: o.msgid }),
            el('td', { text: OUTBOX_TEXT[o.state] || o.state }),
            el('td', { class: 'nowrap', text: t ? when(t.at) : '—' }),
            el('td', { text: t ? (TRY_TEXT[t.outcome] || t.outcome) : '尚未发送' }),
            el('td', { text: t && t.http_status !== null ? t.http_status : '—' }),
            el('td', { text: t ? [t.code, t.message].filter(Boolean).join(' ') || '—' : '—' }),
            el('td', { text: t ? `${Math.round(t.latency_ms)} ms` : '—' })));
        }
      }
      detail.append(el('h3', { text: '上报记录' }),
        table(['目的地', '报文 ID', '状态', '时间', '结果', 'HTTP', '平台答复', '耗时'], rows));
    }
  }

  root.append(el('h1', { text: title }),
    el('p', { class: 'lead', text: '按消息控制号、机构、药品、状态或接收时间查找收到的消息，查看网关的应答和每次上报平台的结果。' }),
    form, status, results, detail);
}
