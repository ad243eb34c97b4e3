/**
 * The one error handler: every error leaves as a Cinder-shaped fault body
 * `{"<faultName>": {"code": N, "message": "..."}}`. Registry errors carry
 * their own status and fields; framework errors (bad JSON, schema
 * mismatch, unknown route) are translated into registry errors; anything
 * else is a 500 whose message is masked and whose details go to the log.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { isConnectionError } from '../../db/sqlstate.ts';
import { ApiError } from '../errors.ts';

function fromFramework(err: FastifyError): ApiError | undefined {
  if (err.validation) {
    const first = err.validation[0];
    const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const path = [first?.instancePath ?? '', missing ? `/${missing}` : ''].join('').replace(/^\//, '').replaceAll('/', '.');
    if (path === '') return new ApiError('MalformedBody', { reason: `the ${err.validationContext ?? 'body'} ${first?.message ?? 'is not valid'}` });
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
      return new ApiError('PayloadTooLarge', { limit: 1024 * 1024 });
  }
  if (err.statusCode === 400 && err instanceof SyntaxError) return new ApiError('MalformedBody', { reason: err.message });
  return undefined;
}

export function errorHandling(app: FastifyInstance): void {
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
    void reply.code(apiError.status).headers(apiError.headers).send(apiError.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError('NotFound');
    void reply.code(e.status).send(e.body());
  });
}
