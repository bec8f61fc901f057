// A real OpenID Connect provider process for the query service's tests: oauth2-mock-server
// (scripts/ensure-oidc-provider.sh) serving discovery, JWKS and a token endpoint on
// 127.0.0.1. Tokens come from POST /token (grant_type=client_credentials); these extra form
// fields shape the next token, so tests can ask for the tokens an attacker would present:
//   sub, roles (comma-separated), tenant, aud, iss, exp_in and nbf_in (seconds from now),
//   kid (header kid override).
// Usage: node oidc_provider.mjs PORT   (prints "READY <issuer url>" when serving)
import { pathToFileURL } from 'node:url';

const entry = process.env.CAIRN_OIDC_PROVIDER;
if (!entry) {
  console.error('CAIRN_OIDC_PROVIDER is not set (scripts/ensure-oidc-provider.sh prints it)');
  process.exit(2);
}
const { OAuth2Server } = await import(pathToFileURL(entry).href);
const port = Number(process.argv[2] || 0);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');

server.service.on('beforeTokenSigning', (token, req) => {
  const b = req.body || {};
  const now = Math.floor(Date.now() / 1000);
  if (b.sub) token.payload.sub = b.sub;
  if (b.roles !== undefined) token.payload.roles = b.roles === '' ? [] : b.roles.split(',');
  if (b.tenant) token.payload.tenant = b.tenant;
  if (b.aud) token.payload.aud = b.aud;
  if (b.iss) token.payload.iss = b.iss;
  if (b.exp_in !== undefined) token.payload.exp = now + Number(b.exp_in);
  if (b.nbf_in !== undefined) token.payload.nbf = now + Number(b.nbf_in);
  if (b.kid) token.header.kid = b.kid;
});

await server.start(port, '127.0.0.1');
// Name the issuer by the address it is bound to (the package says localhost).
server.issuer.url = `http://127.0.0.1:${server.address().port}`;
console.log(`READY ${server.issuer.url}`);
const stop = async () => { await server.stop(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
