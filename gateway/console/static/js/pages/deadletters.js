// 死信与重发: events the platform refused or that ran out of attempts, and replay.

import { api } from '../api.js';
import { clear, el, errorBox, field, notice, table, when } from '../dom.js';
import { hospitalField } from '../session.js';

export const title = '死信与重发';

const STREAMS = { dispense: '销售/发药（3505）', dispense_return: '销售退货（3506）',
  receipt: '采购入库（3503）', return: '采购退货（3504）', stocktake: '盘存（3501）',
  stock_change: '库存变更（3502）', purchase_order: '采购订单', payment: '结算支付' };

export function render(root) {
  const destination = field('上报目的地', { type: 'text', list: 'destination-list', size: 12,
    required: true, spellcheck: 'false', placeholder: '如 nhsa' });
  const hospital = hospitalField('医疗机构编码');
  const transaction = field('交易（如 3505 或 dispense）', { type: 'text', size: 10, spellcheck: 'false' });
  const limit = field('最多显示条数', { type: 'number', min: 1, max: 5000, value: '100', size: 5 });
  const destinations = el('datalist', { id: 'destination-list' });
  const status = el('div', { class: 'status-area' });
  const results = el('div', { 'aria-live': 'polite' });
  const replayOut = el('div');

  const form = el('form', { class: 'filters', 'aria-label': '死信筛选' },
    destination.wrap, hospital.wrap, transaction.wrap, limit.wrap,
    el('button', { type: 'submit', text: '查询' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });

  const ids = field('按编号重发（多个编号用逗号分隔）', { type: 'text', size: 24,
    inputmode: 'numeric', placeholder: '如 1024,1025', required: true });
  const byId = el('form', { class: 'filters', 'aria-label': '按编号重发' },
    ids.wrap, el('button', { type: 'submit', text: '重发' }));
  byId.addEventListener('submit', (e) => {
    e.preventDefault();
    const list = ids.input.value.split(/[，,\s]+/).filter(Boolean).map(Number);
    if (list.some((n) => !Number.isInteger(n) || n <= 0)) {
      errorBox(replayOut, { status: 400, message: '编号须为正整数', problems: [] });
      return;
    }
    replay(list);
  });

  // the destinations the gateway mirrors to, as suggestions; the first one is listed at
  // once (a listing must name its rows). Only readers of dead letters may read them.
  async function start() {
    try {
      const names = Object.keys(await api('GET', '/api/mirror/balance'));
      for (const name of names) destinations.appendChild(el('option', { value: name }));
      if (names.length) destination.input.value = names[0];
    } catch (err) {
      // the listing below reports the same refusal
      load();
      return;
    }
    if (destination.input.value) load();
    else notice(status, '尚无任何上报记录，因此没有死信。');
  }

  async function load() {
    clear(status);
    clear(results);
    try {
      const rows = await api('GET', '/api/deadletters', { query: {
        destination: destination.input.value.trim(), hospital: hospital.input.value.trim(),
        transaction: transaction.input.value.trim(), limit: limit.input.value.trim() } });
      show(rows);
    } catch (err) {
      errorBox(status, err);
    }
  }

  function show(rows) {
    if (!rows.length) {
      results.appendChild(el('p', { class: 'empty', text: '没有符合条件的死信。' }));
      return;
    }
    const boxes = [];
    const body = rows.map((r) => {
      const box = el('input', { type: 'checkbox', value: String(r.id),
        'aria-label': `选择死信 ${r.id}` });
      boxes.push(box);
      return el('tr', { 'data-id': r.id },
        el('td', {}, box), el('td', { text: r.id }), el('td', { text: r.hospital_id }),
        el('td', { text: STREAMS[r.stream] || r.stream }), el('td', { text: r.destination }),
        el('td', { text: r.attempts }), el('td', { class: 'nowrap', text: when(r.created_at) }),
        el('td', { class: 'error-text', text: r.last_error || '—' }),
        el('td', { class: 'code', text: r.msgid }),
        el('td', {}, el('button', { type: 'button', text: '重发', 'aria-label': `重发死信 ${r.id}`,
          onclick: () => replay([r.id]) })));
    });
    const all = el('input', { type: 'checkbox', 'aria-label': '全选',
      onchange: () => boxes.forEach((b) => { b.checked = all.checked; }) });
    const header = table(['', '编号', '机构', '业务', '目的地', '尝试次数', '入队时间', '最后错误', '报文 ID', ''],
      body, `共 ${rows.length} 条死信`);
    header.querySelector('thead th').appendChild(all);
    results.append(header, el('div', { class: 'buttons' },
      el('button', { type: 'button', text: '重发所选', onclick: () => {
        const chosen = boxes.filter((b) => b.checked).map((b) => Number(b.value));
        if (!chosen.length) notice(replayOut, '请先勾选要重发的死信。');
        else replay(chosen);
      } })));
  }

  async function replay(list) {
    clear(replayOut);
    try {
      // 409: some rows were delivered already and were left alone; the others are queued
      const { status: code, data } = await api('POST', '/api/replay',
        { json: { ids: list }, accept: [409] });
      const parts = [`已重新排队 ${data.queued.length} 条`];
      if (data.skipped.length) parts.push(`${data.skipped.length} 条仍在发送中，未重复排队`);
      if (data.refused.length) parts.push(`${data.refused.length} 条平台已接收（编号 ${data.refused.join('、')}），未重发`);
      notice(replayOut, `${parts.join('；')}。`);
      if (code === 409) replayOut.firstChild.classList.add('warn');
      load();
    } catch (err) {
      errorBox(replayOut, err);
    }
  }

  root.append(el('h1', { text: title }),
    el('p', { class: 'lead', text: '平台拒收或多次发送失败的消息。排查原因（如对码错误、平台故障）后可重发；' +
      '重发使用原报文 ID，平台不会重复记账。' }),
    destinations, form, status, results,
    el('section', { class: 'panel', 'aria-labelledby': 'replay-title' },
      el('h2', { id: 'replay-title', text: '重发' }), byId, replayOut));
  start();
}
