export { PHASES } from './engine/phases.js';
export { startEdge } from './service.js';
export { Edge } from './smtp/edge.js';
export { NATIVE_RULES } from './smtp/native-replies.js';
