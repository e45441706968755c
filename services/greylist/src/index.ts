export { buildGreylist } from './build.js';
export { type CheckInput, type CheckResult, type Clock, Greylister } from './greylister.js';
export * from './store/index.js';
export { clientNetwork, normalizeSender, tripletKey } from './triplet.js';
