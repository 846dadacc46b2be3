// Who is logged in (GET /api/whoami), shared by the pages.

import { field } from './dom.js';

export const session = { me: null };

// the hospital a page starts with: the user's own when it has exactly one
export function defaultHospital() {
  const me = session.me;
  if (!me) return '';
  if (me.hospitals.length === 1) return me.hospitals[0];
  const known = me.known_hospitals || [];
  return known.length === 1 ? known[0].code : '';
}

// a 定点医药机构编号 input with the configured hospitals as suggestions
export function hospitalField(labelText, required) {
  return field(labelText || '医疗机构编码', { type: 'text', list: 'hospital-list',
    value: defaultHospital(), required: !!required, placeholder: '如 H33010200015',
    spellcheck: 'false', maxlength: 12, size: 16 });
}
