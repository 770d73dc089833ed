// A real OpenID Connect provider for Redline's sign-in tests (npm oidc-provider,
// pinned in package-lock.json). Started and stopped by tests/oidc/fixtures.py.
//
// Any login name signs in through the development login and consent screens.
// The account's claims come from its name:
//   "amira@hmrc.gov.uk"            -> that e-mail, verified
//   "unverified.ben@dwp.gov.uk"    -> ben@dwp.gov.uk, email_verified false
import Provider from "oidc-provider";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const issuer = env("OIDC_ISSUER");
const port = Number(env("OIDC_PORT"));

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env("OIDC_CLIENT_ID"),
      client_secret: env("OIDC_CLIENT_SECRET"),
      redirect_uris: env("OIDC_REDIRECT_URIS").split(","),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
    // A client that authenticates with a signed JWT instead of a secret, as GOV.UK One Login requires.
    {
      client_id: `${env("OIDC_CLIENT_ID")}-jwt`,
      redirect_uris: env("OIDC_REDIRECT_URIS").split(","),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "RS256",
      jwks: { keys: [JSON.parse(env("OIDC_CLIENT_PUBLIC_JWK"))] },
    },
  ],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  cookies: { keys: ["redline-test-provider-cookie-key"] },
  // The development login uses the login name as the subject ("sub").
  async findAccount(ctx, id) {
    const unverified = id.startsWith("unverified.");
    const email = unverified ? id.slice("unverified.".length) : id;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email, email_verified: !unverified, name: `Test ${email.split("@")[0]}` };
      },
    };
  },
});
provider.proxy = true;

const server = provider.listen(port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${port} as ${issuer}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
