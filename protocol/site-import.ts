// Importing sites in bulk (INTERFACES §5): a CSV file with a header row
// naming the site fields, or JSON (an array of sites, or {"items": [...]}).
// Pure functions: every row is checked against the Site schema and every
// problem is reported with its row and field, so that an operator fixes the
// whole file in one go instead of one error per try.
import { Site } from './schemas.ts';
import { describeIssues } from './json-payload.ts';

export const SITE_FIELDS = ['id', 'kind', 'name', 'address', 'phone', 'lat', 'lon', 'district', 'policeStation'] as const;
/** The whole city is ~4,000 sites; this bounds what one request can make us parse and hold. */
export const MAX_IMPORT_ROWS = 100_000;
export const MAX_IMPORT_BYTES = 16 * 1024 * 1024;
/** Problems reported at most: past this the file is clearly not what was meant. */
const MAX_PROBLEMS = 100;

export interface ImportProblem {
  /** 1-based: the CSV line of the record (its first line if a quoted field spans several), or the JSON array index + 1. */
  row: number;
  field?: string;
  message: string;
}

export type SiteImport = { ok: true; sites: Site[] } | { ok: false; problems: ImportProblem[] };

/** RFC 4180 records: quoted fields may hold commas, quotes ("") and line breaks; CRLF or LF. */
export function parseCsvRecords(text: string): Array<{ line: number; fields: string[] }> | { line: number; message: string } {
  const records: Array<{ line: number; fields: string[] }> = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  const endField = () => {
    fields.push(field);
    field = '';
  };
  const endRecord = () => {
    endField();
    // A blank line is no record (a trailing newline leaves one).
    if (!(fields.length === 1 && fields[0] === '')) records.push({ line: recordLine, fields });
    fields = [];
    recordLine = line;
  };
  for (let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        if (c === '\n') line++;
        field += c;
      }
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === ',') endField();
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      line++;
      endRecord();
    } else field += c;
  }
  if (quoted) return { line: recordLine, message: 'a quoted field is not closed' };
  endRecord();
  return records;
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

const tooMany = (rows: number): SiteImport => ({ ok: false, problems: [{ row: MAX_IMPORT_ROWS + 1, message: `${rows} rows: at most ${MAX_IMPORT_ROWS} per import` }] });

export function parseSitesCsv(text: string): SiteImport {
  const records = parseCsvRecords(text);
  if (!Array.isArray(records)) return { ok: false, problems: [{ row: records.line, message: records.message }] };
  const [header, ...body] = records;
  if (!header) return { ok: false, problems: [{ row: 1, message: `empty file: expected a header row ${SITE_FIELDS.join(',')}` }] };
  const names = header.fields.map((f) => f.trim());
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
      row[name] = (name === 'lat' || name === 'lon') && value.trim() !== '' && Number.isFinite(Number(value)) ? Number(value) : value;
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
