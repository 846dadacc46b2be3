// 预警与理由: how prescribers answered the 集采 warnings — accepted or overridden, and why.

import { api, download } from '../api.js';
import { el, errorBox, percent, table } from '../dom.js';

export const title = '预警与理由';

export function render(root) {
  const status = el('div', { class: 'status-area' });
  const body = el('div', { 'aria-live': 'polite' });
  root.append(el('h1', { text: title }),
    el('p', { class: 'lead', text: '开具非中选药品时，处方系统显示集采预警；医生可改用中选产品（接受），' +
      '也可填写理由后继续（忽略）。下表按科室和医生汇总，用于处方点评和约谈。' }),
    status, body);
  api('GET', '/ledger/overrides').then((rep) => {
    const rows = rep.by_prescriber.map((r) => el('tr', {},
      el('td', { text: r.department || '—' }), el('td', { text: r.doctor || '—' }),
      el('td', { text: r.shown }), el('td', { text: r.accepted }),
      el('td', { text: r.overridden }), el('td', { text: r.unanswered }),
      el('td', { text: percent(r.override_rate) }),
      el('td', {}, el('ul', { class: 'reasons' }, Object.entries(r.reasons).map(
        ([reason, n]) => el('li', { text: `${reason} × ${n}` }))))));
    const rules = Object.entries(rep.by_rule).map(([rule, c]) => el('tr', {},
      el('td', { class: 'code', text: rule }), el('td', { text: c.shown || 0 }),
      el('td', { text: c.accepted || 0 }), el('td', { text: c.overridden || 0 }),
      el('td', { text: c.unanswered || 0 })));
    body.append(...[
      rows.length ? table(['科室', '医生', '预警次数', '接受', '忽略', '未答复', '忽略率', '忽略理由'], rows,
        '按科室和医生') : el('p', { class: 'empty', text: '还没有预警记录。' }),
      rules.length ? table(['规则', '预警次数', '接受', '忽略', '未答复'], rules, '按规则') : null,
      el('p', { class: 'muted', text: '此处为汇总数；逐条预警的明细查询接口尚未提供。' }),
      el('button', { type: 'button', class: 'secondary', text: '导出 CSV',
        onclick: () => download('/ledger/overrides', { format: 'csv' }, '预警与理由.csv')
          .catch((err) => errorBox(status, err)) })].filter(Boolean));
  }).catch((err) => errorBox(status, err));
}
