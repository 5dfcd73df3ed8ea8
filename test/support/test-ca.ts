// A throwaway certificate authority made at test time with the openssl CLI,
// so no key material is committed and nothing expires in the repository.
// EC P-256 keys: generating them takes milliseconds, RSA would take seconds.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestCert {
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

export interface TestCa {
  dir: string;
  ca: TestCert;
  /** For localhost and 127.0.0.1 (subjectAltName), serverAuth. */
  server: TestCert;
  /** CN=test-device, clientAuth: for listeners that require client certificates. */
  client: TestCert;
  cleanup(): void;
}

export async function makeTestCa(): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'safehaven-ca-'));
  try {
    const ca = await issue(dir, 'ca', '/CN=SafeHaven test CA', null, [
      'basicConstraints=critical,CA:TRUE',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const [server, client] = await Promise.all([
      issue(dir, 'server', '/CN=localhost', ca, [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
      ]),
      issue(dir, 'client', '/CN=test-device', ca, [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        'extendedKeyUsage=clientAuth',
      ]),
    ]);
    return { dir, ca, server, client, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** issuer null: self-signed. */
async function issue(dir: string, name: string, subject: string, issuer: TestCert | null, extensions: string[]): Promise<TestCert> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, `${extensions.join('\n')}\n`);
  await openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key);
  await openssl('req', '-new', '-key', key, '-subj', subject, '-out', csr);
  await openssl(
    'x509', '-req', '-in', csr, '-sha256', '-days', '1', '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-extfile', ext, '-out', cert,
    ...(issuer ? ['-CA', issuer.cert, '-CAkey', issuer.key] : ['-signkey', key]),
  );
  return { cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

async function openssl(...args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const { code, stderr } = err as NodeJS.ErrnoException & { stderr?: string };
    if (code === 'ENOENT') throw new Error('the openssl CLI is not installed (Debian: apt-get install openssl)', { cause: err });
    throw new Error(`openssl ${args[0]} failed: ${stderr?.trim() ?? (err as Error).message}`, { cause: err });
  }
}
