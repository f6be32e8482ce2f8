// TLS material for tests: a self-signed certificate for localhost and
// 127.0.0.1, made with the openssl command-line tool in a directory the test
// owns (nothing is fetched, nothing is shared between tests).
//
//   const { cert, key } = makeCert(dir);            // dir/cert.pem, dir/key.pem
//   const other = makeCert(dir, 'other');           // dir/other-cert.pem, ...
//   const srv = await startServer({ args: tlsArgs(port, cert, key) });
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export function makeCert(dir, name = '') {
  const pre = name ? `${name}-` : '';
  const cert = path.join(dir, `${pre}cert.pem`);
  const key = path.join(dir, `${pre}key.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=localhost${name ? '-' + name : ''}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert, key };
}

// SHA-256 of a PEM certificate's DER, as Node's peer certificate reports it.
export function fingerprint(certFile) {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

export function tlsArgs(port, cert, key) {
  return ['--tls-port', String(port), '--tls-cert', cert, '--tls-key', key];
}

export const sha256 = (b) => createHash('sha256').update(b).digest('hex');
