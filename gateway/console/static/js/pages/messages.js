// 消息查询: there is no message-browsing API yet; say so and point at what exists.

import { el } from '../dom.js';

export const title = '消息查询';

export function render(root) {
  root.append(el('h1', { text: title }),
    el('div', { class: 'notice warn', role: 'note' },
      el('p', { text: '按单据号、患者或时间查询收到的消息，网关暂未提供相应接口，本页尚不可用。' }),
      el('p', {}, '上报失败的消息请在 ', el('a', { href: '#/deadletters', text: '死信与重发' }),
        ' 中查看和重发；因未对码而暂存的消息请在 ', el('a', { href: '#/unmapped', text: '待对码' }),
        ' 中处理。')));
}
