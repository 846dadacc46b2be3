// 待对码: items the crosswalk does not know, with ranked suggestions from the national
// catalog; accepting one maps the item and sends the dispenses held for it.

import { api } from '../api.js';
import { clear, el, errorBox, field, notice, percent, table, when } from '../dom.js';
import { hospitalField } from '../session.js';

export const title = '待对码';

export function render(root) {
  const hospital = hospitalField('医疗机构编码（留空为全部）');
  const status = el('div', { class: 'status-area' });
  const list = el('div', { class: 'queue', 'aria-live': 'polite' });
  const form = el('form', { class: 'filters', 'aria-label': '待对码筛选' },
    hospital.wrap, el('button', { type: 'submit', text: '刷新' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });

  async function load() {
    clear(status);
    clear(list).appendChild(el('p', { class: 'muted', text: '加载中…' }));
    try {
      const data = await api('GET', '/api/mappings/unmapped',
        { query: { hospital: hospital.input.value.trim(), limit: 5 } });
      showQueue(data);
    } catch (err) {
      clear(list);
      errorBox(status, err);
    }
  }

  function showQueue(data) {
    clear(list);
    const versions = (data.catalog && data.catalog.versions) || [];
    list.appendChild(el('p', { class: 'muted' },
      `共 ${data.total} 个待对码项目；建议依据国家目录 `,
      versions.length ? versions.join('、') : '（未导入）'));
    if (data.catalog && data.catalog.message) {
      list.appendChild(el('div', { class: 'notice warn', role: 'note',
        text: '尚未导入国家医保目录：项目只列出，不给出匹配建议。请管理员先导入目录。' }));
    }
    if (!data.items.length) {
      list.appendChild(el('p', { class: 'empty', text: '没有待对码的项目。' }));
      return;
    }
    for (const item of data.items) list.appendChild(card(item));
  }

  function card(item) {
    const out = el('div', { class: 'card-status' });
    const head = el('div', { class: 'card-head' },
      el('h2', {}, item.item_name || item.item_code, ' ',
        el('span', { class: 'code', text: item.item_code })),
      el('dl', { class: 'facts' },
        fact('医疗机构', item.hospital_id), fact('规格', item.specification),
        fact('生产企业', item.manufacturer), fact('院内单位', item.unit),
        fact('出现次数', item.occurrences), fact('首次出现', when(item.first_seen)),
        fact('最近出现', when(item.last_seen))));
    const rows = item.suggestions.map((s) => suggestionRow(item, s, out));
    const suggestions = rows.length
      ? table(['序号', '国家医保编码', '匹配度', '匹配依据', '建议换算', '换算系数', '操作'], rows,
        `${item.item_code} 的匹配建议`)
      : el('p', { class: 'muted', text: '目录中没有相近的编码，请手工输入国家医保编码。' });
    return el('article', { class: 'card', 'data-item': item.item_code,
      'aria-label': `待对码项目 ${item.item_code}` },
    head, suggestions, manual(item, out), out);
  }

  function suggestionRow(item, s, out) {
    const proposed = s.proposed;
    const factor = field(`第 ${s.rank} 条建议的换算系数`,
      { type: 'text', inputmode: 'decimal', size: 6,
        value: proposed ? proposed.factor : '', placeholder: '如 14' });
    factor.wrap.classList.add('inline', 'sr-label');
    const accept = el('button', { type: 'button', text: '采纳',
      'aria-label': `采纳第 ${s.rank} 条建议 ${s.national_code}` });
    accept.addEventListener('click', () => {
      const body = { rank: s.rank };
      if (factor.input.value.trim()) body.factor = factor.input.value.trim();
      submit(item, out, accept, acceptPath(item), body);
    });
    return el('tr', { 'data-rank': s.rank },
      el('td', { text: s.rank }),
      el('td', { class: 'code', text: s.national_code }),
      el('td', { text: percent(s.score) }),
      el('td', {}, el('ul', { class: 'reasons' }, s.reasons.map((r) => el('li', { text: r })))),
      el('td', { text: proposed
        ? `1 ${proposed.hospital_unit || '院内单位'} = ${proposed.factor} ${proposed.national_unit || ''}`
        : '无法推断' }),
      el('td', {}, factor.wrap),
      el('td', {}, accept));
  }

  // a code outside the suggestions is a new crosswalk entry (accept takes suggested codes only)
  function manual(item, out) {
    const code = field('国家医保编码', { type: 'text', size: 26, spellcheck: 'false',
      placeholder: '如 XL02BGA045A001010104641', required: true });
    const factor = field(`换算系数（每${item.unit || '院内单位'}折合国家最小计价单位数）`,
      { type: 'text', inputmode: 'decimal', size: 6, placeholder: '如 14', required: true });
    const unit = field('国家最小计价单位', { type: 'text', size: 4, placeholder: '如 片' });
    const form = el('form', { class: 'filters manual',
      'aria-label': `为 ${item.item_code} 手工对码` },
    code.wrap, factor.wrap, unit.wrap, el('button', { type: 'submit', text: '按编码对码' }));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = { hospital_id: item.hospital_id, item_code: item.item_code,
        national_code: code.input.value.trim(), item_name: item.item_name,
        hospital_unit: item.unit, national_unit: unit.input.value.trim(),
        factor: factor.input.value.trim() };
      submit(item, out, form.querySelector('button'), '/api/mappings/entries', body);
    });
    return el('details', { class: 'manual-box' },
      el('summary', { text: '手工输入国家医保编码' }), form);
  }

  async function submit(item, out, button, path, body) {
    button.disabled = true;
    try {
      const res = await api('POST', path, { json: body });
      const entry = res.entry || {};
      notice(out, `已对码：${item.item_code} → ${entry.national_code}（1 ${entry.hospital_unit}` +
        ` = ${entry.factor} ${entry.national_unit}），已放行暂存消息 ${res.released} 条。`);
      setTimeout(load, 1500);
    } catch (err) {
      errorBox(out, err);
      button.disabled = false;
    }
  }

  root.append(el('h1', { text: title }),
    el('p', { class: 'lead', text: '院内编码在对码表中找不到的药品，其发药、入库等消息已被暂存。' +
      '采纳一条建议（或手工输入编码）后，暂存的消息按原顺序上报平台。' }),
    form, status, list, catalogPanel(), importPanel());
  load();
}

function acceptPath(item) {
  return `/api/mappings/unmapped/${encodeURIComponent(item.hospital_id)}/` +
    `${encodeURIComponent(item.item_code)}/accept`;
}

function fact(label, value) {
  return [el('dt', { text: label }),
    el('dd', { text: value === '' || value === null || value === undefined ? '—' : value })];
}

// the stored national catalog versions, and a search over their entries
function catalogPanel() {
  const body = el('div');
  const panel = el('section', { class: 'panel', 'aria-labelledby': 'catalog-title' },
    el('h2', { id: 'catalog-title', text: '国家医保目录' }), body);
  api('GET', '/api/mappings/catalogs').then((data) => {
    const rows = [];
    for (const [kind, versions] of Object.entries(data)) {
      for (const v of versions) {
        rows.push(el('tr', {}, el('td', { text: kind === 'drug' ? '药品' : (kind === 'consumable' ? '医用耗材' : kind) }),
          el('td', { text: v.version }), el('td', { text: v.entries }),
          el('td', { text: when(v.imported_at) }), el('td', { text: v.source })));
      }
    }
    body.append(rows.length
      ? table(['类别', '版本', '条目数', '导入时间', '来源文件'], rows)
      : el('p', { class: 'muted', text: '尚未导入目录。' }));
  }).catch((err) => errorBox(body, err));
  panel.append(catalogSearch());
  return panel;
}

// search the latest catalogs by code, 本位码, 批准文号, name or maker
function catalogSearch() {
  const q = field('检索目录（国家编码、本位码、批准文号、名称、厂家，可多个词）',
    { type: 'search', size: 40, required: true, name: 'catalog-q' });
  const out = el('div', { 'aria-live': 'polite', class: 'catalog-hits' });
  const form = el('form', { class: 'filters', 'aria-label': '检索国家医保目录' },
    q.wrap, el('button', { type: 'submit', text: '检索' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(out);
    try {
      const data = await api('GET', '/api/mappings/catalogs/search',
        { query: { q: q.input.value.trim(), limit: 50 } });
      const rows = data.hits.map((h) => el('tr', {},
        el('td', { text: h.code }), el('td', { text: h.name }),
        el('td', { text: h.specification }), el('td', { text: h.packaging }),
        el('td', { text: h.manufacturer }), el('td', { text: h.approval_no }),
        el('td', { text: h.standard_code }), el('td', { text: h.reason })));
      out.append(rows.length
        ? table(['国家医保编码', '名称', '规格', '包装', '生产企业', '批准文号', '本位码', '匹配依据'],
          rows, `检索“${data.query}”：${rows.length} 条（目录版本 ${data.hits[0].version}）`)
        : el('p', { class: 'muted', text: `目录中没有与“${data.query}”相符的编码。` }));
    } catch (err) {
      errorBox(out, err);
    }
  });
  return el('div', {}, form, out);
}

function importPanel() {
  const out = el('div');
  const file = field('对码文件（CSV 或 Excel）', { type: 'file', accept: '.csv,.xlsx', required: true });
  const hospital = hospitalField('医疗机构编码（文件中无此列时填写）');
  const note = field('备注', { type: 'text', size: 30, placeholder: '如 2026年12月药库主数据' });
  const form = el('form', { class: 'filters', 'aria-label': '批量导入对码' },
    file.wrap, hospital.wrap, note.wrap, el('button', { type: 'submit', text: '导入' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const chosen = file.input.files[0];
    if (!chosen) return;
    const data = new FormData();
    data.append('file', chosen, chosen.name);
    if (hospital.input.value.trim()) data.append('hospital', hospital.input.value.trim());
    if (note.input.value.trim()) data.append('note', note.input.value.trim());
    try {
      const res = await api('POST', '/api/mappings/import', { form: data });
      notice(out, `已导入 ${res.file}：共 ${res.rows} 行，新增 ${res.created}，修改 ${res.updated}，` +
        `未变 ${res.unchanged}；放行暂存消息 ${res.released} 条。`);
    } catch (err) {
      errorBox(out, err);
    }
  });
  return el('section', { class: 'panel', 'aria-labelledby': 'import-title' },
    el('h2', { id: 'import-title', text: '批量导入对码' }),
    el('p', { class: 'muted', text: '全部行通过校验才导入，任何一行有误则不做修改并列出问题。' }),
    form, out);
}
