/**
 * The registry of benchmark suites, run in this order by `npm run bench` (bench/main.ts).
 * A new suite is one file in this folder exporting a Suite, added here.
 */
import type { Suite } from '../lib/suite.js';
import { section } from './section.js';
import { invalidation } from './invalidation.js';
import { attachers } from './attachers.js';
import { cold } from './cold.js';
import { memory } from './memory.js';
import { pool } from './pool.js';
import { processes } from './processes.js';
import { segments } from './segments.js';
import { swap } from './swap.js';

export const suites: readonly Suite[] = [section, invalidation, attachers, cold, memory, swap, pool, segments, processes];
