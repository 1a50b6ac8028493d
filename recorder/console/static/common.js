// Shared by the console's pages: the page's configuration, calls to the API through the session, and
// small DOM helpers (text only: nothing from the server is ever parsed as HTML).
export const config = JSON.parse(document.getElementById('console-config').textContent);
export const can = config.can || {};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// Calls /v1/... of the control API as the signed-in user (cookie + CSRF token on unsafe methods).
export async function api(method, path, body, extraHeaders = {}) {
  const headers = {'Accept': 'application/json', ...extraHeaders};
  if (!['GET', 'HEAD'].includes(method)) headers['X-CSRF-Token'] = config.csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return request('/console/api' + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
}

export async function request(url, options = {}) {
  const response = await fetch(url, {credentials: 'same-origin', ...options});
  if (response.status === 401) {
    window.location.assign('/console/sign-in');
    throw new ApiError(401, {detail: 'signed out'});
  }
  const type = response.headers.get('Content-Type') || '';
  const data = type.includes('json') ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof data === 'object' ? data : {detail: data});
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function say(text, kind = '') {
  const status = document.getElementById('status');
  if (!status) return;
  status.textContent = text;
  status.className = kind;
}

export function utc(iso) {
  if (!iso) return '—';
  return iso.replace('T', ' ').replace(/\.\d+/, '').replace('Z', '').replace('+00:00', '');
}

export function seconds(value) {
  if (value === null || value === undefined) return '—';
  const s = Math.max(0, Math.round(value));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? `${h}:${String(m).padStart(2, '0')}` : `${m}`) + `:${String(r).padStart(2, '0')}`;
}

export function bytes(n) {
  if (!n) return '0 B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  const i = Math.min(units.length - 1, Math.floor(Math.log10(n) / 3));
  return `${(n / 10 ** (3 * i)).toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function statusBadge(status) {
  return el('span', {class: `badge status-${status}`, text: status === 'recording' ? '● live' : status});
}

// Shows `text` (an error) in the page's status line, for every failed call.
export function failed(error) {
  say(error instanceof ApiError ? `Error ${error.status}: ${error.message}` : `Error: ${error.message}`, 'error');
}
