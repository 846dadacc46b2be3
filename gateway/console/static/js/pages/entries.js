// 对码维护: search the crosswalk, edit one entry, read its history, export it.

import { api, download } from '../api.js';
import { clear, el, errorBox, field, notice, table, when } from '../dom.js';
import { hospitalField } from '../session.js';

export const title = '对码维护';

const PAGE = 50;
const FIELD_NAMES = { national_code: '国家医保编码', item_name: '院内名称', hospital_unit: '院内单位',
  national_unit: '国家单位', factor: '换算系数', valid_from: '生效日期', valid_to: '失效日期' };
const ACTIONS = { create: '新增', update: '修改', delete: '删除' };

export function render(root) {
  const hospital = hospitalField('医疗机构编码');
  const q = field('关键字（院内编码、名称或国家编码）', { type: 'search', size: 28,
    placeholder: '如 比卡鲁胺' });
  const status = el('div', { class: 'status-area' });
  const results = el('div', { 'aria-live': 'polite' });
  const editor = el('div');
  const history = el('div');
  let offset = 0;

  const form = el('form', { class: 'filters', 'aria-label': '对码查询' },
    hospital.wrap, q.wrap, el('button', { type: 'submit', text: '查询' }),
    el('button', { type: 'button', class: 'secondary', text: '导出 CSV',
      onclick: () => exportFile('csv') }),
    el('button', { type: 'button', class: 'secondary', text: '导出 Excel',
      onclick: () => exportFile('xlsx') }));
  form.addEventListener('submit', (e) => { e.preventDefault(); offset = 0; load(); });

  async function exportFile(kind) {
    const h = hospital.input.value.trim();
    try {
      await download(`/api/mappings/export.${kind}`, { hospital: h },
        `对码表${h ? `-${h}` : ''}.${kind}`);
      notice(status, `已导出 ${kind === 'csv' ? 'CSV' : 'Excel'} 文件。`);
    } catch (err) {
      errorBox(status, err);
    }
  }

  async function load() {
    clear(status);
    try {
      const data = await api('GET', '/api/mappings/entries', { query: {
        hospital: hospital.input.value.trim(), q: q.input.value.trim(), limit: PAGE, offset } });
      showEntries(data);
    } catch (err) {
      clear(results);
      errorBox(status, err);
    }
  }

  function showEntries(data) {
    clear(results);
    const rows = data.entries.map((e) => el('tr', { 'data-item': e.item_code },
      el('td', { text: e.hospital_id }), el('td', { class: 'code', text: e.item_code }),
      el('td', { text: e.item_name }), el('td', { class: 'code', text: e.national_code }),
      el('td', { text: `1 ${e.hospital_unit} = ${e.factor} ${e.national_unit}` }),
      el('td', { text: e.valid_from || '—' }), el('td', { text: e.valid_to || '长期' }),
      el('td', { class: 'actions' },
        el('button', { type: 'button', text: '编辑', 'aria-label': `编辑 ${e.item_code}`,
          onclick: () => edit(e) }),
        el('button', { type: 'button', class: 'secondary', text: '历史',
          'aria-label': `查看 ${e.item_code} 的修改历史`, onclick: () => showHistory(e) }))));
    results.append(el('p', { class: 'muted',
      text: `共 ${data.total} 条，显示第 ${data.total ? offset + 1 : 0}–${offset + data.entries.length} 条` }),
    rows.length ? table(['机构', '院内编码', '院内名称', '国家医保编码', '换算', '生效', '失效', '操作'], rows)
      : el('p', { class: 'empty', text: '没有符合条件的对码。' }),
    pager(data.total));
  }

  function pager(total) {
    const prev = el('button', { type: 'button', class: 'secondary', text: '上一页',
      disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); load(); } });
    const next = el('button', { type: 'button', class: 'secondary', text: '下一页',
      disabled: offset + PAGE >= total, onclick: () => { offset += PAGE; load(); } });
    return el('div', { class: 'pager' }, prev, next);
  }

  function edit(entry) {
    clear(history);
    const inputs = {};
    const fields = Object.keys(FIELD_NAMES).filter((k) => k !== 'valid_from').map((k) => {
      const f = field(FIELD_NAMES[k], { type: k === 'valid_to' ? 'date' : 'text',
        value: entry[k], size: k === 'national_code' ? 26 : 14,
        required: k === 'national_code' || k === 'factor' });
      inputs[k] = f.input;
      return f.wrap;
    });
    const note = field('修改说明（记入审计）', { type: 'text', size: 40, required: true,
      placeholder: '如 按药库主数据更正名称' });
    const out = el('div');
    const form = el('form', { class: 'edit-form', 'aria-label': `编辑对码 ${entry.item_code}` },
      fields, note.wrap,
      el('div', { class: 'buttons' }, el('button', { type: 'submit', text: '保存' }),
        el('button', { type: 'button', class: 'secondary', text: '取消',
          onclick: () => clear(editor) })), out);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = { note: note.input.value.trim() };
      for (const [k, input] of Object.entries(inputs)) body[k] = input.value.trim();
      try {
        const res = await api('PUT', entryPath(entry), {
          query: { valid_from: entry.valid_from }, json: body });
        notice(out, `已保存（审计记录 #${res.audit.map((a) => a.id).join('、#')}），` +
          `放行暂存消息 ${res.released} 条。`);
        load();
        showHistory(res.entry);
      } catch (err) {
        errorBox(out, err);
      }
    });
    clear(editor).appendChild(el('section', { class: 'panel', 'aria-labelledby': 'edit-title' },
      el('h2', { id: 'edit-title',
        text: `编辑 ${entry.hospital_id} / ${entry.item_code}（生效 ${entry.valid_from || '不限'}）` }),
      form));
    inputs.national_code.focus();
  }

  async function showHistory(entry) {
    const box = el('section', { class: 'panel', 'aria-labelledby': 'history-title' },
      el('h2', { id: 'history-title', text: `${entry.item_code} 的修改历史` }));
    clear(history).appendChild(box);
    try {
      const data = await api('GET', entryPath(entry));
      // newest first, as the API answers
      const rows = data.audit.map((a) => el('tr', { 'data-audit': a.id },
        el('td', { text: `#${a.id}` }), el('td', { class: 'nowrap', text: when(a.at) }), el('td', { text: a.user }),
        el('td', { text: ACTIONS[a.action] || a.action }),
        el('td', {}, el('ul', { class: 'changes' }, changes(a.before, a.after))),
        el('td', { text: a.note || '—' })));
      box.appendChild(rows.length
        ? table(['编号', '时间', '操作人', '动作', '变更', '说明'], rows)
        : el('p', { class: 'empty', text: '没有修改记录。' }));
    } catch (err) {
      errorBox(box, err);
    }
  }

  root.append(el('h1', { text: title }),
    el('p', { class: 'lead', text: '每次修改都记录操作人、时间、修改前后的内容和说明。' }),
    form, status, results, editor, history);
  load();
}

function entryPath(e) {
  return `/api/mappings/entries/${encodeURIComponent(e.hospital_id)}/${encodeURIComponent(e.item_code)}`;
}

function changes(before, after) {
  if (!before && after) return [el('li', { text: `新增：${after.national_code}，1 ${after.hospital_unit} = ${after.factor} ${after.national_unit}` })];
  if (before && !after) return [el('li', { text: `删除：${before.national_code}` })];
  const out = [];
  for (const k of Object.keys(FIELD_NAMES)) {
    if (before[k] !== after[k]) {
      out.push(el('li', {}, `${FIELD_NAMES[k]}：`, el('del', { text: before[k] || '（空）' }),
        ' → ', el('ins', { text: after[k] || '（空）' })));
    }
  }
  return out.length ? out : [el('li', { text: '无字段变化' })];
}
