/**
 * The one error handler: every error leaves as a Cinder-shaped fault body
 * `{"<faultName>": {"code": N, "message": "..."}}`. Registry errors carry
 * their own status and fields; framework errors (bad JSON, schema
 * mismatch, unknown route) are translated into registry errors; anything
 * else is a 500 whose message is masked and whose details go to the log.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isConnectionError } from '../services/outcomes.ts';
import { ApiError } from '../errors.ts';

function fromFramework(err: FastifyError): ApiError | undefined {
  if (err.validation) {
    const first = err.validation[0];
    const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const path = [first?.instancePath ?? '', missing ? `/${missing}` : ''].join('').replace(/^\//, '').replaceAll('/', '.');
    if (path === '')
      return new ApiError('MalformedBody', { reason: `the ${err.validationContext ?? 'body'} ${first?.message ?? 'is not valid'}` });
    return new ApiError('InvalidField', { field: path, value: '(see request)', reason: `It ${first?.message ?? 'is not valid'}.` });
  }
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ApiError('MalformedBody', { reason: err.message });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ApiError('UnsupportedMediaType', { type: 'of the request' });
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError('PayloadTooLarge', { limit: BODY_LIMIT });
    case 'FST_ERR_BAD_URL':
      return new ApiError('InvalidInput', { reason: 'the request path is not valid percent-encoded UTF-8.' });
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new ApiError('UriTooLong', { limit: MAX_PARAM_LENGTH });
  }
  if (err.statusCode === 400 && err instanceof SyntaxError) return new ApiError('MalformedBody', { reason: err.message });
  // Any other client error the framework raises keeps its status, in the fault shape.
  if (err.statusCode === 400) return new ApiError('InvalidInput', { reason: err.message });
  if (err.statusCode === 404) return new ApiError('NotFound');
  if (err.statusCode === 413) return new ApiError('PayloadTooLarge', { limit: BODY_LIMIT });
  if (err.statusCode === 415) return new ApiError('UnsupportedMediaType', { type: 'of the request' });
  return undefined;
}

/** The largest request body, in bytes. */
export const BODY_LIMIT = 1024 * 1024;
/** The longest path segment (an id, a project): no real name comes near it. */
export const MAX_PARAM_LENGTH = 500;

/** Errors the router raises before any hook or handler (bad percent-encoding, an over-long segment): Fastify's `frameworkErrors`. */
export function frameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const apiError = fromFramework(err) ?? new ApiError('InvalidInput', { reason: err.message });
  req.faultMessage = apiError.message;
  void reply.code(apiError.status).headers(apiError.headers).send(apiError.body());
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the message of the fault this request was answered with, for its log line */
    faultMessage: string | undefined;
  }
}

export function errorHandling(app: FastifyInstance): void {
  app.decorateRequest('faultMessage', undefined);
  app.setErrorHandler((err: FastifyError, req, reply) => {
    let apiError = err instanceof ApiError ? err : fromFramework(err);
    if (!apiError && isConnectionError(err)) {
      req.log.warn({ err }, 'database unavailable');
      apiError = new ApiError('ServiceUnavailable', { reason: 'connection lost' }, { headers: { 'Retry-After': '2' } });
    }
    if (!apiError) {
      req.log.error({ err }, 'unexpected error');
      apiError = new ApiError('Internal');
    }
    req.faultMessage = apiError.message;
    void reply.code(apiError.status).headers(apiError.headers).send(apiError.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError('NotFound');
    req.faultMessage = e.message;
    void reply.code(e.status).send(e.body());
  });
}
