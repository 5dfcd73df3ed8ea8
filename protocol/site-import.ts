// Importing sites in bulk (INTERFACES §5): a CSV file with a header row
// naming the site fields, or JSON (an array of sites, or {"items": [...]}).
// Pure functions: every row is checked against the Site schema and every
// problem is reported with its row and field, so that an operator fixes the
// whole file in one go instead of one error per try.
import { Site } from './schemas.ts';
import { describeIssues } from './json-payload.ts';

export const SITE_FIELDS = ['id', 'kind', 'name', 'address', 'phone', 'lat', 'lon', 'district', 'policeStation'] as const;
/**
 * The whole city is ~4,000 sites. An import is parsed and committed in one
 * go on the gateway's event loop (all or none), so these bound how long it
 * can hold up alerts: measured at 20,000 rows, see README.
 */
export const MAX_IMPORT_ROWS = 20_000;
export const MAX_IMPORT_BYTES = 4 * 1024 * 1024;
/** Problems reported at most: past this the file is clearly not what was meant. */
const MAX_PROBLEMS = 100;

export interface ImportProblem {
  /** 1-based: the CSV line of the record (its first line if a quoted field spans several), or the JSON array index + 1. */
  row: number;
  field?: string;
  message: string;
}

export type SiteImport = { ok: true; sites: Site[] } | { ok: false; problems: ImportProblem[] };

/**
 * RFC 4180 records: quoted fields may hold commas, quotes ("") and line
 * breaks; CRLF or LF. Fields are sliced, not built a character at a time:
 * 20,000 rows split in tens of milliseconds instead of hundreds.
 */
export function parseCsvRecords(text: string): Array<{ line: number; fields: string[] }> | { line: number; message: string } {
  const records: Array<{ line: number; fields: string[] }> = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let fields: string[] = [];
  let recordLine = 1;
  const n = text.length;
  for (;;) {
    let field: string;
    if (text[i] === '"') {
      // Quoted: up to the next lone quote; "" is a quote.
      let value = '';
      let from = i + 1;
      for (;;) {
        const q = text.indexOf('"', from);
        if (q === -1) return { line: recordLine, message: 'a quoted field is not closed' };
        value += text.slice(from, q);
        if (text[q + 1] === '"') {
          value += '"';
          from = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      line += countLineBreaks(value);
      field = value;
      if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') return { line: recordLine, message: 'text after a closing quote: quote the whole field' };
    } else {
      let j = i;
      while (j < n) {
        const c = text.charCodeAt(j);
        if (c === 44 || c === 10 || c === 13) break; // , \n \r
        j++;
      }
      field = text.slice(i, j);
      i = j;
    }
    fields.push(field);
    if (i < n && text[i] === ',') {
      i++;
      continue;
    }
    // End of record: a line break or the end of the text. A blank line is no record.
    if (!(fields.length === 1 && fields[0] === '')) records.push({ line: recordLine, fields });
    fields = [];
    if (i >= n) break;
    i += text[i] === '\r' && text[i + 1] === '\n' ? 2 : 1;
    line++;
    recordLine = line;
    if (i >= n) break;
  }
  return records;
}

/** CRLF, LF and a lone CR each count once. */
function countLineBreaks(value: string): number {
  let count = 0;
  for (let k = 0; k < value.length; k++) {
    const c = value.charCodeAt(k);
    if (c === 10 || (c === 13 && value.charCodeAt(k + 1) !== 10)) count++;
  }
  return count;
}

function checkRows(rows: unknown[], rowNumber: (i: number) => number): SiteImport {
  const problems: ImportProblem[] = [];
  const sites: Site[] = [];
  const seen = new Map<string, number>();
  rows.forEach((row, i) => {
    if (problems.length >= MAX_PROBLEMS) return;
    const parsed = Site.safeParse(row);
    if (!parsed.success) {
      const { field, message } = describeIssues(parsed.error);
      problems.push({ row: rowNumber(i), ...(field ? { field } : {}), message });
      return;
    }
    const first = seen.get(parsed.data.id);
    if (first !== undefined) problems.push({ row: rowNumber(i), field: 'id', message: `id ${parsed.data.id} is also on row ${first}` });
    seen.set(parsed.data.id, rowNumber(i));
    sites.push(parsed.data);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, sites };
}

/** Plain decimal degrees; Number() alone would also take 0x25, 1e2 or Infinity. */
const DECIMAL = /^-?\d{1,3}(\.\d+)?$/;

const tooMany = (rows: number): SiteImport => ({ ok: false, problems: [{ row: MAX_IMPORT_ROWS + 1, message: `${rows} rows: at most ${MAX_IMPORT_ROWS} per import` }] });

export function parseSitesCsv(text: string): SiteImport {
  const records = parseCsvRecords(text);
  if (!Array.isArray(records)) return { ok: false, problems: [{ row: records.line, message: records.message }] };
  const [header, ...body] = records;
  if (!header) return { ok: false, problems: [{ row: 1, message: `empty file: expected a header row ${SITE_FIELDS.join(',')}` }] };
  const names = header.fields.map((f) => f.trim());
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) return { ok: false, problems: [{ row: 1, field: twice, message: `header row: column ${twice} appears twice` }] };
  const missing = SITE_FIELDS.filter((f) => !names.includes(f));
  const unknown = names.filter((n) => !(SITE_FIELDS as readonly string[]).includes(n));
  if (missing.length > 0 || unknown.length > 0) {
    const parts = [missing.length ? `missing ${missing.join(', ')}` : '', unknown.length ? `unknown ${unknown.join(', ')}` : ''].filter(Boolean);
    return { ok: false, problems: [{ row: 1, message: `header row: ${parts.join('; ')} (expected ${SITE_FIELDS.join(',')})` }] };
  }
  if (body.length > MAX_IMPORT_ROWS) return tooMany(body.length);
  const problems: ImportProblem[] = [];
  const rows = body.map(({ line, fields }) => {
    if (fields.length !== names.length) problems.push({ row: line, message: `${fields.length} fields, the header has ${names.length}` });
    const row: Record<string, unknown> = {};
    names.forEach((name, i) => {
      const value = fields[i] ?? '';
      // Numbers stay strings when they are not numbers, so the schema names the field.
      row[name] = (name === 'lat' || name === 'lon') && DECIMAL.test(value.trim()) ? Number(value) : value;
    });
    return row;
  });
  if (problems.length > 0) return { ok: false, problems: problems.slice(0, MAX_PROBLEMS) };
  return checkRows(rows, (i) => body[i]!.line);
}

export function parseSitesJson(value: unknown): SiteImport {
  const rows = Array.isArray(value) ? value
    : typeof value === 'object' && value !== null && Array.isArray((value as { items?: unknown }).items) ? (value as { items: unknown[] }).items
    : null;
  if (!rows) return { ok: false, problems: [{ row: 0, message: 'expected an array of sites, or {"items": [...]}' }] };
  if (rows.length > MAX_IMPORT_ROWS) return tooMany(rows.length);
  return checkRows(rows, (i) => i + 1);
}
