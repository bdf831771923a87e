/**
 * Shapes shared by the lib/ halves of the dynamic providers (what check and diff return to Pulumi).
 */

/** A check failure: the input property and what is wrong with it. */
export interface CheckFailure {
  property: string;
  reason: string;
}

/** A diff decision as the dynamic provider protocol takes it. */
export interface DiffDecision {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
  /** Outputs that stay the same even on an update. */
  stables?: string[];
}
