// MQTT 3.1.1 topic filters (§4.7): `+` one level, `#` the rest, and topics
// starting with `$` never matched by a leading wildcard. Used to check a
// service account's allow and deny lists.

/** Why a filter is not a valid MQTT filter, or null. */
export function filterProblem(filter: string): string | null {
  if (filter.length === 0 || filter.length > 1024) return 'must be 1 to 1024 characters';
  if (/[\u0000\uFFFD]/.test(filter)) return 'must not contain U+0000 or invalid UTF-8';
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole last level';
    if (level.includes('+') && level !== '+') return '"+" must be a whole level';
  }
  return null;
}

/** Does `topic` (no wildcards) match `filter`? */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Is every topic `inner` can match also matched by `outer`? */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const n = inner.split('/');
  if (inner.startsWith('$') && (o[0] === '+' || o[0] === '#')) return false;
  for (let i = 0; i < o.length; i++) {
    if (o[i] === '#') return true;
    if (i >= n.length) return false;
    if (n[i] === '#') return false;
    if (o[i] === '+') continue;
    if (n[i] === '+' || o[i] !== n[i]) return false;
  }
  return o.length === n.length;
}

/** Is there a topic both filters match? */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  // A leading wildcard never matches a `$` topic, so it cannot meet a filter that names one.
  if ((isWildcard(x[0]!) && y[0]!.startsWith('$')) || (isWildcard(y[0]!) && x[0]!.startsWith('$'))) return false;
  for (let i = 0; ; i++) {
    if (x[i] === '#' || y[i] === '#') return true;
    if (i >= x.length || i >= y.length) return x.length === y.length;
    if (x[i] !== '+' && y[i] !== '+' && x[i] !== y[i]) return false;
  }
}

const isWildcard = (level: string) => level === '+' || level === '#';
