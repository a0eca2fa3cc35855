// The pool entry: piscina pools whose workers are spaces of a domain (piscina is a peer dependency).
export { createPool, type PoolDomain, type PoolOptions } from './workers/pool.js';
