// 集采进度 (一院一档): each contract's completion against the time elapsed, the lagging
// ones first; one contract in detail; the hospital's filing, order and payment deadlines.

import { api } from '../api.js';
import { clear, el, errorBox, percent, table, when } from '../dom.js';
import { hospitalField } from '../session.js';

export const title = '集采进度';

const DEADLINE_KIND = { filing: '备案', order: '订单响应', payment: '回款' };
const DEADLINE_STATE = { open: '进行中', met: '按期完成', late: '逾期完成', overdue: '已逾期',
  answered: '已响应', waiting: '等待响应', reminded: '已催办', escalate: '需上报' };
const DEMAND = { ok: '正常', no_history: '无上年数据', below_threshold: '低于上年采购量的要求比例，需说明',
  not_reported: '未报量' };

// worst first: lagging, then the smallest share of the time progress reached
function order(a, b) {
  if (a.lagging !== b.lagging) return a.lagging ? -1 : 1;
  return ratio(a) - ratio(b);
}

function ratio(c) {
  const t = Number(c.time_progress);
  return t > 0 ? Number(c.completion || 0) / t : Infinity;
}

function bar(label, value) {
  const n = Math.max(0, Math.min(1, Number(value) || 0));
  return el('meter', { min: 0, max: 1, value: n, 'aria-label': label, title: percent(value) });
}

export function render(root) {
  const hospital = hospitalField('医疗机构编码', true);
  const status = el('div', { class: 'status-area' });
  const summary = el('div');
  const contracts = el('div', { 'aria-live': 'polite' });
  const detail = el('div');
  const deadlines = el('div');
  let report = null;

  const form = el('form', { class: 'filters', 'aria-label': '选择医疗机构' },
    hospital.wrap, el('button', { type: 'submit', text: '查看' }));
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });

  async function load() {
    const h = hospital.input.value.trim();
    [status, summary, contracts, detail, deadlines].forEach(clear);
    if (!h) return;
    try {
      const [list, rep, due] = await Promise.all([
        api('GET', '/ledger/contracts', { query: { hospital_id: h } }),
        api('GET', `/ledger/report/${encodeURIComponent(h)}`),
        api('GET', `/ledger/deadlines/${encodeURIComponent(h)}`)]);
      report = rep;
      showSummary(rep);
      showContracts(list.slice().sort(order));
      showDeadlines(due);
    } catch (err) {
      errorBox(status, err);
    }
  }

  function showSummary(rep) {
    const s = rep.summary;
    summary.appendChild(el('dl', { class: 'tiles', 'aria-label': '汇总' },
      tile('中选产品', s.contracted_products), tile('低于时间进度', s.below_time_progress, s.below_time_progress > 0),
      tile('有完不成风险', s.at_risk, s.at_risk > 0), tile('零采购产品', s.zero_purchase_products, s.zero_purchase_products > 0),
      tile('超量采购', s.over_purchased), tile('采购了非中选', s.nonwinning_bought, s.nonwinning_bought > 0),
      tile('一年无平台采购', s.no_platform_purchase_one_year, s.no_platform_purchase_one_year > 0)),
    el('p', { class: 'muted', text: `统计截至 ${when(rep.as_of)}` }));
  }

  function showContracts(list) {
    if (!list.length) {
      contracts.appendChild(el('p', { class: 'empty', text: '该机构没有集采协议。' }));
      return;
    }
    const rows = list.map((c) => el('tr', { class: c.lagging ? 'lagging' : '', 'data-contract': c.contract_id },
      el('th', { scope: 'row', text: c.generic_name }),
      el('td', {}, bar(`${c.generic_name} 完成进度`, c.completion), ' ', percent(c.completion)),
      el('td', {}, bar(`${c.generic_name} 时间进度`, c.time_progress), ' ', percent(c.time_progress)),
      el('td', {}, el('span', { class: c.lagging ? 'badge bad' : 'badge good',
        text: c.lagging ? '滞后' : '正常' })),
      el('td', {}, el('button', { type: 'button', text: '详情', 'aria-label': `${c.generic_name} 详情`,
        onclick: () => showDetail(c.contract_id) }))));
    contracts.appendChild(table(['通用名', '完成进度', '时间进度', '状态', ''], rows,
      '协议完成情况（滞后的排在前面）'));
  }

  function showDetail(id) {
    clear(detail);
    const c = report && report.contracts.find((x) => x.contract_id === id);
    if (!c) {
      detail.appendChild(el('p', { class: 'muted', text: '该协议不在本期报表中（协议周期尚未开始或已结束）。' }));
      return;
    }
    const products = c.winning_products.map((p) => el('tr', {},
      el('td', { class: 'code', text: p.national_code }), el('td', { text: p.name }),
      el('td', { text: p.supplier }), el('td', { text: p.winning_price }),
      el('td', { text: p.stock === null ? '—' : p.stock }),
      el('td', { text: p.last_platform_purchase || '—' })));
    detail.appendChild(el('section', { class: 'panel', 'aria-labelledby': 'detail-title' },
      el('h2', { id: 'detail-title', text: `${c.generic_name}（${c.project} ${c.batch}）` }),
      el('dl', { class: 'facts wide' },
        fact('协议周期', `${c.cycle_start} 至 ${c.cycle_end}`),
        fact('约定采购量', c.agreed_volume), fact('已采购量', c.received_qty),
        fact('已采购金额（元）', c.received_amount), fact('完成进度', percent(c.completion)),
        fact('时间进度', percent(c.time_progress)), fact('预计完成', percent(c.projected_completion)),
        fact('完不成风险', c.at_risk ? '是' : '否'), fact('中选产品数量占比', percent(c.qty_share)),
        fact('中选产品金额占比', percent(c.amount_share)),
        fact('非中选采购量', `${c.nonwinning_qty}${c.nonwinning_codes.length ? `（${c.nonwinning_codes.join('、')}）` : ''}`),
        fact('使用占比 / 约定比例', `${percent(c.use_share)} / ${percent(c.agreed_ratio)}`),
        fact('医保预付下限（元）', c.prepayment_min),
        fact('报量 / 上年采购量', `${c.reported_demand || '—'} / ${c.last_year_purchases || '—'}（${DEMAND[c.demand_flag] || c.demand_flag}）`)),
      table(['国家医保编码', '中选产品', '供应企业', '中选价（元）', '库存', '最近平台采购'], products, '中选产品')));
    detail.querySelector('h2').setAttribute('tabindex', '-1');
    detail.querySelector('h2').focus();
  }

  function showDeadlines(list) {
    const rows = list.map((d) => el('tr', { class: d.state === 'overdue' || d.state === 'escalate' ? 'lagging' : '' },
      el('td', { text: DEADLINE_KIND[d.kind] || d.kind }), el('td', { text: d.ref }),
      el('td', { text: when(d.opened_at) }), el('td', { text: when(d.due_at) }),
      el('td', { text: when(d.closed_at) }),
      el('td', {}, el('span', { class: `badge ${d.state === 'overdue' || d.state === 'escalate' || d.state === 'late' ? 'bad' : 'plain'}`,
        text: DEADLINE_STATE[d.state] || d.state }))));
    deadlines.appendChild(el('section', { class: 'panel', 'aria-labelledby': 'due-title' },
      el('h2', { id: 'due-title', text: '时限' }),
      rows.length ? table(['类型', '单据', '开始', '截止', '完成', '状态'], rows)
        : el('p', { class: 'empty', text: '没有备案、订单或回款时限。' })));
  }

  root.append(el('h1', { text: `${title}（一院一档）` }),
    el('p', { class: 'lead', text: '完成进度低于时间进度的协议标为“滞后”并排在前面。点击“详情”查看中选产品、非中选采购和使用占比。' }),
    form, status, summary, contracts, detail, deadlines);
  load();
}

function tile(label, value, bad) {
  return el('div', { class: bad ? 'tile bad' : 'tile' }, el('dt', { text: label }),
    el('dd', { text: value }));
}

function fact(label, value) {
  return [el('dt', { text: label }), el('dd', { text: value === null || value === undefined ? '—' : value })];
}
