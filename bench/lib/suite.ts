/** What a benchmark suite is: one file in bench/suites/, listed in bench/suites/index.ts. */
import type { Curve } from './curve.js';
import type { Row } from './rows.js';

export interface SuiteResult {
  readonly rows: readonly Row[];
  readonly curves: readonly Curve[];
}

export interface Suite {
  /** Short name: selects the suite on the command line and tags its rows. */
  readonly name: string;
  /** One line: what it measures. */
  readonly title: string;
  /** Upper bound on the whole suite, ms: a suite still running then fails the run. */
  readonly boundMs: number;
  run(): Promise<SuiteResult>;
}
