/**
 * Keystone token validation, as keystonemiddleware's auth_token does it:
 * the service authenticates itself (a project-scoped token of its own
 * service user), then asks `GET /v3/auth/tokens` with the caller's token as
 * `X-Subject-Token`. 200 names the user, the project and the roles (implied
 * roles included: admin ⊃ member ⊃ reader); 404 is an invalid, expired or
 * revoked token.
 *
 * Valid tokens are cached until the first of: the token's own expiry, or
 * `cacheSeconds` after it was checked (keystonemiddleware's token_cache_time,
 * default 300 s). A revocation is therefore honoured within `cacheSeconds`;
 * 0 asks Keystone on every request. The cache is bounded (`maxEntries`,
 * least recently used out first), so memory stays flat whatever the number
 * of tokens. Invalid tokens are not cached: a 401 costs a round trip to
 * Keystone, as it does with keystonemiddleware's default.
 *
 * Concurrent requests with the same uncached token share one validation.
 */
import { ApiError } from '../errors.ts';

export interface KeystoneAuthOptions {
  /** Keystone's v3 URL, e.g. http://127.0.0.1:5000/v3 */
  url: string;
  user: string;
  password: string;
  project: string;
  /** domain of the user and the project; default `default` */
  domain: string;
  cacheSeconds: number;
  maxEntries: number;
  /** a Keystone call that takes longer fails the request with 503 */
  timeoutMs: number;
}

/** Who a valid token speaks for. */
export interface TokenIdentity {
  userId: string;
  /** undefined for a token not scoped to a project */
  projectId: string | undefined;
  roles: readonly string[];
  expiresAt: number;
}

interface Entry {
  identity: TokenIdentity;
  until: number;
}

export class KeystoneAuth {
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<TokenIdentity | null>>();
  private service: { token: string; expiresAt: number } | undefined;
  private serviceRequest: Promise<string> | undefined;
  /** Keystone round trips made, for tests and metrics */
  validations = 0;

  constructor(private readonly opts: KeystoneAuthOptions) {}

  /** The identity behind a token, or null when Keystone does not know it (invalid, expired, revoked). */
  async identify(token: string, now = Date.now()): Promise<TokenIdentity | null> {
    const hit = this.cache.get(token);
    if (hit && hit.until > now) {
      // Refresh its place: the least recently used entry leaves first.
      this.cache.delete(token);
      this.cache.set(token, hit);
      return hit.identity;
    }
    if (hit) this.cache.delete(token);
    let p = this.pending.get(token);
    if (!p) {
      p = this.validate(token).finally(() => this.pending.delete(token));
      this.pending.set(token, p);
    }
    return p;
  }

  get cached(): number {
    return this.cache.size;
  }

  private async validate(token: string, retried = false): Promise<TokenIdentity | null> {
    const service = await this.serviceToken();
    this.validations++;
    const res = await this.call('GET', '/auth/tokens?nocatalog', undefined, { 'x-auth-token': service, 'x-subject-token': token });
    if (res.status === 401 && !retried) {
      // Our own token was revoked or expired early: get another, once.
      this.service = undefined;
      return this.validate(token, true);
    }
    if (res.status === 404 || res.status === 401) return null;
    if (res.status !== 200) throw unavailable(`Keystone answered ${res.status} to a token validation`);
    const body = (await res.json()) as { token: KeystoneToken };
    const identity = identityOf(body.token);
    if (this.opts.cacheSeconds > 0) {
      const until = Math.min(identity.expiresAt, Date.now() + this.opts.cacheSeconds * 1000);
      this.cache.set(token, { identity, until });
      while (this.cache.size > this.opts.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    }
    return identity;
  }

  private async serviceToken(): Promise<string> {
    // Renewed a minute before it expires, so a validation never carries a dying token.
    if (this.service && this.service.expiresAt - 60_000 > Date.now()) return this.service.token;
    this.serviceRequest ??= this.authenticate().finally(() => (this.serviceRequest = undefined));
    return this.serviceRequest;
  }

  private async authenticate(): Promise<string> {
    const { user, password, project, domain } = this.opts;
    const res = await this.call('POST', '/auth/tokens', {
      auth: {
        identity: { methods: ['password'], password: { user: { name: user, domain: { id: domain }, password } } },
        scope: { project: { name: project, domain: { id: domain } } },
      },
    });
    if (res.status !== 201) {
      throw unavailable(`volstate's service user ${user} could not authenticate to Keystone (${res.status}); check VOLSTATE_KEYSTONE_*`);
    }
    const token = res.headers.get('x-subject-token');
    const body = (await res.json()) as { token: KeystoneToken };
    if (!token) throw unavailable('Keystone gave no X-Subject-Token');
    this.service = { token, expiresAt: Date.parse(body.token.expires_at) };
    return token;
  }

  private async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    try {
      return await fetch(`${this.opts.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
    } catch (err) {
      throw unavailable(`Keystone at ${this.opts.url} did not answer (${(err as Error).message})`);
    }
  }
}

interface KeystoneToken {
  expires_at: string;
  user: { id: string };
  project?: { id: string };
  roles?: { name: string }[];
}

function identityOf(t: KeystoneToken): TokenIdentity {
  return {
    userId: t.user.id,
    projectId: t.project?.id,
    roles: (t.roles ?? []).map((r) => r.name),
    expiresAt: Date.parse(t.expires_at),
  };
}

function unavailable(reason: string): ApiError {
  return new ApiError('AuthUnavailable', { reason });
}
