// Every build failure in the image pipeline goes through this one function.
import { ImageBuildError, IsletError } from '../core/errors.js';

export function imageBuildFailed(
  message: string,
  hint: string,
  details?: Record<string, unknown>,
  cause?: unknown,
): IsletError {
  return new ImageBuildError(message, hint, details, cause);
}
