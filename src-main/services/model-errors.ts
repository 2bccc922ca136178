// Errors from loading a model / adapter / image or from generating, as API errors naming the field. The loaders'
// errors may have crossed a worker boundary, so they are told apart by name (errorName), not by class.
import { ApiError } from '../contract/errors';
import { errorName } from '../util/worker-host';

const MODEL_ERRORS = new Set([
  'HfFolderError',
  'ConfigError',
  'TokenizerError',
  'SafetensorsError',
  'ChatTemplateError',
  'PreprocessorError',
]);

/** Map an error from loading a model / adapter / image or generating to an ApiError naming the field. */
export function modelErrorToApi(e: unknown, field?: string): ApiError {
  if (e instanceof ApiError) return e;
  const name = errorName(e);
  const message = e instanceof Error ? e.message : String(e);
  if (name === 'ImageInputError') return new ApiError('invalid_request', message, 'image');
  if (name === 'MediaError') return new ApiError('invalid_request', message, 'audio');
  if (name === 'PeftError') return new ApiError('invalid_request', message, 'adapter');
  if (MODEL_ERRORS.has(name)) return new ApiError('invalid_request', message, 'model');
  if (name === 'SamplingError') return new ApiError('invalid_request', message, 'options');
  if (name === 'GenerateError' || name === 'RenderError') {
    if (/model folder not found/.test(message)) return new ApiError('not_found', message, 'model');
    if (/adapter folder not found/.test(message)) return new ApiError('not_found', message, 'adapter');
    return new ApiError('invalid_request', message, field);
  }
  return new ApiError('internal', `generation failed: ${message}`);
}
