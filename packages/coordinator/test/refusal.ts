/** The CoordinatorError a call is refused with (fails the test when the call succeeds). */
import { CoordinatorError } from '@hotweights/core';

export async function refusal(p: Promise<unknown>): Promise<CoordinatorError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof CoordinatorError) return err;
    throw err;
  }
  throw new Error('expected the call to be refused');
}
