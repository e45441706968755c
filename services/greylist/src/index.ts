export { type CheckInput, type CheckResult, type Clock, Greylister } from './greylister.js';
export { FileTripletStore } from './store/file-store.js';
export type { TripletRecord, TripletStore } from './store/store.js';
export { clientNetwork, normalizeSender, tripletKey } from './triplet.js';
